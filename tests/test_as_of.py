"""Figures as of a date (keha_maksatus.history.as_of): every kpi.* table equals a fresh run
on a landing folder holding only the extracts dated on or before the date; the published
warehouse and its outputs are not touched."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from polars.testing import assert_frame_equal

from conftest import (
    DECISION_HEADER, FEEDBACK_HEADER, HETU, TEST_KEY, YTUNNUS, build_working, decision, response, write_export, write_outputs,
)
from keha_maksatus import kpi, state, warehouse
from keha_maksatus.config import load_settings
from keha_maksatus.errors import ConfigurationError
from keha_maksatus.forecast import tables as forecast_tables
from keha_maksatus.history import as_of
from keha_maksatus.ingest.landing import extract_date
from keha_maksatus.ingest.store import ingest_landing
from keha_maksatus.outputs.publish import publish
from keha_maksatus.sample import write_sample

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


# --- helpers ---------------------------------------------------------------------------------


def kpi_tables(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    """Every kpi.* table, rows sorted (floats rounded for the sort only)."""
    names = [n for (n,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'kpi' ORDER BY 1"
    ).fetchall()]
    tables = {}
    for name in names:
        frame = con.sql(f"SELECT * FROM kpi.{name}").pl()
        keys = [pl.col(c).round(6) if frame[c].dtype.is_float() else pl.col(c) for c in frame.columns]
        tables[name] = frame.sort(keys, nulls_last=True) if frame.columns else frame
    return tables


def assert_same_kpis(as_of_file: Path, fresh: duckdb.DuckDBPyConnection) -> None:
    """Every kpi.* table of the as-of file equals the fresh run's: the same tables, columns,
    rows and n; floats to 1e-9 (a sum of the same doubles in another order differs in the
    last bit)."""
    con = duckdb.connect(str(as_of_file), read_only=True)
    try:
        built = kpi_tables(con)
    finally:
        con.close()
    expected = kpi_tables(fresh)
    every = {t.split(".")[1] for t in (*kpi.TABLE_COMMENTS, *forecast_tables.TABLE_COMMENTS)}
    assert set(built) == set(expected) == every
    for name in expected:
        try:
            assert_frame_equal(built[name], expected[name], check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
        except AssertionError as error:
            raise AssertionError(f"kpi.{name}: {error}") from None


def subset_landing(source: Path, target: Path, date: dt.date) -> list[str]:
    """Copy the extracts of `source` dated on or before `date` into `target`."""
    target.mkdir(parents=True)
    names = sorted(p.name for p in source.iterdir() if extract_date(p.name) <= date)
    for name in names:
        shutil.copy2(source / name, target / name)
    return names


def fresh_run(landing: Path, work_dir: Path) -> duckdb.DuckDBPyConnection:
    return build_working(landing, work_dir)


def ingest_in_order(folder: Path, work_dir: Path, batches: list[list[Path]]) -> None:
    """Nightly runs: each batch of files lands in `folder` and is ingested into the working
    state (the KPIs a run builds after it change nothing in the state)."""
    for batch in batches:
        for path in batch:
            shutil.copy2(path, folder / path.name)
        con = warehouse.connect(work_dir)
        try:
            ingest_landing(con, folder, TEST_KEY, load_settings())
        finally:
            con.close()


def tree_digest(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under the roots (a file root: itself)."""
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# --- the bundled sample ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_state(tmp_path_factory) -> Path:
    """The bundled sample ingested file by file in date order (as nightly runs would); the published path."""
    root = tmp_path_factory.mktemp("as_of_sample")
    published = root / "wh" / "maksatus.duckdb"
    landing = root / "landing"
    landing.mkdir()
    files = sorted(SAMPLE.iterdir(), key=lambda p: (extract_date(p.name), p.name))
    ingest_in_order(landing, state.warehouse_files(published).state_dir, [[p] for p in files])
    return published


