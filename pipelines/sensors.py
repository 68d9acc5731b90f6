"""Starts a run when new export files land, once they have stopped changing."""


import json
from pathlib import Path

import dagster as dg
import duckdb

from keha_maksatus import warehouse as working_state
from keha_maksatus.ingest.landing import fingerprint, stable_files
from pipelines.resources import WarehouseResource
from pipelines.schedules import nightly_job


def ingested_fingerprints(working_file: Path) -> set[tuple] | None:
    """Fingerprints of the files the warehouse's ingest log already holds (read-only), or
    None while a run holds the working file (it is then ingesting)."""
    if not working_file.exists():
        return set()
    try:
        con = duckdb.connect(str(working_file), read_only=True)
    except duckdb.IOException:
        return None
    try:
        return set(working_state.recorded_hashes(con))
    except duckdb.Error:  # no ingest log yet, or one of an earlier version: the run sorts it out
        return set()
    finally:
        con.close()


@dg.sensor(
    job=nightly_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Starts the nightly job when a new or rewritten export file has landed and stopped changing "
        "(landing_quiet_seconds). Files the warehouse's ingest log already holds, files still being written, "
        "links, folders and other special files start no run."
    ),
)
def new_exports_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    ingested = ingested_fingerprints(warehouse.working_file)
    if ingested is None:
        return dg.SkipReason("a run is using the warehouse; new files are looked at again after it")
    quiet = warehouse.settings().landing_quiet_seconds
    # Printable names (a raw name may not be UTF-8) and what a rewrite in place changes.
    current = {
        f"{f.logged_name}|{f.size}|{f.mtime_ns}|{f.ctime_ns}|{f.inode}"
        for f in stable_files(warehouse.landing_dir, quiet)
        if fingerprint(f) not in ingested
    }
    new = sorted(current - seen)
    if not new:
        return dg.SkipReason("no new files (all ingested already), or files still being written")
    context.update_cursor(json.dumps(sorted(current | seen)))
    return dg.RunRequest(run_key=new[-1], tags={"keha/new_files": str(len(new))})
