"""The nightly job and its schedule."""

import dagster as dg

from pipelines.assets.history import FIGURES_AS_OF

nightly_job = dg.define_asset_job(
    "nightly",
    # The figures as of a past date are built on request (job figures_as_of), never nightly.
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(FIGURES_AS_OF),
    description="Ingest new exports, rebuild the KPIs and publish the warehouse.",
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_at_two",
    job=nightly_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/Helsinki",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Every night at 02:00 Helsinki time: ingests the export files not ingested before, rebuilds the KPIs "
        "and publishes the warehouse and its report, dashboards and exports (a run with no new files republishes "
        "the same figures)."
    ),
)