@pytest.mark.parametrize("date", ["2021-06-30", "2021-12-31", "2022-03-15", "2022-06-30", "2022-10-31", "2023-01-01"])
def test_sample_as_of_equals_a_run_on_only_those_extracts(sample_state, tmp_path, date):
    day = dt.date.fromisoformat(date)
    build = as_of.build_as_of(sample_state, day, load_settings(), out=tmp_path / "as_of.duckdb", report=False)
    names = subset_landing(SAMPLE, tmp_path / "landing", day)
    assert sorted(build.file_names) == names and build.data_as_of == max(extract_date(n) for n in names) and build.notes == []
    fresh = fresh_run(tmp_path / "landing", tmp_path / "fresh")
    try:
        assert_same_kpis(build.path, fresh)
        con = duckdb.connect(str(build.path), read_only=True)
        try:
            # The quality tables are those of the files dated up to the date.
            log = con.execute("SELECT file_name, status, rows_read, rows_valid, rows_rejected FROM quality.ingest_log ORDER BY 1").fetchall()
            quarantined = con.execute("SELECT file_name, line, column_name, rule FROM quality.quarantine ORDER BY ALL").fetchall()
            counts = con.execute("SELECT (SELECT count(*) FROM core.decisions), (SELECT count(*) FROM core.feedback)").fetchall()
            meta = con.execute("SELECT as_of, data_as_of, files_used, source_warehouse, notes FROM meta.as_of_build").fetchall()
            publication = con.execute("SELECT as_of, files_ingested FROM meta.publication").fetchall()
        finally:
            con.close()
        assert log == fresh.execute("SELECT file_name, status, rows_read, rows_valid, rows_rejected FROM quality.ingest_log ORDER BY 1").fetchall()
        assert quarantined == fresh.execute("SELECT file_name, line, column_name, rule FROM quality.quarantine ORDER BY ALL").fetchall()
        assert counts == fresh.execute("SELECT (SELECT count(*) FROM core.decisions), (SELECT count(*) FROM core.feedback)").fetchall()
        assert meta == [(day, build.data_as_of, len(names), str(sample_state), [])]
        assert publication == [(build.data_as_of, len(names))]
    finally:
        fresh.close()


def test_default_path_sits_beside_the_published_file_and_the_report_beside_it(sample_state):
    build = as_of.build_as_of(sample_state, dt.date(2022, 6, 30), load_settings())
    assert build.path == sample_state.with_name("maksatus.as-of-2022-06-30.duckdb") and build.path.exists()
    assert build.report == state.warehouse_files(build.path).outputs.report
    text = (build.report / "laatuosio.md").read_text(encoding="utf-8")
    assert "Aineisto 30.6.2022 asti" in text and "Vuosi 2022" in text
    # Nothing is left half-written beside it, and a second build replaces the first.
    again = as_of.build_as_of(sample_state, dt.date(2022, 6, 30), load_settings(), report=False)
    assert again.path == build.path
    assert not [p for p in build.path.parent.iterdir() if p.name.startswith(".maksatus.as-of")]


# --- generated history ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, Path]:
    """Two and a half years of half-yearly extracts, ingested night by night except the
    extract of 30.6.2021, which arrives late (after 31.12.2021); (landing folder of all, published path)."""
    root = tmp_path_factory.mktemp("as_of_generated")
    source = root / "all"
    files = sorted(write_sample(source, decisions=600, feedback=300, seed=7, first_year=2020, last_year=2022, csv_only=True),
                   key=lambda p: (extract_date(p.name), p.name))
    late = next(p for p in files if p.name == "maksatuspaatokset_2021-06-30.csv")
    batches = [[p] for p in files if p != late]
    at = next(i for i, b in enumerate(batches) if extract_date(b[0].name) == dt.date(2021, 12, 31))
    batches.insert(at + 1, [late])
    published = root / "wh" / "maksatus.duckdb"
    landing = root / "landing"
    landing.mkdir()
    ingest_in_order(landing, state.warehouse_files(published).state_dir, batches)
    return source, published


