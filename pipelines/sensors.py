"""Starts a run when new export files land, once they have stopped changing."""


import json

import dagster as dg
import duckdb

from keha_maksatus import state
from keha_maksatus import warehouse as working_state
from keha_maksatus.errors import RunLockedError
from keha_maksatus.ingest.landing import fingerprint, stable_files
from pipelines.resources import WarehouseResource
from pipelines.schedules import nightly_job


def ingested_fingerprints(files: state.WarehouseFiles) -> set[tuple] | None:
    """Fingerprints of the files the warehouse's ingest log already holds (read-only), or
    None while a run holds the warehouse (it is then ingesting). Read under the warehouse's
    run lock, taken without waiting: a DuckDB reader in another process keeps a run from
    opening the working file, so a run starting meanwhile waits for the lock, not fails."""
    if not files.working_file.exists():
        return set()
    lock = state.RunLock(files)
    try:
        lock.acquire(0)
    except RunLockedError:
        return None
    try:
        con = duckdb.connect(str(files.working_file), read_only=True)
        try:
            return set(working_state.recorded_hashes(con))
        except duckdb.Error:  # no ingest log yet, or one of an earlier version: the run sorts it out
            return set()
        finally:
            con.close()
    except duckdb.IOException:
        return None
    finally:
        lock.release()


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
    ingested = ingested_fingerprints(warehouse.files)
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
