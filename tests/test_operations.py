"""Operations, as an operator meets them: warehouses that share a folder, pseudonym keys,
two runs at once, a writing connection on the published file, and the Dagster instance
that records `keha-maksatus run`. Each drives the real command on real DuckDB files."""

import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keha_maksatus.config import Settings, load_settings
from keha_maksatus.errors import ConfigurationError, KeyMismatchError, PublishedFileLockedError, RunLockedError
from keha_maksatus.ingest.privacy import pseudonym
from keha_maksatus.outputs.publish import open_published, output_folders
from keha_maksatus.outputs.report import REPORT_NAME
from keha_maksatus.state import RunLock, key_check, warehouse_files
from pipelines.cli import instance_home, instance_overrides, open_instance, run_failure
from pipelines.definitions import build_definitions

from conftest import DECISION_HEADER, FEEDBACK_HEADER, HETU, YTUNNUS, decision, response, write_export

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "keha-maksatus"
RUN_ID = re.compile(r"Dagster run:\s+([0-9a-f-]{36})")


def run_cli(*args: str, key: str | None = "operations-key", cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KEHA_")} | env
    if key:
        environment["KEHA_PSEUDONYM_KEY"] = key
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=environment, cwd=cwd or REPO, timeout=600)


def start_cli(*args: str, key: str = "operations-key", **env: str) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KEHA_")} | env | {"KEHA_PSEUDONYM_KEY": key}
    return subprocess.Popen([str(CLI), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def landing_of(folder: Path, prefix: str, customer: str, rows: int) -> Path:
    """A small landing folder; the same file names in every landing, different contents."""
    write_export(folder, "maksatuspaatokset_2022-06-30.csv", DECISION_HEADER, [
        decision(f"{prefix}{i}", "1.1.2022", f"{5 + i}.2.2022", asiakas=customer) for i in range(1, rows + 1)
    ])
    write_export(folder, "asiakaspalaute_2022-06-30.csv", FEEDBACK_HEADER, [
        response(f"{prefix}V{i}", "1.3.2022", str(1 + i % 5)) for i in range(rows * 2)
    ])
    return folder


def the_one_error_line(done: subprocess.CompletedProcess) -> str:
    """A failure's stderr: exactly one line, `error: ...`, no trace."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and "Stack Trace" not in done.stderr
    return lines[0]


def query(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under folder with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- one warehouse, one working state ---------------------------------------------------


def test_two_warehouses_in_one_folder_share_nothing(tmp_path):
    first = landing_of(tmp_path / "landing_a", "A", HETU, 6)
    second = landing_of(tmp_path / "landing_b", "B", YTUNNUS, 3)
    warehouse_a, warehouse_b = tmp_path / "wh" / "a.duckdb", tmp_path / "wh" / "b.duckdb"

    assert run_cli("run", "--landing", str(first), "--warehouse", str(warehouse_a), key="key-a").returncode == 0
    report_a = output_folders(warehouse_a).report / f"{REPORT_NAME}.md"
    before = report_a.read_bytes()
    done = run_cli("run", "--landing", str(second), "--warehouse", str(warehouse_b), key="key-b")
    assert done.returncode == 0, done.stderr
    assert report_a.read_bytes() == before  # the second warehouse wrote its own report
    again = run_cli("run", "--landing", str(first), "--warehouse", str(warehouse_a), key="key-a")
    assert again.returncode == 0, again.stderr

    for published, prefix, customer, key, rows in ((warehouse_a, "A", HETU, b"key-a", 6), (warehouse_b, "B", YTUNNUS, b"key-b", 3)):
        files = warehouse_files(published)
        for path in (published, files.working_file):  # the published file and its own working state
            ids = {row[0] for row in query(path, "SELECT hakemus_id FROM core.decisions")}
            assert ids == {f"{prefix}{i}" for i in range(1, rows + 1)}
            assert query(path, "SELECT asiakas_hash FROM core.customers") == [(pseudonym(key, customer),)]
            assert query(path, "SELECT count(*) FROM quality.ingest_log")[0][0] == 2
        assert (files.outputs.report / f"{REPORT_NAME}.html").exists() and (files.outputs.dashboards / "index.html").exists()
        exported = query(published, "SELECT DISTINCT n FROM kpi.quality_section WHERE indicator = 'maksatus_kasittelyaika_pv'")
        assert exported == [(rows,)]
    assert sorted(p.name for p in (tmp_path / "wh").iterdir()) == [
        ".a.duckdb.work", ".b.duckdb.work", "a.duckdb", "a.duckdb.outputs", "b.duckdb", "b.duckdb.outputs",
    ]


names = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda name: name not in (".", "..")
)


@given(names, names)
@settings(max_examples=300, deadline=None)
def test_any_two_file_names_get_their_own_state_and_outputs(first, second):
    folder = Path("/srv/warehouses")
    a, b = warehouse_files(folder / first), warehouse_files(folder / second)
    own = lambda files: {files.state_dir, files.outputs_dir, *vars(files.outputs).values()}  # noqa: E731
    for files in (a, b):
        assert files.state_dir.parent == files.outputs_dir.parent == folder
        assert files.published not in own(files) and files.state_dir != files.outputs_dir
    if first != second:
        assert not own(a) & own(b)


def test_another_key_on_an_existing_state_stops_and_changes_nothing(tmp_path):
    landing = landing_of(tmp_path / "landing", "H", HETU, 6)
    published = tmp_path / "wh" / "maksatus.duckdb"
    assert run_cli("run", "--landing", str(landing), "--warehouse", str(published), key="first-key").returncode == 0
    files = warehouse_files(published)
    assert files.key_check_file.read_text().strip() == key_check(b"first-key")
    assert all(b"first-key" not in path.read_bytes() for path in files.state_dir.iterdir())  # a check, never the key
    write_export(landing, "maksatuspaatokset_2022-12-31.csv", DECISION_HEADER, [decision("N1", "1.7.2022", "9.7.2022")])
    before = snapshot(tmp_path / "wh")

    for other in ("second-key", None):  # another key, or none: the sample's demo key does not serve this folder
        done = run_cli("run", "--landing", str(landing), "--warehouse", str(published), key=other)
        assert done.returncode == 2
        line = the_one_error_line(done)
        assert ("another pseudonym key" in line and str(files.state_dir) in line) or "KEHA_PSEUDONYM_KEY" in line
        assert snapshot(tmp_path / "wh") == before

    # Rotating the key is a rebuild of the state from the landing folder (README).
    shutil.rmtree(files.state_dir)
    done = run_cli("run", "--landing", str(landing), "--warehouse", str(published), key="second-key")
    assert done.returncode == 0, done.stderr
    assert query(published, "SELECT asiakas_hash FROM core.customers") == [(pseudonym(b"second-key", HETU),)]
    assert query(published, "SELECT count(*) FROM core.decisions")[0][0] == 7


def test_a_dagster_run_with_another_key_fails_as_a_configuration_error(tmp_path, monkeypatch):
    """The check holds for runs that `dagster dev` starts too (the resource checks the key)."""
    landing = landing_of(tmp_path / "landing", "H", HETU, 6)
    published = tmp_path / "wh" / "maksatus.duckdb"
    job = build_definitions(str(landing), str(published)).resolve_job_def("nightly")
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "first-key")
    assert job.execute_in_process(instance=dg.DagsterInstance.ephemeral()).success
    working = warehouse_files(published).working_file.read_bytes()
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "second-key")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    failure = run_failure(result, published)
    assert failure.exit_code == KeyMismatchError.exit_code == 2 and "another pseudonym key" in str(failure)
    assert warehouse_files(published).working_file.read_bytes() == working


# --- one run at a time ------------------------------------------------------------------


def wait_for_lock_holder(files, process: subprocess.Popen) -> None:
    """Until `process` has taken the run lock (its PID is in the lock file)."""
    while f'"pid": {process.pid},' not in (files.lock_file.read_text() if files.lock_file.exists() else ""):
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)


def test_a_second_run_waits_for_the_first_then_stops_naming_it(tmp_path):
    landing = landing_of(tmp_path / "landing", "H", HETU, 6)
    published = tmp_path / "wh" / "maksatus.duckdb"
    files = warehouse_files(published)
    args = ("run", "--landing", str(landing), "--warehouse", str(published))
    first = start_cli(*args)
    waiting = None
    try:
        wait_for_lock_holder(files, first)
        first.send_signal(signal.SIGSTOP)  # the first run holds the lock, paused mid-run
        holder_run_id = re.search(r'"dagster_run_id": "([0-9a-f-]+)"', files.lock_file.read_text())[1]

        stopped = run_cli(*args, KEHA_RUN_LOCK_WAIT_SECONDS="0.3")
        assert stopped.returncode == 1
        line = the_one_error_line(stopped)
        assert f"PID {first.pid}" in line and holder_run_id in line and "started" in line and "KEHA_RUN_LOCK_WAIT_SECONDS" in line

        waiting = start_cli(*args, KEHA_RUN_LOCK_WAIT_SECONDS="300")
        notice = waiting.stdout.readline()  # it says whom it waits for, then waits
        assert notice.startswith("waiting for the run") and f"PID {first.pid}" in notice
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=300) == 0, first.communicate()
        out, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 0, err
    finally:
        first.send_signal(signal.SIGCONT)
        for process in (first, waiting):
            if process and process.poll() is None:
                process.kill()
                process.wait()
    assert query(published, "SELECT count(*) FROM quality.ingest_log WHERE status = 'ingested'")[0][0] == 2
    with open_instance(instance_home()) as instance:  # both runs are in the instance
        assert instance.get_run_by_id(holder_run_id).status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_run_by_id(RUN_ID.search(out)[1]).status == dg.DagsterRunStatus.SUCCESS


def test_the_run_lock_is_shared_by_one_run_only(tmp_path):
    """The command line and its run's resource share the lock (same run id); another run,
    even in the same process, waits and is told who holds it; a finished run leaves no name."""
    files = warehouse_files(tmp_path / "m.duckdb")
    command, resource, other = RunLock(files), RunLock(files), RunLock(files)
    command.acquire(0, run_id="run-1")
    resource.acquire(0, run_id="run-1")
    with pytest.raises(RunLockedError, match=f"PID {os.getpid()}, started .*, Dagster run run-1; waited 0.1 s"):
        other.acquire(0.1, run_id="run-2")
    resource.release()
    with pytest.raises(RunLockedError):
        other.acquire(0, run_id="run-2")
    other.release()  # it holds nothing: no effect
    command.release()
    assert files.lock_file.read_text() == ""
    other.acquire(0, run_id="run-2")
    assert '"dagster_run_id": "run-2"' in files.lock_file.read_text()
    other.release()


HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1]) if sys.argv[2] == "duckdb" else None
if con is None:
    from keha_maksatus.state import RunLock, warehouse_files
    RunLock(warehouse_files(sys.argv[1])).acquire(0)
print("holding", flush=True)
sys.stdin.readline()
"""


def hold(path: Path, how: str) -> subprocess.Popen:
    """Another process holding `path` (a writing DuckDB connection, or the run lock) until told."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), how], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "holding\n"
    return process


def let_go(process: subprocess.Popen) -> None:
    process.stdin.close()
    process.wait(timeout=60)


def test_a_run_started_by_dagster_also_waits_for_the_lock(tmp_path, monkeypatch):
    landing = landing_of(tmp_path / "landing", "H", HETU, 6)
    published = tmp_path / "wh" / "maksatus.duckdb"
    monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "k")
    monkeypatch.setenv("KEHA_RUN_LOCK_WAIT_SECONDS", "0.2")
    holder = hold(published, "lock")
    try:
        job = build_definitions(str(landing), str(published)).resolve_job_def("nightly")
        result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    finally:
        let_go(holder)
    failure = run_failure(result, published)
    assert failure.exit_code == RunLockedError.exit_code == 1 and f"PID {holder.pid}" in str(failure)
    assert not published.exists() and not warehouse_files(published).working_file.exists()
    assert job.execute_in_process(instance=dg.DagsterInstance.ephemeral()).success  # the lock is free again


def test_a_writing_connection_on_the_published_file_stops_the_publish_naming_its_pid(tmp_path):
    landing = landing_of(tmp_path / "landing", "H", HETU, 6)
    published = tmp_path / "wh" / "maksatus.duckdb"
    args = ("run", "--landing", str(landing), "--warehouse", str(published))
    assert run_cli(*args).returncode == 0
    write_export(landing, "maksatuspaatokset_2022-12-31.csv", DECISION_HEADER, [decision("N1", "1.7.2022", "9.7.2022")])
    holder = hold(published, "duckdb")
    try:
        before = published.read_bytes()
        done = run_cli(*args, KEHA_PUBLISH_LOCK_WAIT_SECONDS="0.3")
        assert published.read_bytes() == before
    finally:
        let_go(holder)
    assert done.returncode == 1
    line = the_one_error_line(done)
    assert f"PID {holder.pid}" in line and str(published) in line and "read-only" in line
    assert query(published, "SELECT count(*) FROM core.decisions")[0][0] == 6
    done = run_cli(*args)  # once the connection is closed, the next run publishes
    assert done.returncode == 0, done.stderr
    assert query(published, "SELECT count(*) FROM core.decisions")[0][0] == 7


def test_open_published_retries_until_the_writer_lets_go(tmp_path):
    published = tmp_path / "p.duckdb"
    duckdb.connect(str(published)).close()
    holder = hold(published, "duckdb")
    opened = []
    try:
        with pytest.raises(PublishedFileLockedError, match=f"PID {holder.pid}"):
            open_published(published, 0)
        retrying = threading.Thread(target=lambda: opened.append(open_published(published, 120)))
        retrying.start()
        holder.stdin.close()  # the writer closes while the retries go on
        retrying.join(timeout=180)
    finally:
        holder.wait(timeout=60)
    assert len(opened) == 1
    assert opened[0].execute("SELECT 42").fetchall() == [(42,)]
    opened[0].close()


# --- every failure in one line ----------------------------------------------------------


@pytest.fixture
def small_landing(tmp_path) -> Path:
    return landing_of(tmp_path / "landing", "H", HETU, 6)


def bad_config(tmp_path: Path, settings_text: str | None = None, targets_text: str | None = None) -> str:
    folder = tmp_path / "config"
    shutil.copytree(REPO / "config", folder)
    if settings_text is not None:
        (folder / "settings.toml").write_text(settings_text)
    if targets_text is not None:
        (folder / "targets.toml").write_text(targets_text)
    return str(folder)


FAILURES = {
    # name: (arguments and environment from (tmp_path, landing), exit code, words the line must hold)
    "landing missing": (lambda t, l: (["--landing", str(t / "nowhere")], {}), 2, ["does not exist", "--landing"]),
    "landing is a file": (lambda t, l: (["--landing", str(l / "maksatuspaatokset_2022-06-30.csv")], {}), 2, ["is a file", "--landing"]),
    "warehouse is a folder": (lambda t, l: (["--warehouse", str(t)], {}), 2, ["is a folder", "maksatus.duckdb"]),
    "warehouse folder cannot be created": (lambda t, l: (["--warehouse", str(a_file(t) / "wh" / "m.duckdb")], {}), 2, ["cannot create", "is a file"]),
    "warehouse inside the landing folder": (lambda t, l: (["--warehouse", str(l / "m.duckdb")], {}), 2, ["inside the landing folder"]),
    "decimal comma in a setting": (lambda t, l: ([], {"KEHA_MAX_REJECTED_SHARE": "0,5"}), 2, ["KEHA_MAX_REJECTED_SHARE", "'0,5'", "decimal point"]),
    "not a number": (lambda t, l: ([], {"KEHA_MIN_DATA_SHARE": "abc"}), 2, ["KEHA_MIN_DATA_SHARE", "not a number"]),
    "share above 1": (lambda t, l: ([], {"KEHA_MAX_REJECTED_SHARE": "2"}), 2, ["out of range", "between 0 and 1"]),
    "negative share": (lambda t, l: ([], {"KEHA_MIN_DATA_SHARE": "-1"}), 2, ["out of range"]),
    "negative wait": (lambda t, l: ([], {"KEHA_RUN_LOCK_WAIT_SECONDS": "-5"}), 2, ["run_lock_wait_seconds", "out of range"]),
    "settings.toml missing": (lambda t, l: ([], {"KEHA_CONFIG_DIR": str(t / "no_config")}), 2, ["cannot read", "settings.toml", "KEHA_CONFIG_DIR"]),
    "settings.toml malformed": (lambda t, l: ([], {"KEHA_CONFIG_DIR": bad_config(t, settings_text="max_rejected_share = = 0.5\n")}), 2, ["settings.toml", "not valid TOML"]),
    "setting of the wrong type in the file": (
        lambda t, l: ([], {"KEHA_CONFIG_DIR": bad_config(t, settings_text='min_data_share = "lots"\n')}), 2, ["min_data_share", "not a number"]),
    "targets.toml malformed": (lambda t, l: ([], {"KEHA_CONFIG_DIR": bad_config(t, targets_text="[[target]\nyear = 2022\n")}), 2, ["targets.toml", "not valid TOML"]),
    "target without a value": (
        lambda t, l: ([], {"KEHA_CONFIG_DIR": bad_config(t, targets_text='[[target]]\nyear = 2022\nindicator = "maksatus_kasittelyaika_pv"\nop = "<"\n')}),
        2, ["targets.toml", "lacks value"]),
    "DAGSTER_HOME not a folder": (lambda t, l: ([], {"DAGSTER_HOME": str(t / "no_home")}), 2, ["DAGSTER_HOME", "not a folder"]),
    "published file is not a DuckDB file": (
        lambda t, l: (["--warehouse", str(not_duckdb(t))], {}), 1, ["not a valid DuckDB database file", "nothing was published", "--debug"]),
}


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("a file, not a folder")
    return path


def not_duckdb(tmp_path: Path) -> Path:
    path = tmp_path / "other" / "notes.duckdb"
    path.parent.mkdir()
    path.write_text("not a database")
    return path


@pytest.mark.parametrize("name", FAILURES)
def test_each_failure_ends_in_one_line_with_its_exit_code(tmp_path, small_landing, name):
    make, code, words = FAILURES[name]
    arguments, env = make(tmp_path, small_landing)
    if "--landing" not in arguments:
        arguments += ["--landing", str(small_landing)]
    if "--warehouse" not in arguments:
        arguments += ["--warehouse", str(tmp_path / "wh" / "maksatus.duckdb")]
    before = snapshot(tmp_path)
    done = run_cli("run", *arguments, **env)
    assert done.returncode == code, done.stderr
    line = the_one_error_line(done)
    assert all(word in line for word in words), line
    if code == 2:  # a configuration error writes nothing
        assert snapshot(tmp_path) == before and not (tmp_path / "wh").exists()


@pytest.mark.parametrize("name", ["settings.toml malformed", "published file is not a DuckDB file"])
def test_debug_adds_the_trace_and_still_ends_in_the_line(tmp_path, small_landing, name):
    make, code, words = FAILURES[name]
    arguments, env = make(tmp_path, small_landing)
    arguments += ["--landing", str(small_landing)] + ([] if "--warehouse" in arguments else ["--warehouse", str(tmp_path / "wh" / "m.duckdb")])
    done = run_cli("run", "--debug", *arguments, **env)
    assert done.returncode == code
    assert "Traceback" in done.stderr and done.stderr.splitlines()[-1].startswith("error: ")


def test_an_empty_landing_folder_never_publishes_an_empty_warehouse(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    published = tmp_path / "wh" / "maksatus.duckdb"
    done = run_cli("run", "--landing", str(empty), "--warehouse", str(published))
    assert done.returncode == 1 and "nothing to ingest" in the_one_error_line(done)
    assert not (tmp_path / "wh").exists()

    # A state that lost its files (a rebuild from an emptied folder) does not publish over the real warehouse.
    landing = landing_of(tmp_path / "landing", "H", HETU, 6)
    assert run_cli("run", "--landing", str(landing), "--warehouse", str(published)).returncode == 0
    before = published.read_bytes()
    shutil.rmtree(warehouse_files(published).state_dir)
    done = run_cli("run", "--landing", str(empty), "--warehouse", str(published))
    assert done.returncode == 1 and "nothing to ingest" in the_one_error_line(done)
    assert published.read_bytes() == before

    # With the state there, an emptied landing folder changes no figure: nothing new to ingest.
    assert run_cli("run", "--landing", str(landing), "--warehouse", str(published)).returncode == 0
    figures = query(published, "SELECT * FROM kpi.quality_section ORDER BY ALL")
    for path in landing.iterdir():
        path.unlink()
    done = run_cli("run", "--landing", str(landing), "--warehouse", str(published))
    assert done.returncode == 0 and "nothing new to ingest" in done.stdout and done.stderr == ""
    assert query(published, "SELECT * FROM kpi.quality_section ORDER BY ALL") == figures


NUMBER_RANGES = {"max_rejected_share": (0, 1), "min_data_share": (0, 1), "landing_quiet_seconds": (0, math.inf),
                 "run_lock_wait_seconds": (0, math.inf), "publish_lock_wait_seconds": (0, math.inf)}


def usable_number(value: object, lowest: float, highest: float) -> bool:
    """The rule, restated: a plain ASCII decimal number (given as a number or as text) in range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    text = str(value).strip()
    if not text.isascii() or "_" in text:
        return False
    try:
        number = float(text)
    except ValueError:
        return False
    return math.isfinite(number) and lowest <= number <= highest


@given(st.sampled_from(sorted(NUMBER_RANGES)), st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=10),
    st.floats().map(str), st.integers(-3, 3).map(str), st.sampled_from(["0,5", "0.5", " 1 ", "1e-1", "5.", ".5", "1_0", "nan", "-0"]),
))
@settings(max_examples=300, deadline=None)
def test_any_value_of_a_numeric_setting_loads_or_stops_in_one_line(name, value):
    variable = f"KEHA_{name.upper()}"
    previous = os.environ.get(variable)
    os.environ[variable] = value
    try:
        loaded = load_settings()
    except ConfigurationError as error:
        assert value.strip() and not usable_number(value, *NUMBER_RANGES[name])
        assert "\n" not in str(error) and variable in str(error) and repr(value) in str(error)
    else:
        expected = float(value) if value.strip() else getattr(Settings(), name)  # an empty variable counts as unset
        assert not value.strip() or usable_number(value, *NUMBER_RANGES[name])
        assert getattr(loaded, name) == expected
    finally:
        os.environ.pop(variable) if previous is None else os.environ.__setitem__(variable, previous)