@pytest.mark.parametrize("date", ["2020-06-30", "2021-03-31", "2021-06-30", "2021-12-31", "2022-09-30", "2022-12-31"])
def test_generated_history_as_of_equals_a_run_on_only_those_extracts(generated, tmp_path, date):
    source, published = generated
    day = dt.date.fromisoformat(date)
    build = as_of.build_as_of(published, day, load_settings(), out=tmp_path / "as_of.duckdb", report=False)
    subset_landing(source, tmp_path / "landing", day)
    fresh = fresh_run(tmp_path / "landing", tmp_path / "fresh")
    try:
        assert_same_kpis(build.path, fresh)
    finally:
        fresh.close()


# --- property: any extracts, corrections, late arrivals, any date ------------------------------

EXTRACT_DATES = [dt.date(2022, 1, 31), dt.date(2022, 3, 31), dt.date(2022, 5, 31), dt.date(2022, 7, 31), dt.date(2022, 9, 30)]
RECEIVED = [dt.date(2021, 11, 20), dt.date(2022, 1, 10), dt.date(2022, 3, 1), dt.date(2022, 5, 15), dt.date(2022, 7, 1)]


def _fi(day: dt.date) -> str:
    return f"{day.day}.{day.month}.{day.year}"


@st.composite
def decision_rows(draw, extract: dt.date) -> list[str]:
    """Rows of one decisions extract: a few of six applications, each pending, decided (by
    the extract date or, now and then, after it: a rejected row) or with a broken date."""
    rows = []
    for n in sorted(draw(st.sets(st.integers(0, 5), min_size=1, max_size=6))):
        received = draw(st.sampled_from(RECEIVED))
        state_ = draw(st.sampled_from(["pending", "decided", "decided", "decided", "bad"]))
        if state_ == "pending":
            rows.append(decision(f"H{n}", _fi(received), tukimuoto=draw(st.sampled_from(["palkkatuki", "esr"]))))
        elif state_ == "decided":
            day = received + dt.timedelta(days=draw(st.integers(0, 120)))
            rows.append(decision(f"H{n}", _fi(received), _fi(day), draw(st.sampled_from(["myönteinen", "kielteinen"])),
                                 asiakas=draw(st.sampled_from([HETU, YTUNNUS])), taydennys=str(draw(st.integers(0, 9)))))
        else:
            rows.append(decision(f"H{n}", "31.2.2022"))
    return rows


@st.composite
def feedback_rows(draw, extract: dt.date) -> list[str]:
    rows = []
    for n in sorted(draw(st.sets(st.integers(0, 7), min_size=1, max_size=8))):
        answered = draw(st.sampled_from([d for d in RECEIVED if d <= extract] or [extract]))
        rows.append(response(f"V{n}", _fi(answered), draw(st.sampled_from(["1", "3", "4", "5", "EOS", "9"])),
                             kysely=draw(st.sampled_from(["kohtaaminen", "jalkikysely", "kampanja"]))))
    return rows


