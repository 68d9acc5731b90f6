"""The production instance of deploy/ with its real parts: a PostgreSQL server, the real
dagster-daemon and dagster-webserver on it, and a real SMTP server for the alert e-mail.

One deployment serves the whole module, in the order an operator meets it: the schedule's
02:00 tick, a new file for the sensor, a failed run and its alert, a restart of the daemon."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pytest
import yaml
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG

from keha_maksatus import state
from keha_maksatus.config import CONFIG_DIR_ENV, NUMBERS, env_name
from keha_maksatus.ingest.privacy import KEY_ENV
from keha_maksatus.outputs import alert_mail
from pipelines.definitions import LANDING_ENV, WAREHOUSE_ENV

from conftest import DECISION_HEADER, decision, write_export
from production import (
    DEPLOY,
    LOCATION,
    REPO,
    REPOSITORY,
    DagsterProcess,
    Mailbox,
    PostgresServer,
    answers,
    daemon,
    free_port,
    graphql,
    in_ci,
    postgres_bindir,
    postgres_server,
    smtp_server,
    stop_all,
    wait_for,
    webserver,
)

SCHEDULE = "nightly_at_two"
SENSOR = "new_exports_sensor"
HELSINKI = ZoneInfo("Europe/Helsinki")
KEY = "production-test-pseudonym-key"
# A run of the nightly job on the sample takes about 20 s here, with its process start.
RUN_TIMEOUT = 180

LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}"""
RUNS = "{ runsOrError { __typename ... on Runs { results { runId status jobName } } } }"


def last_two_oclock(now: dt.datetime) -> dt.datetime:
    """The schedule's most recent tick: 02:00 Helsinki time at or before `now`."""
    tick = now.astimezone(HELSINKI).replace(hour=2, minute=0, second=0, microsecond=0)
    return tick if tick <= now else tick - dt.timedelta(days=1)


@dataclass
class Deployment:
    root: Path
    home: Path
    landing: Path
    published: Path
    env: dict[str, str]
    instance: dg.DagsterInstance
    daemon: DagsterProcess
    webserver: DagsterProcess
    ui: str
    mailbox: Mailbox
    tick: dt.datetime

    def runs(self) -> list[dg.DagsterRun]:
        return list(self.instance.get_runs())

    def scheduled_runs(self) -> list[dg.DagsterRun]:
        """The runs of the schedule's tick at `tick`."""
        return [
            run for run in self.runs()
            if run.tags.get("dagster/schedule_name") == SCHEDULE
            and dt.datetime.fromisoformat(run.tags[SCHEDULED_EXECUTION_TIME_TAG]) == self.tick
        ]

    def finished(self, run_id: str) -> dg.DagsterRun | None:
        run = self.instance.get_run_by_id(run_id)
        return run if run is not None and run.is_finished else None

    def wait_until_finished(self, run_id: str) -> dg.DagsterRun:
        return wait_for(f"run {run_id} to finish", lambda: self.finished(run_id), RUN_TIMEOUT, log=self.daemon.log)

    def wait_until_idle(self) -> None:
        """Every run so far finished (each test starts from a quiet deployment, whichever runs alone)."""
        wait_for("the runs in progress to finish", lambda: all(run.is_finished for run in self.runs()),
                 RUN_TIMEOUT, log=self.daemon.log)

    def launch_from_ui(self, job: str = "nightly") -> str:
        """Launch a run as the UI's launchpad does: the webserver queues it, the daemon starts it."""
        params = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": job},
                  "runConfigData": {}}
        answer = graphql(self.ui, LAUNCH_RUN, {"params": params})["launchRun"]
        assert answer["__typename"] == "LaunchRunSuccess", answer
        return answer["run"]["runId"]

    def restart_daemon(self) -> None:
        self.daemon.stop()
        self.daemon = daemon(self.env, self.root, self.root / "daemon-2.log").start()


def set_instigators(instance: dg.DagsterInstance, tick: dt.datetime) -> None:
    """The schedule turned on a minute before its tick at `tick` (the daemon evaluates the
    ticks since a schedule was turned on), and the landing sensor off until its test turns
    it on: both as the instance keeps them for the daemon, through the code location
    loaded from deploy/workspace.yaml."""
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, ScheduleInstigatorData
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(DEPLOY / "workspace.yaml")])) as workspace:
        location = workspace.create_request_context().get_code_location(LOCATION)
        repository = location.get_repository(REPOSITORY)
        schedule = repository.get_schedule(SCHEDULE)
        instance.add_instigator_state(InstigatorState(
            schedule.get_remote_origin(), InstigatorType.SCHEDULE, InstigatorStatus.RUNNING,
            ScheduleInstigatorData(schedule.cron_schedule, (tick - dt.timedelta(minutes=1)).timestamp()),
        ))
        sensor = repository.get_sensor(SENSOR)
        instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)


