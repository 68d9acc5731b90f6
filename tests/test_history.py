"""Publication history (history.publication, history.quality_section) and lineage from
core rows and KPI cells to the source file, its SHA-256 and line, on real small files."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import pytest

from keha_maksatus.history.publications import record_publication
from keha_maksatus.outputs.publish import publish
from keha_maksatus.warehouse import working_path

from conftest import DECISION_HEADER, FEEDBACK_HEADER, build_working, decision, response, write_export
from test_example_queries import example_queries

PROCESSING = "maksatus_kasittelyaika_pv"
SATISFACTION = "maksatus_asiakastyytyvaisyys"


def query(start: str) -> str:
    """The docs/example_queries.sql query whose question starts with `start`."""
    [sql] = [sql for question, sql in example_queries() if question.startswith(start)]
    return sql


def with_parameters(start: str, example: str, parameters: str) -> str:
    """The docs query whose question starts with `start`, its example filter (which must be
    in it, as the docs show it) replaced by a parameterised one."""
    sql = query(start)
    assert example in sql
    return sql.replace(example, parameters)


def first_extracts(landing: Path) -> dict[str, Path]:
    """1-6/2022: A1 10 days, A2 30 days, A3 pending; five official scores, one campaign,
    one about another service and one without a score."""
    decisions = write_export(landing, "maksatuspaatokset_2022-06-30.csv", DECISION_HEADER, [
        decision("A1", "1.2.2022", "11.2.2022"),
        decision("A2", "1.3.2022", "31.3.2022", tukimuoto="esr", yksikko="ELY-KES"),
        decision("A3", "1.5.2022"),
    ])
    feedback = write_export(landing, "asiakaspalaute_2022-06-30.csv", FEEDBACK_HEADER, [
        response("V1", "2.3.2022", "5"),
        response("V2", "3.3.2022", "4", kysely="jalkikysely"),
        response("V3", "4.4.2022", "3"),
        response("V4", "5.4.2022", "5", kysely="kampanja"),
        response("V5", "6.4.2022", "4", palvelu="neuvonta"),
        response("V6", "7.4.2022", "EOS"),
        response("V7", "8.5.2022", "2"),
        response("V8", "9.5.2022", "5"),
    ])
    return {"decisions": decisions, "feedback": feedback}


def correction(landing: Path) -> Path:
    """A later extract: A2 was decided on 11.3. (10 days), A3 on 21.6.2022 (51 days)."""
    return write_export(landing, "maksatuspaatokset_2022-07-15.csv", DECISION_HEADER, [
        decision("A2", "1.3.2022", "11.3.2022", tukimuoto="esr", yksikko="ELY-KES"),
        decision("A3", "1.5.2022", "21.6.2022"),
    ])


def build_and_publish(landing: Path, base: Path) -> Path:
    con = build_working(landing, base / "work")
    try:
        return publish(con, working_path(base / "work"), base / "pub" / "maksatus.duckdb")
    finally:
        con.close()


def rows(path: Path, sql: str, params: list | None = None) -> list[dict]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql, params=params).pl().to_dicts()
    finally:
        con.close()


def quality_section(path: Path) -> list[dict]:
    return rows(path, "SELECT * FROM kpi.quality_section ORDER BY indicator, period_label")


def reported(path: Path, publication_no: int) -> list[dict]:
    return rows(path, "SELECT * EXCLUDE (publication_no) FROM history.quality_section WHERE publication_no = ? "
                      "ORDER BY indicator, period_label", [publication_no])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_each_publish_appends_its_quality_section_and_the_report_can_quote_it(tmp_path):
    landing = tmp_path / "landing"
    first_extracts(landing)
    published = build_and_publish(landing, tmp_path)
    first = quality_section(published)
    correction(landing)
    build_and_publish(landing, tmp_path)
    second = quality_section(published)

    # Every row as each publish reported it: the first publish's rows survive the second.
    assert reported(published, 1) == first and reported(published, 2) == second
    assert first != second
    publications = rows(published, "SELECT * FROM history.publication ORDER BY publication_no")
    assert publications == rows(published, "SELECT * FROM meta.publication ORDER BY publication_no")
    assert [(p["publication_no"], p["files_ingested"], str(p["as_of"])) for p in publications] == [
        (1, 2, "2022-06-30"), (2, 3, "2022-07-15")]
    working = working_path(tmp_path / "work")
    assert rows(working, "SELECT count(DISTINCT publication_no) AS n FROM history.quality_section") == [{"n": 2}]

    # "What was reported for 1-6/2022 in each publication": 20,0 days, then (10 + 10 + 51) / 3.
    answer = [r for r in rows(published, query("What was reported for 1-6/2022")) if r["indicator"] == PROCESSING]
    dates = [p["published_at"] for p in publications]
    assert [r["n"] for r in answer] == [2, 3]
    assert [r["reported"] for r in answer] == [
        f"reported on {day.day}.{day.month}.{day.year}: {text}" for day, text in zip(dates, ["20,0", "23,7"])]
    [score] = {r["reported"].rsplit(": ", 1)[1] for r in rows(published, query("What was reported for 1-6/2022"))
               if r["indicator"] == SATISFACTION}
    assert score == f"{(5 + 4 + 3 + 2 + 5) / 5:.2f}".replace(".", ",")

    # Every history table and view and all their columns are described for analysts.
    con = duckdb.connect(str(published), read_only=True)
    try:
        undescribed = con.sql(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'history' AND coalesce(comment, '') = ''"
        ).fetchall()
        tables = con.sql("SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'history' "
                         "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE schema_name = 'history'").fetchall()
    finally:
        con.close()
    assert undescribed == [] and {"publication", "quality_section", "decisions", "replaced_decisions"} <= {t for t, _ in tables}
    assert all(c for _, c in tables)


def test_a_publish_that_never_reached_the_file_leaves_no_history(tmp_path):
    landing = tmp_path / "landing"
    first_extracts(landing)
    published = build_and_publish(landing, tmp_path)
    correction(landing)
    con = build_working(landing, tmp_path / "work")
    try:
        # What a publish killed before the replace leaves: rows in the working file only.
        assert record_publication(con, published, "crashed-run") == 2
        assert con.sql("SELECT count(*) FROM history.quality_section WHERE publication_no = 2").fetchall()[0][0] > 0
        publish(con, working_path(tmp_path / "work"), published, run_id="next-run")
    finally:
        con.close()
    assert rows(published, "SELECT publication_no, run_id FROM history.publication ORDER BY 1") == [
        {"publication_no": 1, "run_id": None}, {"publication_no": 2, "run_id": "next-run"}]
    assert reported(published, 2) == quality_section(published)
    assert rows(published, "SELECT DISTINCT publication_no FROM history.quality_section ORDER BY 1") == [
        {"publication_no": 1}, {"publication_no": 2}]
    # why the figures moved: recorded once, for the publish that reached the file
    assert rows(published, "SELECT DISTINCT to_publication_no FROM history.changes") == [{"to_publication_no": 2}]


def test_files_of_an_earlier_version_upgrade_in_place(tmp_path):
    landing = tmp_path / "landing"
    first_extracts(landing)
    published = build_and_publish(landing, tmp_path)
    first = quality_section(published)
    before = rows(published, "SELECT * FROM meta.publication")
    # An earlier version had meta.publication alone and no row versions, in the working and the published file.
    for path in (working_path(tmp_path / "work"), published):
        con = duckdb.connect(str(path))
        try:
            con.execute("DROP SCHEMA history CASCADE")
            for kind in ("decisions", "feedback"):
                con.execute(f"ALTER TABLE core.{kind} DROP COLUMN valid_from_file_id; ALTER TABLE core.{kind} DROP COLUMN valid_from_line")
        finally:
            con.close()
    correction(landing)
    build_and_publish(landing, tmp_path)
    assert rows(published, "SELECT * FROM meta.publication ORDER BY publication_no")[:1] == before
    # The published file's own quality section is what its newest publish reported.
    assert reported(published, 1) == first
    assert reported(published, 2) == quality_section(published)


@pytest.fixture
def lineage_warehouse(tmp_path) -> tuple[Path, dict[str, Path]]:
    landing = tmp_path / "landing"
    files = first_extracts(landing)
    files["correction"] = correction(landing)
    return build_and_publish(landing, tmp_path), files


def test_a_core_row_leads_to_its_file_hash_and_line(lineage_warehouse):
    published, files = lineage_warehouse
    decisions, feedback = query("Where does an application's"), query("Where does a survey response")
    expected = {
        "A1": (files["decisions"], 2),  # the header is line 1
        "A2": (files["correction"], 2),  # the later extract's row stands
        "A3": (files["correction"], 3),
    }
    for hakemus_id, (path, line) in expected.items():
        [row] = rows(published, decisions.replace("'H00000003'", "?"), [hakemus_id])
        assert (row["file_name"], row["content_sha256"], row["line"]) == (path.name, sha256(path), line)
    [row] = rows(published, feedback.replace("'V00000001'", "?"), ["V7"])
    assert (row["file_name"], row["content_sha256"], row["line"]) == (files["feedback"].name, sha256(files["feedback"]), 8)


def test_every_quality_section_figure_leads_to_the_rows_behind_it(lineage_warehouse):
    published, files = lineage_warehouse
    sql = with_parameters("Which rows, from which files and lines, make up a quality-section figure",
                          "'maksatus_kasittelyaika_pv' AND q.period_label = '1-6/2022'", "? AND q.period_label = ?")
    figures = quality_section(published)
    assert {f["indicator"] for f in figures if f["n"]} == {PROCESSING, SATISFACTION}
    for figure in figures:
        behind = rows(published, sql, [figure["indicator"], figure["period_label"]])
        assert len(behind) == figure["n"], figure
        if figure["n"]:
            assert sum(r["value"] for r in behind) / len(behind) == pytest.approx(figure["value"])

    lines = {(r["row_id"], r["file_name"], r["content_sha256"], r["line"])
             for r in rows(published, sql, [PROCESSING, "1-6/2022"])}
    first, later = files["decisions"], files["correction"]
    assert lines == {("A1", first.name, sha256(first), 2), ("A2", later.name, sha256(later), 2),
                     ("A3", later.name, sha256(later), 3)}
    scores = {(r["row_id"], r["line"]) for r in rows(published, sql, [SATISFACTION, "1-6/2022"])}
    assert scores == {("V1", 2), ("V2", 3), ("V3", 4), ("V7", 8), ("V8", 9)}


def test_every_monthly_processing_time_cell_leads_to_its_decisions(lineage_warehouse):
    published, files = lineage_warehouse
    sql = with_parameters("Which decisions, from which files and lines, make up a cell",
                          "m.month = DATE '2022-03-01' AND m.tukimuoto = 'palkkatuki' AND m.yksikko IS NULL",
                          "m.month = ? AND m.tukimuoto IS NOT DISTINCT FROM ? AND m.yksikko IS NOT DISTINCT FROM ?")
    cells = rows(published, "SELECT * FROM kpi.processing_time_monthly")
    assert len(cells) > 4  # cells and roll-ups
    for cell in cells:
        behind = rows(published, sql, [cell["month"], cell["tukimuoto"], cell["yksikko"]])
        assert len(behind) == cell["n"], cell
        assert sum(r["kasittelyaika_pv"] for r in behind) / len(behind) == pytest.approx(cell["mean_days"])
    [a2] = rows(published, sql, [dt.date(2022, 3, 1), "esr", "ELY-KES"])
    later = files["correction"]
    assert (a2["hakemus_id"], a2["file_name"], a2["content_sha256"], a2["line"]) == ("A2", later.name, sha256(later), 2)


def test_published_warehouse_metadata_carries_the_newest_publication(tmp_path, monkeypatch):
    from test_dagster_ui import materialization
    from test_pipeline import materialize

    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "history-test-key")
    landing = tmp_path / "landing"
    first_extracts(landing)
    published = tmp_path / "out" / "maksatus.duckdb"
    result = materialize(landing, published)
    assert result.success
    metadata = materialization(result, "published_warehouse")
    assert metadata["publication_no"].value == 1
    figures = {key: value.value for key, value in metadata.items() if key.startswith("q_")}
    expected = {}
    for figure in quality_section(published):
        short = {PROCESSING: "kasittelyaika", SATISFACTION: "tyytyvaisyys"}[figure["indicator"]]
        key = "q_" + figure["period_label"].replace("-", "_").replace("/", "_") + "_" + short
        digits = 1 if figure["indicator"] == PROCESSING else 2
        expected[key] = None if figure["value"] is None else round(figure["value"], digits)
    assert figures == expected
    assert figures["q_1_6_2022_kasittelyaika"] == 20.0


def test_the_docs_query_of_what_moved_at_the_newest_publish(tmp_path):
    landing = tmp_path / "landing"
    first_extracts(landing)
    build_and_publish(landing, tmp_path)
    correcting = correction(landing)
    published = build_and_publish(landing, tmp_path)
    answer = rows(published, query("Which figures moved at the newest publish"))
    moved = [r for r in answer if r["indicator"] == PROCESSING and r["period_label"] == "1-6/2022"]
    # 1-6/2022 went from A1 and A2 (10 and 30 days) to A1, A2 and A3 (10, 10, 51 days), all by the correction.
    assert {r["file_name"] for r in moved} == {correcting.name}
    assert moved[0]["value_from"] == 20.0 and moved[0]["value_to"] == pytest.approx(71 / 3)
    assert sum(r["contribution"] for r in moved) == pytest.approx(71 / 3 - 20.0, abs=1e-9)
    # A figure that did not move is listed without parts.
    unmoved = [r for r in answer if r["indicator"] == SATISFACTION]
    assert unmoved and all(r["part"] is None for r in unmoved)
