"""Publishing the analysts' DuckDB file by atomic replace, and the data-volume guard.

The new file is built beside the published one and moved onto it with os.replace:
an analyst's open read-only connection keeps its snapshot, a new connection sees the
new data, and a crash mid-way leaves the previous file untouched. A writing connection
on the published file (DuckDB's file lock) is waited for, up to a limit.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from keha_maksatus import failpoints, kpi, warehouse
from keha_maksatus.forecast import tables as forecast_tables
from keha_maksatus.history import publications, versions
from keha_maksatus.history.publications import PUBLICATION_COLUMN_COMMENTS, PUBLICATION_COMMENT, record_publication  # noqa: F401
from keha_maksatus.errors import PublishedFileLockedError
from keha_maksatus.state import OutputFolders, warehouse_files

PUBLISHED_TABLES = (
    *kpi.TABLE_COMMENTS,
    *forecast_tables.TABLE_COMMENTS,
    "core.decisions",
    "core.customers",
    "core.feedback",
    "quality.quarantine",
    "quality.ingest_log",
)
VOLUME_TABLES = {"decisions": "core.decisions", "feedback": "core.feedback"}
# DuckDB's refusal when another process holds a writing connection on the file.
_CONFLICTING_LOCK = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>[0-9]+)\)")
_LOCK_RETRY_SECONDS = 0.25


@dataclass
class VolumeCheck:
    passed: bool
    new_counts: dict[str, int]
    published_counts: dict[str, int] | None
    message: str


def output_folders(published_path: Path) -> OutputFolders:
    """The report, dashboard and export folders of this warehouse (see state.py)."""
    return warehouse_files(published_path).outputs


def open_published(published_path: Path, lock_wait_seconds: float = 0.0) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published file. While another process holds a
    writing connection on it, retry for up to `lock_wait_seconds`, then raise
    PublishedFileLockedError naming that process."""
    deadline = time.monotonic() + lock_wait_seconds
    while True:
        try:
            return duckdb.connect(str(published_path), read_only=True)
        except duckdb.IOException as error:
            holder = _CONFLICTING_LOCK.search(str(error))
            if not holder:
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishedFileLockedError(
                    f"cannot publish {published_path}: another program holds a writing connection on it "
                    f"(PID {holder['pid']}, {holder['program']}); waited {lock_wait_seconds:g} s "
                    f"(publish_lock_wait_seconds). Close that connection and run again; the previously published "
                    f"file is unchanged. Open the warehouse read-only (read_only=True, or keha-maksatus sql)"
                ) from None
            time.sleep(min(_LOCK_RETRY_SECONDS, remaining))


def check_published_free(published_path: Path, lock_wait_seconds: float = 0.0) -> None:
    """Wait (bounded) until no other process holds a writing connection on the published file."""
    if Path(published_path).exists():
        open_published(published_path, lock_wait_seconds).close()


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {kind: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] for kind, table in VOLUME_TABLES.items()}


def published_counts(published_path: Path, lock_wait_seconds: float = 0.0) -> dict[str, int] | None:
    """Row counts of the currently published file, or None when nothing is published."""
    if not Path(published_path).exists():
        return None
    con = open_published(published_path, lock_wait_seconds)
    try:
        return table_counts(con)
    finally:
        con.close()


def check_data_volume(
    con: duckdb.DuckDBPyConnection, published_path: Path, min_share: float, lock_wait_seconds: float = 0.0
) -> VolumeCheck:
    """Does the new build rest on at least `min_share` of the published decisions and responses?"""
    new = table_counts(con)
    old = published_counts(published_path, lock_wait_seconds)
    if old is None:
        return VolumeCheck(True, new, None, "nothing published yet")
    short = [
        f"{kind}: {new[kind]} rows against {old[kind]} published ({new[kind] / old[kind]:.1%} < {min_share:.0%})"
        for kind in VOLUME_TABLES
        if old[kind] and new[kind] < min_share * old[kind]
    ]
    if short:
        return VolumeCheck(False, new, old, "the new figures rest on markedly less data: " + "; ".join(short))
    return VolumeCheck(True, new, old, "; ".join(f"{k}: {new[k]} rows (published {old[k]})" for k in VOLUME_TABLES))


def staging_path(target: Path, suffix: str = "publishing") -> Path:
    """A hidden build path beside target, unique to this process."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.{suffix}")


def remove_stale_builds(target: Path) -> list[Path]:
    """Half-written builds of target left by a crashed run (files or folders)."""
    target = Path(target)
    stale = list(target.parent.glob(f".{target.name}.*.publishing*")) + list(target.parent.glob(f".{target.name}.*.building"))
    old = target.with_name(f".{target.name}.old")
    stale += [old] if old.exists() else []
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def publish(
    con: duckdb.DuckDBPyConnection,
    working_file: Path,
    published_path: Path,
    run_id: str | None = None,
    lock_wait_seconds: float = 0.0,
) -> Path:
    """Publish the working file: stamp and describe it, checkpoint it, copy it beside the
    published file, check the copy opens, and move it onto `published_path`. A writing
    connection on the published file is waited for (up to `lock_wait_seconds`): replacing
    the file under it would lose that connection's writes."""
    published_path = Path(published_path)
    published_path.parent.mkdir(parents=True, exist_ok=True)
    check_published_free(published_path, lock_wait_seconds)
    remove_stale_builds(published_path)
    record_publication(con, published_path, run_id)
    with warehouse.transaction(con):
        warehouse.add_comments(con, table_comments(), column_comments())
    con.execute("CHECKPOINT")  # everything in the file itself, nothing left in its WAL
    build = staging_path(published_path)
    shutil.copyfile(working_file, build)
    _check_opens(build)
    check_published_free(published_path, lock_wait_seconds)
    failpoints.reach("publish")  # the new file is written but not yet in place
    with build.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(build, published_path)
    directory = os.open(published_path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return published_path


def table_comments() -> dict[str, str]:
    """The description (COMMENT ON TABLE) of every published table."""
    return {**warehouse.TABLE_COMMENTS, **kpi.TABLE_COMMENTS, **forecast_tables.TABLE_COMMENTS, **publications.TABLE_COMMENTS}


def column_comments() -> dict[str, dict[str, str]]:
    """The description (COMMENT ON COLUMN) of every published column, by table."""
    return {**warehouse.COLUMN_COMMENTS, **kpi.COLUMN_COMMENTS, **forecast_tables.COLUMN_COMMENTS, **publications.COLUMN_COMMENTS}


def _check_opens(path: Path) -> None:
    """The copy must open read-only and hold every published table (a row of each read,
    not all: some are views over the whole history)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        for table in (*PUBLISHED_TABLES, *publications.HISTORY_TABLES, *versions.HISTORY_TABLES):
            con.execute(f"SELECT * FROM {table} LIMIT 1").fetchall()
    finally:
        con.close()


def new_build_directory(target: Path) -> Path:
    """An empty hidden folder beside target to build a new version of it in."""
    remove_stale_builds(target)
    build = staging_path(target, "building")
    build.mkdir(parents=True)
    return build


def replace_directory(build: Path, target: Path) -> None:
    """Move a finished output folder onto target; the old one is removed after the swap."""
    failpoints.reach("outputs")
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(build, target)
    shutil.rmtree(old, ignore_errors=True)
