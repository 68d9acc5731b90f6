"""The one Definitions object: `dagster dev` and the CLI both load it from here."""

from __future__ import annotations

import os

import dagster as dg

from keha_maksatus.config import DEFAULT_LANDING, DEFAULT_WAREHOUSE
from pipelines.alerts import failed_run_alert, run_findings_alert
from pipelines.assets import forecast, history, ingest, kpi, outputs, publish, validate
from pipelines.freshness import with_freshness
from pipelines.resources import WarehouseResource
from pipelines.schedules import nightly_job, nightly_schedule
from pipelines.sensors import new_exports_sensor
from pipelines.workers import nightly_on_workers_job

LANDING_ENV = "KEHA_LANDING_DIR"
WAREHOUSE_ENV = "KEHA_WAREHOUSE"


def build_definitions(landing_dir: str | None = None, warehouse_path: str | None = None) -> dg.Definitions:
    """Definitions over the given paths (defaults: environment, then the bundled sample)."""
    resource = WarehouseResource(
        landing_dir=str(landing_dir or os.environ.get(LANDING_ENV) or DEFAULT_LANDING),
        warehouse_path=str(warehouse_path or os.environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE),
    )
    modules = [ingest, validate, kpi, forecast, publish, outputs, history]
    return dg.Definitions(
        assets=with_freshness(dg.load_assets_from_modules(modules)),
        asset_checks=dg.load_asset_checks_from_modules(modules),
        jobs=[nightly_job, history.figures_as_of_job, nightly_on_workers_job()],
        schedules=[nightly_schedule],
        sensors=[new_exports_sensor, failed_run_alert, run_findings_alert],
        resources={"warehouse": resource},
        # One DuckDB working file, one writer: run the steps in one process.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
