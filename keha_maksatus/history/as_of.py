"""Figures as of a past date: every KPI table rebuilt from only the extracts dated on or
before it, into a DuckDB file of its own beside the published one.

The working state keeps every version of every row (versions.py), so the state as it
stood when the ingested files were those dated on or before the date is one query; no
export is read again. The working file is only read (ATTACH READ_ONLY), and the published
warehouse and its outputs are never touched. The result equals a fresh run on a landing
folder holding only those files (tests/test_as_of.py).

The as-of file holds what a published file holds, as of the date: quality.ingest_log
(every file dated on or before it, whatever its status; file ids as in the working
state), quality.quarantine (those files' rejections), core.* (the state then, with the
customers it names), every kpi.* table, meta.publication (one row: the build, as the
report reads it) and meta.as_of_build (the date asked for, the source, when built).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from keha_maksatus import kpi, state, warehouse
from keha_maksatus.config import Settings
from keha_maksatus.errors import ConfigurationError
from keha_maksatus.forecast.tables import build_forecast_tables
from keha_maksatus.history import publications, versions
from keha_maksatus.ingest import landing
from keha_maksatus.outputs import publish
from keha_maksatus.outputs.report import write_report

BUILD_TABLE = "meta.as_of_build"
TABLE_COMMENTS = {
    BUILD_TABLE: (
        "This file is an as-of build, not the published warehouse: every table computed from only the extracts "
        "dated on or before as_of, as a fresh run on a landing folder holding only those files would compute them."
    ),
}
COLUMN_COMMENTS = {
    BUILD_TABLE: {
        "as_of": "The date asked for: extracts dated on or before it are used",
        "data_as_of": "The newest extract date among the files used (the data's as-of date, as in meta.publication)",
        "built_at": "When this file was built (UTC)",
        "run_id": "The Dagster run that built it; null when built outside Dagster",
        "source_warehouse": "The published warehouse whose working state the rows come from (that file itself is not read)",
        "files_used": "Files ingested with an extract date on or before as_of: the files the figures rest on",
        "file_ids": "file_id of each of those files (see quality.ingest_log)",
        "notes": "Where these figures differ from a run on only those extracts, and why (empty: nowhere)",
    },
}
_WORKING = "working_state"
_BUILD = "as_of_build"
_FILES = "as_of_files"


@dataclass(frozen=True)
class AsOfBuild:
    """A finished as-of file."""

    path: Path
    as_of: dt.date  # the date asked for
    data_as_of: dt.date  # the newest extract date behind the figures
    file_ids: list[int]
    file_names: list[str]
    report: Path | None  # the Finnish report's folder, when written
    notes: list[str]  # where the figures differ from a run on only those extracts (see unreproducible)


def parse_as_of(text: str) -> dt.date:
    """--as-of as a date (2022-06-30 or 30.6.2022); ConfigurationError otherwise."""
    date = versions.parse_date(str(text))
    if date is None:
        raise ConfigurationError(
            f"--as-of {str(text).strip()!r} is not a date; give the day as 2022-06-30 or 30.6.2022"
        )
    return date


def default_path(published: Path, as_of: dt.date) -> Path:
    """Beside the published file: warehouse/maksatus.duckdb -> warehouse/maksatus.as-of-2022-06-30.duckdb."""
    published = Path(os.path.abspath(published))
    return published.with_name(f"{published.stem}.as-of-{as_of.isoformat()}{published.suffix or '.duckdb'}")


def checked_out_path(out: Path | str | None, published: Path, as_of: dt.date, landing: Path | str | None = None) -> Path:
    """Where the as-of file goes (default_path when `out` is empty), refused when it would
    overwrite the published warehouse, its working state or outputs, or land among the exports."""
    files = state.warehouse_files(published)
    target = Path(os.path.abspath(Path(out).expanduser())) if out else default_path(files.published, as_of)
    if target == files.published or target.is_relative_to(files.state_dir) or target.is_relative_to(files.outputs_dir):
        raise ConfigurationError(
            f"--out {target} would overwrite the published warehouse {files.published} or its own files; "
            f"give the as-of file a path of its own, e.g. {default_path(files.published, as_of)}"
        )
    if landing is not None and target.is_relative_to(Path(os.path.abspath(landing))):
        raise ConfigurationError(
            f"--out {target} is inside the landing folder {landing}; write the as-of file outside it, so that it is "
            f"never read as an export"
        )
    if target.is_dir():
        example = target / default_path(files.published, as_of).name
        raise ConfigurationError(f"--out {target} is a folder; give the path of the DuckDB file to write, e.g. {example}")
    existing = target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigurationError(f"cannot write the as-of file {target}: {existing} is not a writable folder; give --out a path in one")
    return target


def build_as_of(
    published: Path,
    as_of: dt.date,
    settings: Settings,
    out: Path | str | None = None,
    run_id: str | None = None,
    landing: Path | str | None = None,
    report: bool = True,
) -> AsOfBuild:
    """Build the as-of file of the warehouse published at `published` from its working
    state (read only), written under a temporary name and moved into place; with `report`,
    the Finnish quality-section report of it into `<file>.outputs/raportti/`. Call with the
    warehouse's run lock held and no writing connection open on the working file."""
    files = state.warehouse_files(published)
    target = checked_out_path(out, files.published, as_of, landing)
    if not files.working_file.exists():
        raise ConfigurationError(
            f"nothing is ingested for {files.published} yet, so there are no figures as of {as_of:%d.%m.%Y}; "
            f"run keha-maksatus run --as-of {as_of.isoformat()} with the exports in the landing folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    publish.remove_stale_builds(target)
    build = publish.staging_path(target)
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH ? AS {_WORKING} (READ_ONLY)", [str(files.working_file)])
        con.execute(f"USE {_WORKING}")
        file_ids, names = _files_used(con, as_of)
        con.execute(f"ATTACH ? AS {_BUILD}", [str(build)])
        notes = unreproducible(con, as_of, file_ids)
        _copy_state(con, as_of, file_ids)
        con.execute(f"USE {_BUILD}")
        con.execute(f"DETACH {_WORKING}")
        kpi.build_kpis(con, settings)
        build_forecast_tables(con, settings)
        data_as_of = kpi.as_of_date(con)
        _describe(con, as_of, data_as_of, files.published, run_id, file_ids, notes)
        con.execute("CHECKPOINT")
        con.execute("USE memory")
        con.execute(f"DETACH {_BUILD}")
    except BaseException:
        con.close()
        for path in (build, build.with_name(build.name + ".wal")):
            path.unlink(missing_ok=True)
        raise
    con.close()
    with build.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(build, target)
    report_dir = None
    if report:
        report_dir = state.warehouse_files(target).outputs.report
        write_report(target, report_dir)
    return AsOfBuild(target, as_of, data_as_of, file_ids, names, report_dir, notes)


def _files_used(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> tuple[list[int], list[str]]:
    """The ingested files dated on or before as_of (ids, names); ConfigurationError when none."""
    have_history = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'history' "
        "AND view_name IN ('decisions', 'feedback')"
    ).fetchall()[0][0]
    if have_history < 2:
        raise ConfigurationError(
            "the working state was built by an earlier version that kept no row history; run keha-maksatus run once "
            "(it upgrades the state), then ask for figures as of a date again"
        )
    file_ids = versions.files_as_of(con, as_of)
    if not file_ids:
        first = versions.first_extract_date(con)
        raise ConfigurationError(
            f"--as-of {as_of.isoformat()} is before the first extract"
            + (f" (dated {first.isoformat()})" if first else " (nothing is ingested yet)")
            + f"; there are no figures as of then: give a date on or after {first.isoformat() if first else 'the first extract'}"
        )
    names = [n for (n,) in con.execute(
        "SELECT file_name FROM quality.ingest_log WHERE file_id IN (SELECT unnest(?::INTEGER[])) ORDER BY file_id", [file_ids]
    ).fetchall()]
    return file_ids, names


def logged_as_of(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> list[int]:
    """Every ingest-log entry dated on or before as_of, whatever became of it: what a run on
    a landing folder of only those files would log. An entry logged without a date (same
    content as an earlier file, not a regular file) is dated as ingest dates a file: by
    the date in its name, else the day it was logged."""
    rows = con.execute("SELECT file_id, file_name, extract_date, ingested_at FROM quality.ingest_log").fetchall()
    return sorted(
        file_id for file_id, name, date, logged in rows
        if (date or landing.extract_date(name, logged.date())) <= as_of
    )


def unreproducible(con: duckdb.DuckDBPyConnection, as_of: dt.date, file_ids: list[int]) -> list[str]:
    """Extracts dated on or before as_of whose rows the state cannot give as of then: bytes
    that came again under an older date after a later extract had brought them (logged as
    duplicate_content). The state knows those rows only from the later extract, so they
    are not in the figures, which a run on only the extracts up to as_of would count."""
    rows = con.execute(
        """
        SELECT d.file_name, arg_min(o.file_name, o.file_id), min(o.extract_date)
        FROM quality.ingest_log d JOIN quality.ingest_log o ON o.content_sha256 = d.content_sha256 AND o.status = 'ingested'
        WHERE d.status = 'duplicate_content' AND d.file_id IN (SELECT unnest(?::INTEGER[]))
          AND NOT list_contains(?::INTEGER[], o.file_id)
        GROUP BY d.file_id, d.file_name ORDER BY d.file_id
        """,
        [logged_as_of(con, as_of), file_ids],
    ).fetchall()
    return [
        f"{copy} has the same content as {original} (dated {date.isoformat()}), which was ingested first: its rows are "
        f"known only from that later extract, so they are not in these figures"
        for copy, original, date in rows
    ]


def _copy_state(con: duckdb.DuckDBPyConnection, as_of: dt.date, file_ids: list[int]) -> None:
    """The working state's rows as of the files (USE working_state) into the build file."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_FILES} AS SELECT unnest(?::INTEGER[]) AS file_id", [file_ids])
    for schema in ("core", "kpi", "quality", "meta"):
        con.execute(f"CREATE SCHEMA {_BUILD}.{schema}")
    con.execute(
        f"CREATE TABLE {_BUILD}.quality.ingest_log AS SELECT * FROM quality.ingest_log "
        f"WHERE file_id IN (SELECT unnest(?::INTEGER[])) ORDER BY file_id",
        [logged_as_of(con, as_of)],
    )
    con.execute(
        f"CREATE TABLE {_BUILD}.quality.quarantine AS SELECT * FROM quality.quarantine "
        f"WHERE file_id IN (SELECT file_id FROM {_BUILD}.quality.ingest_log) ORDER BY file_id, line, column_name"
    )
    for kind, id_column in versions.ID_COLUMNS.items():
        con.execute(
            f"CREATE TABLE {_BUILD}.core.{kind} AS SELECT * FROM ({versions.state_sql(kind, _FILES)}) ORDER BY {id_column}"
        )
    # The customers that any version of those files names.
    con.execute(
        f"CREATE TABLE {_BUILD}.core.customers AS SELECT * FROM core.customers WHERE asiakas_id IN "
        f"(SELECT asiakas_id FROM history.decisions WHERE valid_from_file_id IN (SELECT file_id FROM {_FILES})) ORDER BY asiakas_id"
    )
    con.execute(f"DROP TABLE {_FILES}")


def _describe(con: duckdb.DuckDBPyConnection, as_of: dt.date, data_as_of: dt.date, source: Path, run_id: str | None,
              file_ids: list[int], notes: list[str]) -> None:
    """meta.as_of_build, meta.publication's one row (what the report reads: when built, the
    data's as-of date, the files) with history.quality_section, and the tables' descriptions."""
    built_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    con.execute(
        f"""
        CREATE TABLE {BUILD_TABLE} AS
        SELECT ?::DATE AS as_of, ?::DATE AS data_as_of, ?::TIMESTAMP AS built_at, ?::VARCHAR AS run_id,
               ?::VARCHAR AS source_warehouse, ?::BIGINT AS files_used, ?::INTEGER[] AS file_ids, ?::VARCHAR[] AS notes
        """,
        [as_of, data_as_of, built_at, run_id, str(source), len(file_ids), file_ids, notes],
    )
    publications.upgrade(con)
    con.execute(
        """
        INSERT INTO meta.publication BY NAME
        SELECT 1 AS publication_no, ?::TIMESTAMP AS published_at, ?::VARCHAR AS run_id, ?::DATE AS as_of,
               (SELECT count(*) FROM core.decisions) AS decisions, (SELECT count(*) FROM core.feedback) AS responses,
               count(*) AS files_ingested, coalesce(list(file_id ORDER BY file_id), []) AS ingested_file_ids,
               max(file_id) AS newest_file_id, arg_max(file_name, file_id) AS newest_file_name
        FROM quality.ingest_log WHERE status = 'ingested'
        """,
        [built_at, run_id, data_as_of],
    )
    con.execute("INSERT INTO history.quality_section BY NAME SELECT 1 AS publication_no, * FROM kpi.quality_section")
    with warehouse.transaction(con):  # one commit for the many COMMENT ON statements, not one each
        warehouse.add_comments(
            con, {**publish.table_comments(), **TABLE_COMMENTS}, {**publish.column_comments(), **COLUMN_COMMENTS}
        )