@st.composite
def histories(draw):
    """Extracts (kind, date, rows), the nights they arrive on (any order: an older extract
    may arrive late) and the date to ask for."""
    extracts = []
    for kind, header, rows in (("maksatuspaatokset", DECISION_HEADER, decision_rows), ("asiakaspalaute", FEEDBACK_HEADER, feedback_rows)):
        for day in sorted(draw(st.sets(st.sampled_from(EXTRACT_DATES), min_size=1 if kind == "maksatuspaatokset" else 0, max_size=4))):
            extracts.append((kind, header, day, draw(rows(day))))
    nights = draw(st.lists(st.integers(0, 2), min_size=len(extracts), max_size=len(extracts)))
    date = draw(st.sampled_from([*EXTRACT_DATES, dt.date(2022, 2, 15), dt.date(2022, 8, 1), dt.date(2022, 12, 31)]))
    return extracts, nights, date


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(histories())
def test_any_history_as_of_any_date_equals_a_run_on_only_those_extracts(history):
    extracts, nights, date = history
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "all"
        paths = []
        for index, (prefix, header, day, rows) in enumerate(extracts):
            # Header spaces (trimmed when read) keep two extracts with the same rows apart by content.
            paths.append(write_export(source, f"{prefix}_{day.isoformat()}.csv", header.replace(";", " " * (index + 1) + ";", 1), rows))
        published = root / "wh" / "maksatus.duckdb"
        (root / "landing").mkdir()
        ingest_in_order(root / "landing", state.warehouse_files(published).state_dir,
                        [[p for p, n in zip(paths, nights) if n == night] for night in range(3)])
        dated = [day for _, _, day, _ in extracts]
        con = duckdb.connect(str(state.warehouse_files(published).working_file), read_only=True)
        try:
            ingested_dates = [d for (d,) in con.execute("SELECT extract_date FROM quality.ingest_log WHERE status = 'ingested'").fetchall()]
        finally:
            con.close()
        if not any(d <= date for d in ingested_dates):
            with pytest.raises(ConfigurationError, match=f"--as-of {date.isoformat()} is before the first extract"):
                as_of.build_as_of(published, date, load_settings(), out=root / "as_of.duckdb", report=False)
            return
        build = as_of.build_as_of(published, date, load_settings(), out=root / "as_of.duckdb", report=False)
        assert build.notes == []
        assert build.data_as_of == max(d for d in ingested_dates if d <= date) and min(dated) <= date
        subset_landing(source, root / "subset", date)
        fresh = fresh_run(root / "subset", root / "fresh")
        try:
            assert_same_kpis(build.path, fresh)
            # The state itself, customers by their pseudonym (their keys are numbered as met).
            source_columns = "file_id, file_name, line, valid_from_file_id, valid_from_line"
            for query in (
                f"SELECT d.* EXCLUDE ({source_columns}, asiakas_id), c.asiakas_hash FROM core.decisions d "
                "JOIN core.customers c USING (asiakas_id) ORDER BY ALL",
                f"SELECT * EXCLUDE ({source_columns}) FROM core.feedback ORDER BY ALL",
                "SELECT asiakas_hash FROM core.customers ORDER BY ALL",
            ):
                con = duckdb.connect(str(build.path), read_only=True)
                try:
                    assert con.execute(query).fetchall() == fresh.execute(query).fetchall(), query
                finally:
                    con.close()
        finally:
            fresh.close()


def test_an_older_copy_of_a_later_extract_arriving_late_is_named_not_hidden(tmp_path):
    """The one case the state cannot give: bytes first ingested under a later date, then
    again under an older one (a duplicate, not ingested twice). The as-of file says so."""
    source = tmp_path / "all"
    first = write_export(source, "maksatuspaatokset_2022-01-31.csv", DECISION_HEADER, [decision("H1", "1.1.2022", "20.1.2022")])
    rows = [decision("H1", "1.1.2022", "20.1.2022"), decision("H2", "1.1.2022", "10.2.2022")]
    later = write_export(source, "maksatuspaatokset_2022-03-31.csv", DECISION_HEADER, rows)
    copy = write_export(source, "maksatuspaatokset_2022-02-28.csv", DECISION_HEADER, rows)
    published = tmp_path / "wh" / "maksatus.duckdb"
    (tmp_path / "landing").mkdir()
    ingest_in_order(tmp_path / "landing", state.warehouse_files(published).state_dir, [[first, later], [copy]])
    build = as_of.build_as_of(published, dt.date(2022, 3, 1), load_settings(), out=tmp_path / "as_of.duckdb", report=False)
    assert build.file_names == [first.name]
    assert len(build.notes) == 1 and copy.name in build.notes[0] and later.name in build.notes[0]
    con = duckdb.connect(str(build.path), read_only=True)
    try:
        assert con.execute("SELECT notes FROM meta.as_of_build").fetchall() == [(build.notes,)]
        assert con.execute("SELECT status FROM quality.ingest_log ORDER BY file_id").fetchall() == [("ingested",), ("duplicate_content",)]
    finally:
        con.close()
    # Without the late copy nothing is noted.
    assert as_of.build_as_of(published, dt.date(2022, 2, 27), load_settings(), out=tmp_path / "b.duckdb", report=False).notes == []


