"""What an analyst sees in the published file: descriptions of every table and column,
and the history of publishes."""

from pathlib import Path

import duckdb

from keha_maksatus.outputs.disclosure import open_for_people
from keha_maksatus.outputs.report import write_report
from keha_maksatus.state import warehouse_files

from conftest import DECISION_HEADER, decision, write_export
from test_pipeline import materialize, pseudonym_key, small_landing  # noqa: F401 (the key fixture)


def test_every_published_table_and_column_has_a_comment(sample_warehouse):
    con = duckdb.connect(str(sample_warehouse), read_only=True)
    try:
        tables = con.sql("SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE database_name = current_database()").fetchall()
        columns = con.sql(
            "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
            "WHERE database_name = current_database() AND NOT internal"
        ).fetchall()
    finally:
        con.close()
    assert ("meta", "publication") in {(s, t) for s, t, _ in tables}
    assert len(columns) > 100
    assert [(s, t) for s, t, c in tables if not (c or "").strip()] == []
    assert [(s, t, col) for s, t, col, c in columns if not (c or "").strip()] == []


def publications(published: Path) -> list[dict]:
    con = duckdb.connect(str(published), read_only=True)
    try:
        return con.sql("SELECT * FROM meta.publication ORDER BY publication_no").pl().to_dicts()
    finally:
        con.close()


def test_publication_history_grows_by_one_row_per_publish_and_names_the_files(tmp_path, landing):
    published = tmp_path / "out" / "maksatus.duckdb"
    small_landing(landing)
    first = materialize(landing, published)
    assert first.success
    [row] = publications(published)
    assert row["publication_no"] == 1 and row["run_id"] == first.run_id
    assert row["files_ingested"] == 3 and row["ingested_file_ids"] == [1, 2, 3]
    assert (row["decisions"], row["responses"]) == (4, 6)

    write_export(landing, "maksatuspaatokset_2023-03-31.csv", DECISION_HEADER, [decision("H7", "1.2.2023", "10.2.2023")])
    second = materialize(landing, published)
    assert second.success
    history = publications(published)
    assert [r["publication_no"] for r in history] == [1, 2]
    assert history[0] == row  # the earlier publish is kept as it was
    newest = history[1]
    assert newest["run_id"] == second.run_id and newest["published_at"] > row["published_at"]
    assert newest["files_ingested"] == 4 and newest["newest_file_name"] == "maksatuspaatokset_2023-03-31.csv"
    assert newest["newest_file_id"] == 4 and newest["decisions"] == 5
    assert str(newest["as_of"]) == "2023-03-31"

    # The working file holds the same history (it is appended there and copied).
    working = duckdb.connect(str(warehouse_files(published).working_file), read_only=True)
    try:
        assert working.sql("SELECT count(*) FROM meta.publication").fetchall() == [(2,)]
    finally:
        working.close()

    # People see the newest publish only; the report is dated by it.
    people = open_for_people(published)
    try:
        assert people.sql("SELECT as_of, decisions FROM meta.publication").fetchall() == [(newest["as_of"], 5)]
    finally:
        people.close()
    markdown, _ = write_report(published, tmp_path / "report")
    assert "31.3.2023" in markdown.read_text(encoding="utf-8")


def test_a_publish_killed_before_the_replace_leaves_no_row_in_the_history(tmp_path, landing):
    from test_robustness import run_cli

    published = tmp_path / "out" / "maksatus.duckdb"
    small_landing(landing)
    assert run_cli(landing, published).returncode == 0
    write_export(landing, "maksatuspaatokset_2023-03-31.csv", DECISION_HEADER, [decision("H7", "1.2.2023", "10.2.2023")])
    killed = run_cli(landing, published, failpoint="publish")
    assert killed.returncode != 0
    assert [r["publication_no"] for r in publications(published)] == [1]
    assert run_cli(landing, published).returncode == 0
    history = publications(published)
    assert [(r["publication_no"], r["files_ingested"]) for r in history] == [(1, 3), (2, 4)]


def test_sql_entry_point_runs_queries_read_only_on_the_published_file(sample_warehouse):
    from test_cli import run_cli

    done = run_cli("sql", "--warehouse", str(sample_warehouse), "-c",
                   "SELECT period_label, n FROM kpi.quality_section WHERE period_label = '1-12/2022' AND indicator = 'maksatus_kasittelyaika_pv'; "
                   "SELECT count(*) AS publishes FROM meta.publication;")
    assert done.returncode == 0, done.stderr
    assert "│ 1-12/2022    │" in done.stdout and "publishes" in done.stdout
    refused = run_cli("sql", "--warehouse", str(sample_warehouse), "-c", "DELETE FROM core.decisions;")
    assert refused.returncode == 1 and "read-only" in refused.stderr.lower()
    missing = run_cli("sql", "--warehouse", str(sample_warehouse.parent / "none.duckdb"), "-c", "SELECT 1;")
    assert missing.returncode != 0 and "no published warehouse" in missing.stderr


def test_sql_shell_reads_statements_over_lines_and_dot_commands(sample_warehouse):
    import subprocess

    from test_cli import CLI, REPO

    session = ".tables\n.describe meta.publication\nSELECT 6 * 7\n  AS answer;\nSELECT nope;\n.quit\n"
    done = subprocess.run([str(CLI), "sql", "--warehouse", str(sample_warehouse)], input=session,
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "kpi.quality_section " in done.stdout and "newest_file_name" in done.stdout
    assert "│     42 │" in done.stdout
    assert "error: Binder Error" in done.stdout