def arrived_an_hour_ago(*paths: Path) -> None:
    """Files that have stopped changing (the sensor waits landing_quiet_seconds)."""
    old = time.time() - 3600
    for path in paths:
        os.utime(path, (old, old))


@pytest.fixture(scope="module")
def postgres():
    bindir = postgres_bindir()
    if bindir is None:
        if in_ci():
            pytest.fail("PostgreSQL is not installed: .ci/run installs Debian's postgresql package")
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql); CI installs it")
    with postgres_server(bindir) as server:
        yield server


@pytest.fixture(scope="module")
def mailbox():
    with smtp_server() as box:
        yield box


@pytest.fixture(scope="module")
def deployment(postgres: PostgresServer, mailbox: Mailbox, tmp_path_factory):
    root = tmp_path_factory.mktemp("production")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home)
    landing = root / "landing"
    shutil.copytree(REPO / "data" / "sample", landing)
    arrived_an_hour_ago(*landing.iterdir())
    published = root / "warehouse" / "maksatus.duckdb"
    ui_port = free_port()
    ui = f"http://127.0.0.1:{ui_port}"
    env = {
        **os.environ,
        **postgres.dagster_env(),
        "DAGSTER_HOME": str(home),
        "KEHA_LANDING_DIR": str(landing),
        "KEHA_WAREHOUSE": str(published),
        "KEHA_PSEUDONYM_KEY": KEY,
        # A run that finds the warehouse's run lock taken waits this long, then fails.
        "KEHA_RUN_LOCK_WAIT_SECONDS": "5",
        "KEHA_SMTP_HOST": mailbox.host,
        "KEHA_SMTP_PORT": str(mailbox.port),
        "KEHA_ALERT_FROM": "keha-maksatus@localhost",
        "KEHA_ALERT_TO": "raportointi@localhost, paivystys@localhost",
        "KEHA_UI_URL": ui,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in postgres.dagster_env().items():  # this process's own view of the instance
            patch.setenv(name, value)
        instance = dg.DagsterInstance.from_config(str(home))
        web = deployment = None
        try:
            tick = last_two_oclock(dt.datetime.now(HELSINKI))
            set_instigators(instance, tick)
            web = webserver(env, root, root / "webserver.log", ui_port).start()
            deployment = Deployment(root, home, landing, published, env, instance,
                                    daemon(env, root, root / "daemon-1.log").start(), web, ui, mailbox, tick)
            wait_for("the webserver to answer", lambda: answers(ui), log=web.log)
            yield deployment
        finally:
            # The daemon running now (after a restart too) and the webserver.
            stop_all([deployment.daemon if deployment else None, web])
            instance.dispose()


def kpi_publication(published: Path) -> tuple[str, int]:
    """The run id of the published file's newest publication and its files."""
    con = duckdb.connect(str(published), read_only=True)
    try:
        return con.execute("SELECT run_id, files_ingested FROM meta.publication ORDER BY publication_no DESC LIMIT 1").fetchone()
    finally:
        con.close()


def test_the_schedule_tick_at_two_launches_the_nightly_job_and_it_publishes(deployment: Deployment):
    [run] = wait_for("the daemon to launch the 02:00 tick's run", lambda: deployment.scheduled_runs(), log=deployment.daemon.log)
    assert run.job_name == "nightly"
    assert deployment.wait_until_finished(run.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert kpi_publication(deployment.published) == (run.run_id, 6)
    [schedule] = [s for s in deployment.instance.all_instigator_state() if s.instigator_name == SCHEDULE]
    [tick] = deployment.instance.get_ticks(schedule.instigator_origin_id, schedule.selector_id)
    assert tick.status == TickStatus.SUCCESS and tick.run_ids == [run.run_id]
    assert tick.timestamp == deployment.tick.timestamp()


def test_the_sensor_launches_a_run_when_a_new_file_lands(deployment: Deployment):
    deployment.wait_until_idle()
    new_file = write_export(deployment.landing, "maksatuspaatokset_2022-11-30.csv", DECISION_HEADER, [
        decision("N1", "1.11.2022", "15.11.2022"), decision("N2", "2.11.2022"),
    ])
    arrived_an_hour_ago(new_file)
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": SENSOR}
    started = graphql(deployment.ui, START_SENSOR, {"selector": selector})["startSensor"]
    assert started == {"__typename": "Sensor", "sensorState": {"status": "RUNNING"}}
    [run] = wait_for(
        "the sensor to launch a run for the new file",
        lambda: [r for r in deployment.runs() if r.tags.get("dagster/sensor_name") == SENSOR],
        log=deployment.daemon.log,
    )
    assert run.tags["dagster/run_key"].startswith(f"{new_file.name}|")
    assert run.tags["keha/new_files"] == "1"
    assert deployment.wait_until_finished(run.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert kpi_publication(deployment.published) == (run.run_id, 7)


def failed_steps(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Each failed step of the run and the message of the error that failed it (the innermost cause)."""
    steps = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = entry.dagster_event.step_failure_data.error
        while error.cause is not None:
            error = error.cause
        steps[entry.dagster_event.step_key] = error.message
    return steps


def plain_text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_a_failed_run_delivers_the_alert_mail(deployment: Deployment):
    # Another run holds the warehouse (a `keha-maksatus run` by hand, here this process):
    # the nightly run waits KEHA_RUN_LOCK_WAIT_SECONDS for it, then fails.
    deployment.wait_until_idle()
    lock = state.RunLock(state.warehouse_files(deployment.published))
    lock.acquire(0, run_id="held-by-the-test")
    try:
        run_id = deployment.launch_from_ui()
        assert deployment.wait_until_finished(run_id).status == dg.DagsterRunStatus.FAILURE
    finally:
        lock.release()
    [(step, error)] = failed_steps(deployment.instance, run_id).items()
    assert "another run is working on" in error and "held-by-the-test" in error
    [(message, recipients)] = wait_for(
        "the alert e-mail",
        lambda: [(m, to) for m, to in zip(deployment.mailbox.messages, deployment.mailbox.recipients) if run_id in plain_text(m)],
        log=deployment.daemon.log,
    )
    assert recipients == ["raportointi@localhost", "paivystys@localhost"]
    assert message["Subject"].startswith("KEHA-maksatus:")
    assert message["From"] == "keha-maksatus@localhost"
    text = plain_text(message)
    assert step in text
    assert "another run is working on" in text
    assert f"{deployment.ui}/runs/{run_id}" in text
    assert "epäonnistui" in text.lower()  # Finnish: "failed"


def run_histories(instance: dg.DagsterInstance) -> dict[str, tuple[dg.DagsterRunStatus, list[tuple[int, str]]]]:
    """Each run's status and its events as (storage id, event type)."""
    return {
        run.run_id: (run.status, [(record.storage_id, record.event_log_entry.dagster_event_type)
                                  for record in instance.get_records_for_run(run.run_id).records])
        for run in instance.get_runs()
    }


# What a daemon that took a finished run up again would write to it.
RESTARTED = {dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_DEQUEUED, dg.DagsterEventType.RUN_STARTING,
             dg.DagsterEventType.RUN_START, dg.DagsterEventType.STEP_START}


def test_the_instance_survives_a_daemon_restart(deployment: Deployment):
    deployment.wait_until_idle()
    before = run_histories(deployment.instance)
    assert before and all(status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) for status, _ in before.values())
    deployment.restart_daemon()
    # Two runs launched at once from the UI: the queue starts them one after the other.
    first, second = deployment.launch_from_ui(), deployment.launch_from_ui()
    for run_id in (first, second):
        assert deployment.wait_until_finished(run_id).status == dg.DagsterRunStatus.SUCCESS
    records = sorted(deployment.instance.get_run_records(dg.RunsFilter(run_ids=[first, second])), key=lambda r: r.start_time)
    assert records[1].start_time >= records[0].end_time
    after = run_histories(deployment.instance)
    # The finished runs kept their status and every event; a finished run's process may
    # still log its exit after the status is final, but nothing ran any of them again.
    for run_id, (status, events) in before.items():
        status_after, events_after = after[run_id]
        assert status_after == status
        assert events_after[:len(events)] == events
        assert not RESTARTED & {event_type for _, event_type in events_after[len(events):]}, events_after[len(events):]
    # The new daemon did not evaluate the 02:00 tick again: it has one run.
    assert len(deployment.scheduled_runs()) == 1
    # The webserver, on the same PostgreSQL instance, lists every run.
    listed = graphql(deployment.ui, RUNS)["runsOrError"]["results"]
    assert {run["runId"] for run in listed} == set(after)
    assert kpi_publication(deployment.published)[0] == records[1].dagster_run.run_id


def test_env_example_names_every_variable_the_deployment_reads():
    """deploy/env.example lists what the instance file and the pipeline read, with no value
    for a secret."""
    names = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            names[name.strip()] = value.strip()

    def env_vars(node):
        if isinstance(node, dict):
            if set(node) == {"env"}:
                yield node["env"]
            for value in node.values():
                yield from env_vars(value)

    instance_vars = set(env_vars(yaml.safe_load((DEPLOY / "dagster.yaml").read_text())))
    assert instance_vars == {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}
    pipeline_vars = {"DAGSTER_HOME", LANDING_ENV, WAREHOUSE_ENV, KEY_ENV, CONFIG_DIR_ENV,
                     *(env_name(setting) for setting in NUMBERS),
                     *(value for name, value in vars(alert_mail).items() if name.endswith("_ENV"))}
    assert instance_vars | pipeline_vars <= set(names)
    for secret in ("DAGSTER_PG_PASSWORD", "KEHA_PSEUDONYM_KEY", "KEHA_SMTP_PASSWORD"):
        assert names[secret] == "", f"{secret} has a value in deploy/env.example"
