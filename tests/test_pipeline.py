"""The real Dagster assets and checks on small files in tmp_path."""

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from keha_maksatus.outputs.publish import PUBLISHED_TABLES
from keha_maksatus.state import warehouse_files
from pipelines.definitions import build_definitions, defs
from pipelines.resources import WarehouseResource
from pipelines.schedules import nightly_job
from pipelines.sensors import new_exports_sensor

from conftest import DECISION_HEADER, FEEDBACK_HEADER, HETU, YTUNNUS, decision, response, write_export

D = "maksatuspaatokset_{}.csv"
F = "asiakaspalaute_{}.csv"


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "pipeline-test-key")


def small_landing(folder: Path) -> Path:
    write_export(folder, D.format("2022-06-30"), DECISION_HEADER, [
        decision("H1", "1.1.2022", "11.1.2022", asiakas=HETU),
        decision("H2", "1.2.2022", asiakas=YTUNNUS),
        decision("H3", "1.3.2022", "20.3.2022", tukimuoto="esr", yksikko="ELY-KES"),
        decision("H4", "31.2.2022"),  # rejected
    ])
    write_export(folder, D.format("2022-12-31"), DECISION_HEADER, [
        decision("H2", "1.2.2022", "1.4.2022", asiakas=YTUNNUS),
        decision("H5", "1.9.2022", "15.9.2022", yksikko="TE-XYZ"),  # unlisted office: kept, warned
    ])
    write_export(folder, F.format("2022-12-31"), FEEDBACK_HEADER, [
        response(f"V{i}", f"{i + 1}.3.2022", str(score), teksti=f"soita 040 123 456{i}")
        for i, score in enumerate([5, 4, 4, 3, 5, 5])
    ] + [response("V9", "1.3.2022", "6")], encoding="cp1252")
    return folder


def materialize(landing: Path, published: Path) -> dg.ExecuteInProcessResult:
    resource = WarehouseResource(landing_dir=str(landing), warehouse_path=str(published))
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=nightly_job.selection,  # what the nightly run materializes (not the on-request figures_as_of)
        resources={"warehouse": resource},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def table_hashes(path: Path) -> dict[str, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        hashes = {}
        for table in PUBLISHED_TABLES:
            if table == "quality.ingest_log":  # ingested_at differs by design
                rows = con.execute(f"SELECT * EXCLUDE (ingested_at) FROM {table} ORDER BY ALL").fetchall()
            else:
                rows = con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            hashes[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return hashes
    finally:
        con.close()


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)  # what dagster dev and the webserver do: unique names and all
    job = defs.resolve_job_def("nightly")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} >= {
        "ingested_files", "decisions", "feedback", "quality_section", "backlog", "published_warehouse",
    }
    schedule = defs.resolve_schedule_def("nightly_at_two")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "Europe/Helsinki")
    assert defs.resolve_sensor_def("new_exports_sensor").job_name == "nightly"
    groups = {spec.key.to_user_string(): spec.group_name for spec in defs.resolve_all_asset_specs()}
    assert {groups["ingested_files"], groups["decisions"], groups["quality_section"], groups["published_warehouse"]} == {
        "ingest", "validate", "kpi", "publish",
    }