toml_values = st.one_of(st.integers(-3, 3), st.floats(), st.booleans(), st.text(max_size=6), st.lists(st.text(max_size=3), max_size=2))


def toml_literal(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


@given(st.dictionaries(st.sampled_from([*NUMBER_RANGES, "offices"]), toml_values, max_size=4))
@settings(max_examples=300, deadline=None)
def test_any_settings_file_loads_or_stops_in_one_line(values):
    for name in NUMBER_RANGES:
        os.environ.pop(f"KEHA_{name.upper()}", None)
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(REPO / "config" / "targets.toml", folder)
        (Path(folder) / "settings.toml").write_text("".join(f"{k} = {toml_literal(v)}\n" for k, v in values.items()), encoding="utf-8")
        usable = all(usable_number(v, *NUMBER_RANGES[k]) for k, v in values.items() if k != "offices") and (
            "offices" not in values or (isinstance(values["offices"], list) and all(isinstance(c, str) for c in values["offices"]))
        )
        try:
            loaded = load_settings(Path(folder))
        except ConfigurationError as error:
            assert "\n" not in str(error) and "settings.toml" in str(error)
            assert not usable or "not valid TOML" in str(error)  # e.g. a lone surrogate in a string
        else:
            assert usable
            for name, value in values.items():
                assert getattr(loaded, name) == (tuple(value) if name == "offices" else float(str(value).strip()))


def without_root_powers() -> list[str]:
    """A command prefix under which file permissions bind: none for a user, and for root
    (who ignores them) setpriv dropping the capabilities that override them."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permissions cannot be made to bind")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("case", ["read-only warehouse folder", "parent under a read-only folder", "unreadable landing folder"])
def test_permissions_fail_in_one_line(tmp_path, small_landing, case):
    locked = tmp_path / "locked"
    locked.mkdir()
    published = {"read-only warehouse folder": locked / "m.duckdb", "parent under a read-only folder": locked / "new" / "m.duckdb"}.get(
        case, tmp_path / "wh" / "m.duckdb"
    )
    locked.chmod(0o555)
    if case == "unreadable landing folder":
        small_landing.chmod(0o000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEHA_")} | {"KEHA_PSEUDONYM_KEY": "k"}
    try:
        done = subprocess.run(
            [*without_root_powers(), str(CLI), "run", "--landing", str(small_landing), "--warehouse", str(published)],
            capture_output=True, text=True, env=env, timeout=600,
        )
    finally:
        small_landing.chmod(0o755)
        locked.chmod(0o755)
    assert done.returncode == 2, done.stderr
    line = the_one_error_line(done)
    assert ("cannot be read" in line) if case == "unreadable landing folder" else ("read-only" in line and str(locked) in line)
    assert list(locked.iterdir()) == [] and not (tmp_path / "wh").exists()


# --- the Dagster instance ---------------------------------------------------------------


def test_a_run_is_recorded_in_dagster_home_whatever_the_working_directory(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    shutil.copy(REPO / "dagster.yaml", home)
    landing = landing_of(tmp_path / "landing", "H", HETU, 6)
    done = run_cli("run", "--landing", str(landing), "--warehouse", str(tmp_path / "wh" / "m.duckdb"), cwd=elsewhere, DAGSTER_HOME=str(home))
    assert done.returncode == 0, done.stderr
    run_id = RUN_ID.search(done.stdout)[1]
    with open_instance(home) as instance:
        run = instance.get_run_by_id(run_id)
        assert run.job_name == "nightly" and run.status == dg.DagsterRunStatus.SUCCESS
    assert (home / ".dagster" / "storage").is_dir() and list(elsewhere.iterdir()) == []


def test_without_dagster_home_the_command_uses_the_instance_make_dev_shows(tmp_path, monkeypatch):
    make = subprocess.run(["make", "-C", str(REPO), "-pn", "dev"], capture_output=True, text=True, cwd=tmp_path)
    make_home = Path(re.search(r"^DAGSTER_HOME := (.+)$", make.stdout, re.MULTILINE)[1])
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.chdir(tmp_path)
    assert instance_home() == make_home == REPO
    # `make dev` runs Dagster in the repo root, where dagster.yaml's relative folders lead;
    # the command anchors them there from any working directory.
    overrides = instance_overrides(instance_home())
    assert overrides["storage"]["sqlite"]["base_dir"] == str(REPO / ".dagster" / "storage")
    assert overrides["compute_logs"]["config"]["base_dir"] == str(REPO / ".dagster" / "logs")
    assert overrides["local_artifact_storage"]["config"]["base_dir"] == str(REPO / ".dagster" / "artifacts")