# --- nothing published is touched; errors ----------------------------------------------------


def test_published_warehouse_and_outputs_are_byte_identical_after_an_as_of_build(tmp_path):
    published = tmp_path / "wh" / "maksatus.duckdb"
    files = state.warehouse_files(published)
    con = build_working(SAMPLE, files.state_dir)
    try:
        publish(con, files.working_file, published)
    finally:
        con.close()
    write_outputs(published)
    before = tree_digest(published, files.outputs_dir, files.state_dir)
    build = as_of.build_as_of(published, dt.date(2021, 12, 31), load_settings())
    assert build.path.exists() and (build.report / "laatuosio.html").exists()
    assert tree_digest(published, files.outputs_dir, files.state_dir) == before
    con = duckdb.connect(str(published), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM meta.publication").fetchall() == [(1,)]
    finally:
        con.close()


@pytest.mark.parametrize("text", ["2022-13-01", "31.2.2022", "yesterday", "", "2022/06/30"])
def test_a_malformed_date_is_a_one_line_configuration_error(text):
    with pytest.raises(ConfigurationError) as raised:
        as_of.parse_as_of(text)
    assert raised.value.exit_code == 2 and "\n" not in str(raised.value) and "2022-06-30 or 30.6.2022" in str(raised.value)


def test_both_date_forms_are_read():
    assert as_of.parse_as_of("30.6.2022") == as_of.parse_as_of("2022-06-30") == dt.date(2022, 6, 30)


def test_a_date_before_the_first_extract_names_both_dates(sample_state, tmp_path):
    with pytest.raises(ConfigurationError) as raised:
        as_of.build_as_of(sample_state, dt.date(2021, 6, 29), load_settings(), out=tmp_path / "x.duckdb")
    message = str(raised.value)
    assert "2021-06-29" in message and "2021-06-30" in message and raised.value.exit_code == 2
    assert not list(tmp_path.iterdir())


def test_out_paths_that_would_overwrite_the_warehouse_are_refused(tmp_path):
    published = tmp_path / "wh" / "maksatus.duckdb"
    files = state.warehouse_files(published)
    day = dt.date(2022, 6, 30)
    for out in (published, files.working_file, files.outputs.report / "x.duckdb", tmp_path / "landing" / "x.duckdb"):
        with pytest.raises(ConfigurationError, match="--out"):
            as_of.checked_out_path(out, published, day, landing=tmp_path / "landing")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigurationError, match="is a folder"):
        as_of.checked_out_path(tmp_path / "folder", published, day)
    assert as_of.checked_out_path(None, published, day) == tmp_path / "wh" / "maksatus.as-of-2022-06-30.duckdb"


def test_nothing_ingested_yet_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="nothing is ingested"):
        as_of.build_as_of(tmp_path / "wh" / "maksatus.duckdb", dt.date(2022, 6, 30), load_settings())


