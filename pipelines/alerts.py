"""Alert e-mails from the runs' status (the mail itself: keha_maksatus.outputs.alert_mail).

failed_run_alert: a failed nightly run (job nightly or nightly_on_workers), or one a
blocking check stopped, names its failed steps and checks with their reasons and links
to the run. run_findings_alert (off unless
KEHA_ALERT_ON_NOWCAST_MISS or KEHA_ALERT_ON_FILE_QUARANTINE is 1): a nightly run that
succeeded but whose running period's nowcast is likely to miss a target, or that
quarantined a file whole. Without KEHA_SMTP_HOST both skip, saying so.

Each run is mailed about once: the sensors' cursor moves past every run it has handled,
and a sent mail tags the run (keha/alert_sent_for, keha/findings_alert_sent_for) so
that a reset cursor does not send it again. A sensor skips (SkipReason) only for what
holds for every run of a tick (no SMTP, alerts off): Dagster refuses a tick that both
reacted to a run and skipped; a run with nothing to send is a reaction, its reason logged."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from keha_maksatus.outputs.alert_mail import (
    NOWCAST_ENV,
    QUARANTINE_ENV,
    Problem,
    alert_settings,
    failure_mail,
    findings_mail,
    nowcast_misses,
    send,
)
from pipelines.assets.ingest import FILE_CHECK
from pipelines.cli import error_message, innermost_error, operator_cause, shortened
from pipelines.resources import WarehouseResource
from pipelines.schedules import nightly_job
from pipelines.workers import nightly_on_workers_job

# The run status sensors match runs by job name.
MONITORED_JOBS = [nightly_job, nightly_on_workers_job()]
SENT_TAG = "keha/alert_sent_for"
FINDINGS_SENT_TAG = "keha/findings_alert_sent_for"
# Often enough that a failure reaches a person within a minute of the run's end.
INTERVAL_SECONDS = 30
NO_SMTP = "KEHA_SMTP_HOST is not set: no alert e-mail is sent (see README: Alerts and freshness)"


def step_reason(error) -> str:
    """A failed step's reason: the operator error's one-line message (built from masked
    parts), else the innermost error's class and masked message."""
    cause = operator_cause(error)
    if cause:
        return error_message(cause, mask=False)
    innermost = innermost_error(error)
    return f"{innermost.cls_name}: {error_message(innermost)}"


def check_reason(evaluation) -> str:
    """A failed check's reason: its description, else its message or details metadata."""
    metadata = evaluation.metadata or {}
    for text in (evaluation.description, *(metadata[k].value for k in ("message", "details") if k in metadata)):
        if text:
            return shortened(str(text).replace("`", ""))
    return "tarkistus ei mennyt läpi"


def check_name(evaluation) -> str:
    return f"{evaluation.asset_key.to_user_string()} / {evaluation.check_name}"


def run_problems(instance: dg.DagsterInstance, run_id: str) -> tuple[list[Problem], bool]:
    """The run's failed steps and failed blocking or ERROR checks with their reasons, and
    whether it published the warehouse."""
    events = instance.all_logs(run_id, of_type={
        dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.ASSET_MATERIALIZATION,
    })
    problems, published = [], False
    for entry in events:
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            if error is None or innermost_error(error).cls_name != "DagsterAssetCheckFailedError":  # told by its check below
                problems.append(Problem("step", event.step_key, step_reason(error) if error else shortened(entry.message)))
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            if not evaluation.passed and (evaluation.blocking or evaluation.severity == dg.AssetCheckSeverity.ERROR):
                problems.append(Problem("check", check_name(evaluation), check_reason(evaluation)))
        elif event.asset_key and event.asset_key.to_user_string() == "published_warehouse":
            published = True
    return problems, published


def quarantined_files(instance: dg.DagsterInstance, run_id: str) -> list[Problem]:
    """The files the run's ingest check found quarantined whole or unreadable, one per file."""
    found = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.asset_check_evaluation_data
        if evaluation.check_name != FILE_CHECK or evaluation.passed:
            continue
        details = evaluation.metadata.get("details")
        for line in str(details.value if details else "").splitlines():
            name, _, reason = line.removeprefix("- ").partition(": ")
            if reason:
                found.append(Problem("check", shortened(name.strip("`")), shortened(reason)))
        if not found:
            found.append(Problem("check", check_name(evaluation), check_reason(evaluation)))
    return found


