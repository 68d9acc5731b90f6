"""The command line end to end: `keha-maksatus run` and `keha-maksatus sample`."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl

from keha_maksatus.ingest.readers import read_export
from keha_maksatus.state import warehouse_files

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
CLI = Path(sys.executable).parent / "keha-maksatus"


def run_cli(*args: str, key: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KEHA_PSEUDONYM_KEY"}  # DAGSTER_HOME: the tests' instance (conftest)
    if key:
        env["KEHA_PSEUDONYM_KEY"] = key
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def test_run_on_the_bundled_sample(tmp_path):
    published = tmp_path / "wh" / "maksatus.duckdb"
    done = run_cli("run", "--warehouse", str(published))
    assert done.returncode == 0, done.stderr
    assert "demo key" in done.stderr
    assert "kpi.quality_section" in done.stdout and str(published) in done.stdout
    con = duckdb.connect(str(published), read_only=True)
    try:
        rows = con.execute("SELECT period_label, indicator, value FROM kpi.quality_section").fetchall()
        rejected = con.execute("SELECT count(DISTINCT (file_id, line)) FROM quality.quarantine").fetchall()[0][0]
        files = con.execute("SELECT count(*) FROM quality.ingest_log WHERE status = 'ingested'").fetchall()[0][0]
        forecasts = con.execute("SELECT period_label, indicator, median, probability_meets_target FROM kpi.forecast").fetchall()
    finally:
        con.close()
    # The sample's year 2022 is still running: its forecast is printed as published.
    assert forecasts and "kpi.forecast (year-end nowcast" in done.stdout
    for period, indicator, median, probability in forecasts:
        decimals = 2 if indicator.endswith("tyytyvaisyys") else 1
        assert any(period in line and indicator in line and f"{median:.{decimals}f}" in line and f"{probability:.0%}" in line
                   for line in done.stdout.splitlines())
    assert {r[0] for r in rows} == {"1-6/2021", "1-12/2021", "1-6/2022", "1-12/2022"}
    for period, indicator, value in rows:  # the printed table shows the published values
        decimals = 2 if indicator.endswith("tyytyvaisyys") else 1
        assert any(period in line and indicator in line and f"{value:.{decimals}f}" in line for line in done.stdout.splitlines())
    assert rejected > 0 and files == len(list(SAMPLE.iterdir()))


def test_blocking_check_stops_the_publish_with_a_clear_message(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(SAMPLE, landing)
    published = tmp_path / "wh" / "maksatus.duckdb"
    assert run_cli("run", "--landing", str(landing), "--warehouse", str(published), key="k").returncode == 0
    before = published.read_bytes()
    shutil.rmtree(warehouse_files(published).state_dir)
    for path in landing.glob("maksatuspaatokset_2021*"):
        path.unlink()
    done = run_cli("run", "--landing", str(landing), "--warehouse", str(published), key="k")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("error: the blocking check enough_data_to_publish failed")
    assert "decisions:" in line and "nothing was published" in line and "KEHA_MIN_DATA_SHARE" in line and "Dagster run " in line
    assert published.read_bytes() == before


def test_missing_key_outside_the_sample_stops_before_writing(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(SAMPLE, landing)
    edited = landing / "asiakaspalaute_2022-10-31.csv"  # a sample file edited is no sample file
    edited.write_bytes(edited.read_bytes().replace(b"\r\n", b"\n"))
    published = tmp_path / "wh" / "maksatus.duckdb"
    done = run_cli("run", "--landing", str(landing), "--warehouse", str(published))
    assert done.returncode == 2 and "KEHA_PSEUDONYM_KEY" in done.stderr and edited.name in done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: ")
    assert not published.parent.exists()


def test_sample_is_deterministic_and_extracts_progress(tmp_path):
    for out in ("a", "b"):
        assert run_cli("sample", "--out", str(tmp_path / out), "--decisions", "3000", "--feedback", "500", "--seed", "7").returncode == 0
    digests = {
        out: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / out).iterdir()} for out in ("a", "b")
    }
    assert digests["a"] == digests["b"] and len(digests["a"]) == 6
    formats = {p.suffix for p in (tmp_path / "a").iterdir()}
    assert formats == {".csv", ".xlsx", ".parquet"}

    first, *rest = sorted((tmp_path / "a").glob("maksatuspaatokset_*"))
    first = read_export(first).frame
    later = pl.concat([read_export(p).frame.select("hakemus_id", "paatetty") for p in rest])
    pending_then = first.filter(pl.col("paatetty").is_null())["hakemus_id"]
    decided_later = later.filter(pl.col("hakemus_id").is_in(pending_then.implode()) & pl.col("paatetty").is_not_null())
    assert pending_then.len() > 0 and decided_later.height > 0


def test_committed_sample_is_the_generators_output(tmp_path):
    assert run_cli("sample", "--out", str(tmp_path / "s")).returncode == 0
    for path in SAMPLE.iterdir():
        assert path.read_bytes() == (tmp_path / "s" / path.name).read_bytes(), path.name


def test_sample_failures_end_in_one_line(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file, not a folder")
    for out, code, words in ((a_file, 2, "is a file"), (a_file / "sample", 1, "cannot write the sample")):
        done = run_cli("sample", "--out", str(out), "--decisions", "100", "--feedback", "50")
        assert done.returncode == code
        [line] = done.stderr.splitlines()
        assert line.startswith("error: ") and words in line and str(out) in line
    done = run_cli("sample", "--debug", "--out", str(a_file))
    assert "Traceback" in done.stderr and done.stderr.splitlines()[-1].startswith("error: ")