# --- through the command and Dagster ----------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KEHA_PSEUDONYM_KEY"}  # the sample's demo key; DAGSTER_HOME from conftest
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def test_run_as_of_through_the_command(tmp_path):
    published = tmp_path / "wh" / "maksatus.duckdb"
    files = state.warehouse_files(published)
    # A fresh machine: the state fills first, then the as-of file is built; nothing is published.
    done = run_cli("run", "--warehouse", str(published), "--as-of", "31.12.2021")
    assert done.returncode == 0, done.stderr
    out = published.with_name("maksatus.as-of-2021-12-31.duckdb")
    assert out.exists() and not published.exists() and not files.outputs_dir.exists()
    assert str(out) in done.stdout and "kpi.quality_section as of 2021-12-31" in done.stdout
    con = duckdb.connect(str(out), read_only=True)
    try:
        rows = con.execute("SELECT period_label, indicator, value, n FROM kpi.quality_section").fetchall()
        built = con.execute("SELECT as_of, run_id FROM meta.as_of_build").fetchall()[0]
    finally:
        con.close()
    assert built[0] == dt.date(2021, 12, 31) and built[1] in done.stdout
    assert {r[0] for r in rows} == {"1-6/2021", "1-12/2021"}
    for period, indicator, value, n in rows:  # the printed table shows the file's figures
        decimals = 2 if indicator.endswith("tyytyvaisyys") else 1
        assert any(period in line and indicator in line and f"{value:.{decimals}f}" in line and f" {n} " in line
                   for line in done.stdout.splitlines())

    assert run_cli("run", "--warehouse", str(published)).returncode == 0
    before = tree_digest(published, files.outputs_dir)
    other = tmp_path / "elsewhere" / "kesakuu.duckdb"
    done = run_cli("run", "--warehouse", str(published), "--as-of", "2022-06-30", "--out", str(other))
    assert done.returncode == 0, done.stderr
    assert other.exists() and (state.warehouse_files(other).outputs.report / "laatuosio.md").exists()
    assert tree_digest(published, files.outputs_dir) == before

    for args, expected in ((("--as-of", "1.1.2020"), "2021-06-30"), (("--as-of", "2022-02-30"), "30.6.2022"),
                           (("--out", str(other)), "--as-of"), (("--as-of", "2022-06-30", "--out", str(published)), "overwrite")):
        done = run_cli("run", "--warehouse", str(published), *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and lines[-1].startswith("error: ") and expected in lines[-1], done.stderr
    assert tree_digest(published, files.outputs_dir) == before


def test_figures_as_of_job_in_dagster(tmp_path):
    from pipelines.definitions import build_definitions

    published = tmp_path / "wh" / "maksatus.duckdb"
    defs = build_definitions(str(SAMPLE), str(published))
    nightly = defs.resolve_job_def("nightly")
    assert "figures_as_of" not in {node.name for node in nightly.nodes_in_topological_order}  # built on request only
    job = defs.resolve_job_def("as_of_build")
    result = job.execute_in_process(run_config={"ops": {"figures_as_of": {"config": {"as_of": "30.6.2022"}}}})
    assert result.success
    [materialization] = [m for m in result.asset_materializations_for_node("figures_as_of")]
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    out = published.with_name("maksatus.as-of-2022-06-30.duckdb")
    assert metadata["as_of"] == "2022-06-30" and metadata["path"] == str(out) and metadata["files_used"] == 4
    assert "2022-06-30.xlsx" in metadata["files"] and "2022-10-31" not in metadata["files"]
    con = duckdb.connect(str(out), read_only=True)
    try:
        rows = con.execute("SELECT period_label, round(value, 1), n FROM kpi.quality_section WHERE indicator = 'maksatus_kasittelyaika_pv'").fetchall()
    finally:
        con.close()
    for period, value, n in rows:  # the file's figures, in a Markdown table (its - escaped)
        assert f"| {period.replace('-', chr(92) + '-')} |" in metadata["quality_section"]
        assert f"| {value:.2f} | {n} |" in metadata["quality_section"]
    # Ingest and its checks ran; nothing was published.
    assert {e.check_name for e in result.get_asset_check_evaluations()} >= {"no_file_quarantined_whole", "rows_accounted_for", "unlisted_codes"}
    assert not published.exists()
