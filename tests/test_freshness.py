"""Freshness of the published KPI assets: the policy on the loaded Definitions, Dagster's own
freshness daemon judging real materializations on a real instance (what the UI shows),
and the 06:00 Helsinki deadline around the changes of daylight saving time."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.asset_health.asset_freshness_health import get_freshness_status_and_metadata
from dagster._core.definitions.asset_health.asset_health import AssetHealthStatus
from dagster._core.definitions.events import AssetMaterialization
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon
from dagster._utils.schedules import get_latest_completed_cron_tick

from pipelines.definitions import build_definitions
from pipelines.freshness import DAILY_BY_SIX, DEADLINE_CRON, TIMEZONE

from conftest import DECISION_HEADER, FEEDBACK_HEADER, decision, response, write_export

REPO = Path(__file__).resolve().parents[1]
HELSINKI = ZoneInfo("Europe/Helsinki")
PUBLISHED = {"published_warehouse", "quality_report", "dashboard_pages", "kpi_exports", "quality_section",
             "quality_section_details", "backlog", "monthly_trend"}


def test_the_published_kpi_assets_carry_the_policy():
    specs = {spec.key.to_user_string(): spec for spec in build_definitions().resolve_all_asset_specs()}
    with_policy = {key for key, spec in specs.items() if spec.freshness_policy is not None}
    assert PUBLISHED <= with_policy
    assert {"ingested_files", "decisions", "feedback", "figures_as_of"}.isdisjoint(with_policy)
    policy = specs["published_warehouse"].freshness_policy
    assert policy == DAILY_BY_SIX
    assert (policy.deadline_cron, policy.timezone, policy.lower_bound_delta) == ("0 6 * * *", "Europe/Helsinki", dt.timedelta(hours=24))


# --- Dagster's freshness daemon on a real instance -------------------------------------


def last_deadline(now: dt.datetime) -> dt.datetime:
    """The latest 06:00 Helsinki wall-clock time at or before `now`, computed here apart from Dagster."""
    local = now.astimezone(HELSINKI)
    day = local.date() if local.time() >= dt.time(6) else local.date() - dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(6), tzinfo=HELSINKI)


def report_materialization(instance: dg.DagsterInstance, asset: str, at: dt.datetime) -> None:
    """A materialization of `asset` recorded as of `at` (as an external run would report it)."""
    instance.report_dagster_event(
        DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            event_specific_data=StepMaterializationData(AssetMaterialization(asset)),
            job_name=RUNLESS_JOB_NAME,
        ),
        run_id=RUNLESS_RUN_ID,
        timestamp=at.timestamp(),
    )


def freshness_shown(instance: dg.DagsterInstance, assets: list[str]) -> dict[str, AssetHealthStatus]:
    """One iteration of the daemon's freshness evaluation over the real code location, then
    the freshness status as the webserver's GraphQL resolves it for the UI."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="pipelines.definitions", working_directory=str(REPO)), location_name="keha_maksatus"
    )
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as workspace:
        for _ in FreshnessDaemon().run_iteration(workspace):
            pass
        context = workspace.create_request_context()

        async def statuses():
            return {asset: (await get_freshness_status_and_metadata(context, dg.AssetKey(asset)))[0] for asset in assets}

        return asyncio.run(statuses())


def away_from_six() -> None:
    """Wait (at most 3 minutes) while it is just before 06:00 in Helsinki, so that the
    deadline this test computes is the one the daemon uses a moment later."""
    now = dt.datetime.now(HELSINKI)
    six = now.replace(hour=6, minute=0, second=0, microsecond=0)
    if dt.timedelta(0) < six - now < dt.timedelta(minutes=3):
        time.sleep((six - now).total_seconds() + 5)


