"""Starts a run when new export files land, once they have stopped changing."""


import json

import dagster as dg

from keha_maksatus.ingest.landing import stable_files
from pipelines.resources import WarehouseResource
from pipelines.schedules import nightly_job


@dg.sensor(
    job=nightly_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New or rewritten regular files in the landing folder (ignoring files still being written, links, folders and other special files).")
def new_exports_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    quiet = warehouse.settings().landing_quiet_seconds
    # Printable names (a raw name may not be UTF-8) and what a rewrite in place changes.
    current = {
        f"{f.logged_name}|{f.size}|{f.mtime_ns}|{f.ctime_ns}|{f.inode}"
        for f in stable_files(warehouse.landing_dir, quiet)
    }
    new = sorted(current - seen)
    if not new:
        return dg.SkipReason("no new files, or files still being written")
    context.update_cursor(json.dumps(sorted(current | seen)))
    return dg.RunRequest(run_key=new[-1], tags={"keha/new_files": str(len(new))})
