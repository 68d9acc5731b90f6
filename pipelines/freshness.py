"""Freshness of what the nightly run publishes: updated by 06:00 Helsinki time each day.

The published warehouse, its report, dashboards and exports (group publish) and the KPI
tables (group kpi) must have materialized within the 24 hours before the latest 06:00
(Europe/Helsinki); after a 06:00 with no such update they are stale (FreshnessState.FAIL,
"Degraded" in the UI) until the next run publishes. Dagster's freshness daemon, part of
dagster-daemon and of `dagster dev`, evaluates the policy (instance setting
freshness.enabled, on by default in Dagster 1.13)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

DEADLINE_CRON = "0 6 * * *"
TIMEZONE = "Europe/Helsinki"
# The window before each deadline in which an update counts: a whole day, so that the run
# at 02:00 (or a rerun during the previous day) keeps the figures fresh until the next 06:00.
WINDOW = timedelta(hours=24)
PUBLISHED_GROUPS = ("kpi", "publish")

DAILY_BY_SIX = dg.FreshnessPolicy.cron(deadline_cron=DEADLINE_CRON, lower_bound_delta=WINDOW, timezone=TIMEZONE)


def is_published(spec: dg.AssetSpec) -> bool:
    return spec.group_name in PUBLISHED_GROUPS


def with_freshness(assets: Sequence) -> Sequence:
    """The assets with DAILY_BY_SIX on every published KPI asset's spec (others unchanged)."""
    return dg.map_asset_specs(lambda spec: spec.replace_attributes(freshness_policy=DAILY_BY_SIX) if is_published(spec) else spec, assets)