def test_the_daemon_shows_a_warehouse_not_updated_since_yesterdays_deadline_as_stale(tmp_path, monkeypatch):
    away_from_six()
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        window_start = last_deadline(dt.datetime.now(dt.timezone.utc)) - dt.timedelta(hours=24)
        report_materialization(instance, "published_warehouse", window_start - dt.timedelta(minutes=1))
        report_materialization(instance, "quality_section", window_start + dt.timedelta(minutes=1))
        shown = freshness_shown(instance, ["published_warehouse", "quality_section", "quality_report", "ingested_files"])
        assert shown == {
            "published_warehouse": AssetHealthStatus.DEGRADED,  # stale: "Degraded" in the UI
            "quality_section": AssetHealthStatus.HEALTHY,
            "quality_report": AssetHealthStatus.UNKNOWN,  # never materialized
            "ingested_files": AssetHealthStatus.NOT_APPLICABLE,  # no policy
        }

        # A real nightly run now makes the warehouse and what it publishes fresh again.
        landing = tmp_path / "landing"
        write_export(landing, "maksatuspaatokset_2022-12-31.csv", DECISION_HEADER,
                     [decision(f"H{i}", "1.3.2022", "20.3.2022") for i in range(6)])
        write_export(landing, "asiakaspalaute_2022-12-31.csv", FEEDBACK_HEADER, [response(f"V{i}", "2.3.2022", "4") for i in range(6)])
        monkeypatch.setenv("KEHA_PSEUDONYM_KEY", "freshness-key")
        job = build_definitions(str(landing), str(tmp_path / "wh" / "maksatus.duckdb")).resolve_job_def("nightly")
        assert job.execute_in_process(instance=instance).success
        shown = freshness_shown(instance, ["published_warehouse", "quality_section", "quality_report"])
        assert set(shown.values()) == {AssetHealthStatus.HEALTHY}


def test_the_instances_run_the_freshness_daemon(tmp_path, monkeypatch):
    """make dev's instance (the repo's dagster.yaml) runs the freshness daemon with the others
    (freshness.enabled is on unless set off), and the production instance does not turn it off."""
    shutil.copy(REPO / "dagster.yaml", tmp_path)
    monkeypatch.chdir(tmp_path)  # its storage paths are relative to the working directory
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.freshness_enabled and "FRESHNESS_DAEMON" in instance.get_required_daemon_types()
    production = REPO / "deploy" / "dagster.yaml"
    if production.exists():
        assert (yaml.safe_load(production.read_text()).get("freshness") or {}).get("enabled", True) is True


# --- the deadline around 06:00 Helsinki, daylight saving time included -------------------


def fresh(materialized: dt.datetime, now: dt.datetime) -> bool:
    """The cron policy's rule (dagster CronFreshnessPolicyEvaluator): fresh when the latest
    materialization is at or after the latest completed deadline tick minus the window."""
    tick = get_latest_completed_cron_tick(DAILY_BY_SIX.deadline_cron, now, DAILY_BY_SIX.timezone)
    return materialized >= tick - DAILY_BY_SIX.lower_bound_delta


def helsinki(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=HELSINKI)


# The nights clocks go forward (29.3.2026, 03:00 -> 04:00) and back (25.10.2026, 04:00 -> 03:00),
# with the days around them.
DAYS = [dt.date(2026, 3, 27) + dt.timedelta(days=n) for n in range(4)] + [dt.date(2026, 10, 23) + dt.timedelta(days=n) for n in range(4)]


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_the_nightly_publish_stays_fresh_until_the_next_six_oclock(day):
    """Published at 02:00 on a day: fresh through 05:59 the next morning, stale from 06:00."""
    published = helsinki(day, 2)
    next_day = day + dt.timedelta(days=1)
    assert (DEADLINE_CRON, TIMEZONE) == ("0 6 * * *", "Europe/Helsinki")
    for now in (helsinki(day, 2, 1), helsinki(day, 6), helsinki(day, 23, 59), helsinki(next_day, 5, 59)):
        assert fresh(published, now), now
    for now in (helsinki(next_day, 6), helsinki(next_day, 6, 1), helsinki(next_day, 12)):
        assert not fresh(published, now), now
    # The deadline is 06:00 on the wall clock, whatever the offset that day.
    tick = get_latest_completed_cron_tick(DEADLINE_CRON, helsinki(next_day, 7), TIMEZONE)
    assert tick.astimezone(HELSINKI).replace(tzinfo=None) == dt.datetime.combine(next_day, dt.time(6))


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_a_day_missed_is_stale_at_six_and_a_late_run_makes_it_fresh(day):
    """Nothing published since the day before yesterday's night: stale from 06:00; a late run
    at 09:00 makes it fresh again until the next 06:00."""
    yesterday = day - dt.timedelta(days=1)
    assert not fresh(helsinki(yesterday, 2), helsinki(day + dt.timedelta(days=1), 6))
    assert fresh(helsinki(day, 9), helsinki(day, 9, 1)) and fresh(helsinki(day, 9), helsinki(day + dt.timedelta(days=1), 5, 59))
    assert not fresh(helsinki(day, 9), helsinki(day + dt.timedelta(days=2), 6))