def _ended_at(instance: dg.DagsterInstance, run_id: str) -> dt.datetime:
    record = instance.get_run_record_by_id(run_id)
    end = record.end_time if record else None
    return dt.datetime.fromtimestamp(end, dt.timezone.utc) if end else dt.datetime.now(dt.timezone.utc)


@dg.run_failure_sensor(
    name="failed_run_alert",
    monitored_jobs=MONITORED_JOBS,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "E-mails (in Finnish) the failed steps or blocking checks of a failed nightly run, their reasons and the run's "
        "link, once per run. SMTP settings from the environment (KEHA_SMTP_HOST, KEHA_ALERT_TO, ...); skips without them."
    ),
)
def failed_run_alert(context: dg.RunFailureSensorContext):
    settings = alert_settings()
    run = context.dagster_run
    if settings is None:
        return dg.SkipReason(f"{NO_SMTP} (failed run {run.run_id})")
    if run.tags.get(SENT_TAG) == run.run_id:
        context.log.info(f"the alert on run {run.run_id} was sent before")
        return None
    problems, published = run_problems(context.instance, run.run_id)
    if not problems:  # the run failed outside any step (e.g. its process died)
        error = context.failure_event.event_specific_data.error if context.failure_event.event_specific_data else None
        reason = step_reason(error) if error else shortened(context.failure_event.message or "tuntematon syy")
        problems = [Problem("run", run.job_name, reason)]
    message = failure_mail(settings, run_id=run.run_id, job=run.job_name, failed_at=_ended_at(context.instance, run.run_id),
                           problems=problems, published=published)
    _send_once(context, settings, message, SENT_TAG, f"alert on run {run.run_id}")
    return None


@dg.run_status_sensor(
    name="run_findings_alert",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=MONITORED_JOBS,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "When enabled (KEHA_ALERT_ON_NOWCAST_MISS=1, KEHA_ALERT_ON_FILE_QUARANTINE=1), e-mails what a successful nightly "
        "run found: a running period's nowcast meeting its target with a chance under KEHA_ALERT_NOWCAST_BELOW "
        "(default 0.5), a file quarantined whole. Once per run."
    ),
)
def run_findings_alert(context: dg.RunStatusSensorContext, warehouse: WarehouseResource):
    settings = alert_settings()
    run = context.dagster_run
    if settings is None:
        return dg.SkipReason(f"{NO_SMTP} (run {run.run_id})")
    if not (settings.on_nowcast_miss or settings.on_file_quarantine):
        return dg.SkipReason(f"the optional alerts are off ({NOWCAST_ENV}, {QUARANTINE_ENV})")
    if run.tags.get(FINDINGS_SENT_TAG) == run.run_id:
        context.log.info(f"the findings of run {run.run_id} were sent before")
        return None
    misses = nowcast_misses(warehouse.published_path, settings.nowcast_below) if settings.on_nowcast_miss else []
    quarantined = quarantined_files(context.instance, run.run_id) if settings.on_file_quarantine else []
    if not misses and not quarantined:
        context.log.info(f"run {run.run_id}: no nowcast miss and no file quarantined whole")
        return None
    message = findings_mail(settings, run_id=run.run_id, job=run.job_name, finished_at=_ended_at(context.instance, run.run_id),
                            nowcast_misses=misses, quarantined=quarantined)
    _send_once(context, settings, message, FINDINGS_SENT_TAG, f"findings of run {run.run_id}")
    return None


def _send_once(context: dg.RunStatusSensorContext, settings, message, sent_tag: str, what: str) -> None:
    """Send the mail and tag the run as told (a reset cursor sends nothing twice)."""
    run = context.dagster_run
    send(settings, message)
    context.instance.add_run_tags(run.run_id, {sent_tag: run.run_id})
    context.log.info(f"{what} sent to {', '.join(settings.recipients)}: {message['Subject']}")