def test_run_twice_publishes_identical_tables(tmp_path):
    landing, published = small_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    first = materialize(landing, published)
    assert first.success
    found = checks(first)
    assert found["no_file_quarantined_whole"].passed and found["rows_accounted_for"].passed
    assert not found["unlisted_codes"].passed  # TE-XYZ
    assert found["unlisted_codes"].severity == dg.AssetCheckSeverity.WARN
    before = table_hashes(published)

    second = materialize(landing, published)
    assert second.success
    assert table_hashes(published) == before
    ingest = next(m for m in second.asset_materializations_for_node("ingest_landing_folder") if m.asset_key.to_user_string() == "ingested_files")
    assert ingest.metadata["new_files"].value == 0

    con = duckdb.connect(str(published), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM core.decisions").fetchall()[0][0] == 4
        assert con.execute("SELECT count(DISTINCT line) FROM quality.quarantine").fetchall()[0][0] == 2
        assert con.execute("SELECT count(*) FROM kpi.quality_section").fetchall()[0][0] == 4
        assert con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'quality_section'").fetchall()[0][0]
    finally:
        con.close()
    # No staging files are left beside the published one.
    assert sorted(p.name for p in published.parent.iterdir()) == [".maksatus.duckdb.work", "maksatus.duckdb", "maksatus.duckdb.outputs"]
    assert sorted(p.name for p in (published.parent / "maksatus.duckdb.outputs").iterdir()) == ["dashboards", "exports", "raportti"]


def test_no_identity_code_or_contact_detail_reaches_the_warehouse(tmp_path):
    landing, published = small_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    assert materialize(landing, published).success
    for path in (published, *warehouse_files(published).state_dir.glob("*.duckdb")):
        con = duckdb.connect(str(path), read_only=True)
        try:
            columns = con.execute(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'"
            ).fetchall()
            text = repr([con.execute(f'SELECT "{c}" FROM {s}.{t}').fetchall() for s, t, c in columns])
        finally:
            con.close()
        for secret in (HETU, YTUNNUS, "040 123 456"):
            assert secret not in text, f"{secret} found in {path.name}"


def test_analyst_connection_survives_a_run_and_reconnecting_shows_new_data(tmp_path):
    landing, published = small_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    assert materialize(landing, published).success
    analyst = duckdb.connect(str(published), read_only=True)
    try:
        before = analyst.execute("SELECT count(*) FROM core.decisions").fetchall()[0][0]
        write_export(landing, D.format("2023-01-31"), DECISION_HEADER, [decision("H9", "2.1.2023", "20.1.2023")])
        assert materialize(landing, published).success
        # The open connection keeps its snapshot and keeps working.
        assert analyst.execute("SELECT count(*) FROM core.decisions").fetchall()[0][0] == before
    finally:
        analyst.close()
    fresh = duckdb.connect(str(published), read_only=True)
    try:
        assert fresh.execute("SELECT count(*) FROM core.decisions").fetchall()[0][0] == before + 1
    finally:
        fresh.close()


def test_file_quarantined_whole_is_an_error_but_the_run_goes_on(tmp_path):
    landing, published = small_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    write_export(landing, D.format("2022-11-30"), DECISION_HEADER, [
        decision("H7", "1.1.2022", "11.1.2022"), decision("H8", "x", "y"), decision("H9", "z", "w"),
    ])
    (landing / "maksatuspaatokset_2022-11-15.csv").write_bytes(b"\x00\x01binary\x00" * 20)
    result = materialize(landing, published)
    assert result.success
    check = checks(result)["no_file_quarantined_whole"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["files_held_back"].value == 2
    con = duckdb.connect(str(published), read_only=True)
    try:
        log = dict(con.execute("SELECT file_name, status FROM quality.ingest_log").fetchall())
        assert log[D.format("2022-11-30")] == "quarantined" and log["maksatuspaatokset_2022-11-15.csv"] == "unreadable"
        # H7 came from the quarantined file: not used, though the row itself was valid.
        assert con.execute("SELECT count(*) FROM core.decisions WHERE hakemus_id = 'H7'").fetchall()[0][0] == 0
        read, valid, rejected = con.execute(
            "SELECT rows_read, rows_valid, rows_rejected FROM quality.ingest_log WHERE status = 'quarantined'"
        ).fetchall()[0]
        assert (read, valid, rejected) == (3, 1, 2)
    finally:
        con.close()


def test_links_and_folders_are_logged_skipped_without_failing_the_file_check(tmp_path):
    landing, published = small_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    outside = write_export(tmp_path / "elsewhere", D.format("2022-12-31"), DECISION_HEADER, [decision("X1", "1.1.2022")])
    (landing / D.format("2023-01-31")).symlink_to(outside)
    (landing / D.format("2023-02-28")).mkdir()
    result = materialize(landing, published)
    assert result.success
    assert checks(result)["no_file_quarantined_whole"].passed
    con = duckdb.connect(str(published), read_only=True)
    try:
        log = dict(con.execute("SELECT file_name, status FROM quality.ingest_log").fetchall())
        assert log[D.format("2023-01-31")] == log[D.format("2023-02-28")] == "skipped"
        assert con.execute("SELECT count(*) FROM core.decisions WHERE hakemus_id = 'X1'").fetchall()[0][0] == 0
    finally:
        con.close()


def test_blocking_check_keeps_yesterdays_warehouse(tmp_path):
    landing, published = small_landing(tmp_path / "landing"), tmp_path / "wh" / "maksatus.duckdb"
    assert materialize(landing, published).success
    before = table_hashes(published)
    # The working state is lost and only part of the exports is there to rebuild from.
    shutil.rmtree(warehouse_files(published).state_dir)
    (landing / D.format("2022-06-30")).unlink()
    result = materialize(landing, published)
    assert not result.success
    check = checks(result)["enough_data_to_publish"]
    assert not check.passed and "markedly less data" in check.metadata["message"].value
    assert not result.asset_materializations_for_node("published_warehouse")
    assert table_hashes(published) == before


def test_sensor_waits_for_files_to_stop_changing(tmp_path):
    landing = small_landing(tmp_path / "landing")
    resources = {"warehouse": WarehouseResource(landing_dir=str(landing), warehouse_path=str(tmp_path / "wh.duckdb"))}
    with dg.build_sensor_context(resources=resources) as context:
        assert isinstance(new_exports_sensor(context), dg.SkipReason)  # all files were just written
    old = time.time() - 3600
    for path in landing.iterdir():
        os.utime(path, (old, old))
    (landing / "asiakaspalaute_2023-01-31.csv.part").write_text("partial")
    with dg.build_sensor_context(resources=resources) as context:
        request = new_exports_sensor(context)
        assert isinstance(request, dg.RunRequest)
        cursor = context.cursor
    with dg.build_sensor_context(resources=resources, cursor=cursor) as context:
        assert isinstance(new_exports_sensor(context), dg.SkipReason)  # nothing new since


def test_build_definitions_takes_paths(tmp_path):
    built = build_definitions(str(tmp_path / "in"), str(tmp_path / "out.duckdb"))
    assert built.resources["warehouse"].landing_dir == str(tmp_path / "in")


def test_sensor_never_picks_up_a_file_still_being_written(tmp_path, monkeypatch):
    monkeypatch.setenv("KEHA_LANDING_QUIET_SECONDS", "3")  # far above the writer's 0.1 s pauses
    landing = tmp_path / "landing"
    landing.mkdir()
    resources = {"warehouse": WarehouseResource(landing_dir=str(landing), warehouse_path=str(tmp_path / "wh.duckdb"))}
    path = landing / "maksatuspaatokset_2022-12-31.csv"
    stop = threading.Event()

    def slow_writer():
        with path.open("w", encoding="utf-8") as handle:
            handle.write(DECISION_HEADER + "\n")
            for i in range(10_000):
                if stop.is_set():
                    return
                handle.write(decision(f"S{i}", "1.2.2022") + "\n")
                handle.flush()
                time.sleep(0.1)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        for _ in range(15):  # 3 s of writing: never a run
            with dg.build_sensor_context(resources=resources) as context:
                assert isinstance(new_exports_sensor(context), dg.SkipReason)
            time.sleep(0.2)
    finally:
        stop.set()
        writer.join()
    time.sleep(3.5)
    with dg.build_sensor_context(resources=resources) as context:
        assert isinstance(new_exports_sensor(context), dg.RunRequest)
