"""Crashes, concurrent readers and idempotence: the published warehouse is always whole."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from keha_maksatus.failpoints import ENV as FAILPOINT_ENV
from keha_maksatus.outputs.publish import PUBLISHED_TABLES, output_folders
from keha_maksatus.state import warehouse_files
from pipelines.assets.history import FIGURES_AS_OF
from pipelines.definitions import defs
from pipelines.resources import WarehouseResource

from conftest import DECISION_HEADER, FEEDBACK_HEADER, HETU, decision, response, write_export

CLI = Path(sys.executable).parent / "keha-maksatus"
# Left out of the publishes: the people-facing outputs, and the as-of build (on request only, needs its date).
OUTPUT_ASSETS = {"quality_report", "dashboard_pages", "kpi_exports", FIGURES_AS_OF}


def base_landing(folder: Path) -> Path:
    write_export(folder, "maksatuspaatokset_2022-06-30.csv", DECISION_HEADER, [
        decision(f"H{i}", "1.1.2022", f"{10 + i}.1.2022", asiakas=HETU) for i in range(1, 8)
    ] + [decision("P1", "1.5.2022")])
    write_export(folder, "asiakaspalaute_2022-06-30.csv", FEEDBACK_HEADER, [
        response(f"V{i}", "1.3.2022", str(3 + i % 3)) for i in range(12)
    ])
    return folder


def run_cli(landing: Path, published: Path, failpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != FAILPOINT_ENV}
    env["KEHA_PSEUDONYM_KEY"] = "robustness"
    if failpoint:
        env[FAILPOINT_ENV] = failpoint
    return subprocess.run(
        [str(CLI), "run", "--landing", str(landing), "--warehouse", str(published)],
        capture_output=True, text=True, env=env, timeout=600,
    )


def table_hashes(path: Path) -> dict[str, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            table: hashlib.sha256(repr(con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()).encode()).hexdigest()
            for table in PUBLISHED_TABLES
            if table != "quality.ingest_log"
        } | {"files": repr(con.execute("SELECT file_name, status, rows_read FROM quality.ingest_log ORDER BY ALL").fetchall())}
    finally:
        con.close()


def leftovers(folder: Path, published: Path) -> list[str]:
    """Hidden build files or folders of a crashed run (the working state folder is expected)."""
    state_dir = warehouse_files(published).state_dir.name
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob(".*")
        if p.name != state_dir and state_dir not in p.relative_to(folder).parts[:-1]
    )


@pytest.mark.parametrize("stage", ["ingest", "validate", "kpi", "publish"])
def test_sigkill_inside_a_stage_keeps_the_published_warehouse(tmp_path, stage):
    landing, published = base_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    assert run_cli(landing, published).returncode == 0
    before = table_hashes(published)
    write_export(landing, "maksatuspaatokset_2022-12-31.csv", DECISION_HEADER, [decision("P1", "1.5.2022", "20.5.2022")])

    killed = run_cli(landing, published, failpoint=stage)
    assert killed.returncode == -9, killed.stderr
    assert table_hashes(published) == before  # previous warehouse, intact and readable

    again = run_cli(landing, published)
    assert again.returncode == 0, again.stderr
    con = duckdb.connect(str(published), read_only=True)
    try:
        assert con.execute("SELECT paatetty IS NOT NULL FROM core.decisions WHERE hakemus_id = 'P1'").fetchall() == [(True,)]
        assert con.execute("SELECT count(*) FROM quality.ingest_log").fetchall()[0][0] == 3
    finally:
        con.close()
    assert leftovers(published.parent, published) == []


def test_sigkill_while_writing_outputs_is_repaired_by_the_next_run(tmp_path):
    landing, published = base_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    assert run_cli(landing, published).returncode == 0
    report = output_folders(published).report / "laatuosio.md"
    old_report = report.read_text(encoding="utf-8")
    write_export(landing, "maksatuspaatokset_2022-12-31.csv", DECISION_HEADER, [decision("H9", "1.7.2022", "20.7.2022")])
    assert run_cli(landing, published, failpoint="outputs").returncode == -9
    assert report.read_text(encoding="utf-8") == old_report  # the old report stays whole until replaced
    assert run_cli(landing, published).returncode == 0
    assert report.read_text(encoding="utf-8") != old_report and "Toteuma 12/2022" in report.read_text(encoding="utf-8")
    assert leftovers(published.parent, published) == []


READER = textwrap.dedent(
    """
    import json, sys, time, duckdb
    path, stop, out = sys.argv[1:4]
    errors, rounds = [], 0
    kept = duckdb.connect(path, read_only=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            kept.execute("SELECT count(*), sum(n) FROM kpi.quality_section").fetchall()
            fresh = duckdb.connect(path, read_only=True)
            fresh.execute("SELECT count(*), sum(n) FROM kpi.quality_section").fetchall()
            fresh.close()
            rounds += 1
        except Exception as error:
            errors.append(repr(error))
        try:
            open(stop).close()
            break
        except OSError:
            pass
    kept.close()
    json.dump({"errors": errors, "rounds": rounds}, open(out, "w"))
    """
)


def test_concurrent_reader_during_twenty_publishes(tmp_path, monkeypatch):
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "readers")
    landing, published = base_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    resource = WarehouseResource(landing_dir=str(landing), warehouse_path=str(published))
    assets = [a for a in defs.assets if not ({k.to_user_string() for k in a.keys} & OUTPUT_ASSETS)]

    def run() -> None:
        result = dg.materialize([*assets, *defs.asset_checks], resources={"warehouse": resource}, instance=dg.DagsterInstance.ephemeral())
        assert result.success

    run()
    script, stop, out = tmp_path / "reader.py", tmp_path / "stop", tmp_path / "reader.json"
    script.write_text(READER)
    reader = subprocess.Popen([sys.executable, str(script), str(published), str(stop), str(out)])
    try:
        for i in range(20):
            write_export(landing, f"maksatuspaatokset_2022-07-{i + 1:02d}.csv", DECISION_HEADER, [decision(f"N{i}", "1.6.2022", "30.6.2022")])
            run()
            fresh = duckdb.connect(str(published), read_only=True)
            try:
                assert fresh.execute("SELECT count(*) FROM core.decisions").fetchall()[0][0] == 8 + i + 1
            finally:
                fresh.close()
    finally:
        stop.touch()
        reader.wait(timeout=120)
    report = json.loads(out.read_text())
    assert report["errors"] == [] and report["rounds"] > 20


def test_idempotent_runs_and_redropped_files(tmp_path):
    landing, published = base_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    assert run_cli(landing, published).returncode == 0
    first = table_hashes(published)
    assert run_cli(landing, published).returncode == 0
    assert table_hashes(published) == first  # no new files: identical tables
    (landing / "maksatuspaatokset_kopio.csv").write_bytes((landing / "maksatuspaatokset_2022-06-30.csv").read_bytes())
    assert run_cli(landing, published).returncode == 0
    after = table_hashes(published)
    assert {k: v for k, v in after.items() if k not in ("files", "quality.quarantine")} == {
        k: v for k, v in first.items() if k not in ("files", "quality.quarantine")
    }
    con = duckdb.connect(str(published), read_only=True)
    try:
        status = con.execute("SELECT status, reason FROM quality.ingest_log WHERE file_name = 'maksatuspaatokset_kopio.csv'").fetchall()
    finally:
        con.close()
    assert status[0][0] == "duplicate_content" and "maksatuspaatokset_2022-06-30.csv" in status[0][1]
