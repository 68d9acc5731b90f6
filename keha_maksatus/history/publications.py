"""The publication history, kept in the working file and copied with each publish.

meta.publication (one row per publish) is the table; history.publication is a view of
it under the history schema, beside history.quality_section (every kpi.quality_section
row as each publish reported it) and history.changes (why each figure moved since the
publish before, keha_maksatus.history.changes). The history follows the
published file: rows of a publish that never reached it are dropped, rows the working
file lacks are taken from it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl

from keha_maksatus import kpi, warehouse
from keha_maksatus.history import changes as figure_changes
from keha_maksatus.history import versions

PUBLICATION_COMMENT = (
    "One row per publish of this file, the newest last: when, by which run, the data's as-of date, "
    "the row counts and the ingested files the figures rest on. The newest row describes the figures in this file."
)
PUBLICATION_COLUMN_COMMENTS = {
    "publication_no": "Sequence number of the publish (1 = first)",
    "published_at": "When the file was published (UTC)",
    "run_id": "The Dagster run that published it; null when published outside Dagster",
    "as_of": "The data's as-of date: the newest extract date behind the figures",
    "decisions": "Rows in core.decisions at that publish",
    "responses": "Rows in core.feedback at that publish",
    "files_ingested": "Files ingested (status ingested in quality.ingest_log) at that publish: the files the figures rest on",
    "ingested_file_ids": "file_id of each of those files (see quality.ingest_log)",
    "newest_file_id": "The newest of those files (highest file_id)",
    "newest_file_name": "Name of that newest file",
}
TABLE_COMMENTS = {
    "meta.publication": PUBLICATION_COMMENT,
    "history.publication": "The publication history (a view of meta.publication): " + PUBLICATION_COMMENT[0].lower() + PUBLICATION_COMMENT[1:],
    "history.quality_section": (
        "Every kpi.quality_section row as each publish reported it (join history.publication on publication_no): "
        "what was reported for a period on a given date, and how it moved from one publish to the next."
    ),
    "history.changes": (
        "Why each quality-section figure moved from one publish to the next: for every period whose value or n changed, "
        "the change broken into parts (new applications or responses, decided since, dates corrected into or out of the "
        "period, days or scores corrected, decision reverted to pending) by the extract that brought each, "
        "with the items and their contribution to the mean; the contributions sum to value_to - value_from. "
        "Rows newly rejected (quality.quarantine) are one row per extract (part newly_quarantined, no period)."
    ),
}
CHANGE_COLUMN_COMMENTS = {
    "from_publication_no": "The publish compared with (history.publication)",
    "to_publication_no": "The publish whose figures changed (history.publication)",
    "indicator": "maksatus_asiakastyytyvaisyys or maksatus_kasittelyaika_pv",
    "period_label": "Reporting period: 1-6/Y or 1-12/Y; null for newly_quarantined (a rejected row's period is not known)",
    "complete": "The period was closed in the later publish's data (its end on or before the newest extract of the indicator's kind)",
    "value_from": "The value at the earlier publish (unrounded; null when no item was in the mean)",
    "value_to": "The value at the later publish (unrounded; null when no item was in the mean)",
    "n_from": "Decisions or scored responses behind value_from",
    "n_to": "Decisions or scored responses behind value_to",
    "part": "What moved it: " + ", ".join(f"{part} ({label})" for part, label in figure_changes.PART_LABELS_FI.items()),
    "file_id": "The extract that brought the change (quality.ingest_log); for an item that left the mean, the one that moved it out",
    "file_name": "That extract's file name",
    "items": "Applications (hakemus_id) or responses (vastaus_id) in the part; for newly_quarantined, rows rejected",
    "contribution": "The part's share of value_to - value_from (the parts of a period sum to it); null when a mean is "
                    "undefined on either side (no decomposition); 0 for newly_quarantined (a rejected row leaves the earlier version standing)",
}
COLUMN_COMMENTS = {
    "meta.publication": PUBLICATION_COLUMN_COMMENTS,
    "history.publication": PUBLICATION_COLUMN_COMMENTS,
    "history.quality_section": {
        "publication_no": "The publish that reported the row (history.publication)",
        **kpi.COLUMN_COMMENTS["kpi.quality_section"],
    },
    "history.changes": CHANGE_COLUMN_COMMENTS,
}
HISTORY_TABLES = ("history.publication", "history.quality_section", "history.changes")

_PUBLICATION_DDL = """
CREATE TABLE IF NOT EXISTS meta.publication (
    publication_no INTEGER NOT NULL, published_at TIMESTAMP NOT NULL, run_id VARCHAR, as_of DATE,
    decisions BIGINT, responses BIGINT, files_ingested BIGINT, ingested_file_ids INTEGER[],
    newest_file_id INTEGER, newest_file_name VARCHAR
)
"""
_CHANGES_DDL = """
CREATE TABLE IF NOT EXISTS history.changes (
    from_publication_no INTEGER NOT NULL, to_publication_no INTEGER NOT NULL, indicator VARCHAR NOT NULL,
    period_label VARCHAR, complete BOOLEAN, value_from DOUBLE, value_to DOUBLE, n_from BIGINT, n_to BIGINT,
    part VARCHAR NOT NULL, file_id INTEGER, file_name VARCHAR, items BIGINT, contribution DOUBLE
)
"""
_PREVIOUS = "previously_published"


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> dict[str, str]:
    """Column name -> type of a table or view, in column order; empty when it does not exist."""
    return dict(con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [catalog, schema, table],
    ).fetchall())


def upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Create the history tables and the view, or bring those of an earlier version up to
    date in place (the one-row meta.publication, a history.quality_section lacking a
    column kpi.quality_section has gained); existing rows are kept."""
    catalog = _current(con)
    columns = _columns(con, catalog, "meta", "publication")
    if columns and "publication_no" not in columns:  # the one-row table of earlier versions
        con.execute("ALTER TABLE meta.publication RENAME TO publication_single_row")
        con.execute(_PUBLICATION_DDL)
        con.execute(
            "INSERT INTO meta.publication BY NAME SELECT row_number() OVER (ORDER BY published_at)::INTEGER AS publication_no, "
            "published_at, run_id, as_of, decisions, responses FROM meta.publication_single_row"
        )
        con.execute("DROP TABLE meta.publication_single_row")
    con.execute(_PUBLICATION_DDL)
    con.execute("CREATE SCHEMA IF NOT EXISTS history")
    # Re-created each time, so that its columns follow meta.publication's.
    con.execute("CREATE OR REPLACE VIEW history.publication AS SELECT * FROM meta.publication")
    con.execute("CREATE TABLE IF NOT EXISTS history.quality_section (publication_no INTEGER NOT NULL)")
    con.execute(_CHANGES_DDL)
    if _not_null(con, catalog, "history", "changes", "period_label"):  # rows newly rejected have no period
        con.execute("ALTER TABLE history.changes ALTER COLUMN period_label DROP NOT NULL")
    have = _columns(con, catalog, "history", "quality_section")
    for column, data_type in _columns(con, catalog, "kpi", "quality_section").items():
        if column not in have:
            con.execute(f'ALTER TABLE history.quality_section ADD COLUMN "{column}" {data_type}')


def _not_null(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str, column: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? AND table_name = ? "
        "AND column_name = ? AND NOT is_nullable",
        [catalog, schema, table, column],
    ).fetchall()[0][0])


def _copy_quality_rows(con: duckdb.DuckDBPyConnection, source: tuple[str, str, str], publication_no: str, where: str = "") -> None:
    """Append to history.quality_section the rows of `source` (catalog, schema, table: fixed
    names) under `publication_no` (a column of source or a number), by the columns both have."""
    target = _columns(con, _current(con), "history", "quality_section")
    shared = [c for c in _columns(con, *source) if c != "publication_no" and c in target]
    if not shared:
        return
    names = ", ".join(f'"{c}"' for c in shared)
    con.execute(
        f"INSERT INTO history.quality_section (publication_no, {names}) "
        f"SELECT {publication_no}, {names} FROM {'.'.join(source)} {where}"
    )


def _follow_published(con: duckdb.DuckDBPyConnection, published_path: Path) -> None:
    """Make the working file's history that of the published file: drop rows of publishes
    that never reached it, take the rows it has and the working file lacks. A file
    published before history.quality_section existed gives its own kpi.quality_section
    as its newest publish's rows (the two were published together)."""
    if not Path(published_path).exists():
        return
    con.execute(f"ATTACH ? AS {_PREVIOUS} (READ_ONLY)", [str(published_path)])
    try:
        if "publication_no" not in _columns(con, _PREVIOUS, "meta", "publication"):
            return
        newest = con.execute(f"SELECT coalesce(max(publication_no), 0) FROM {_PREVIOUS}.meta.publication").fetchall()[0][0]
        con.execute("DELETE FROM meta.publication WHERE publication_no > ?", [newest])
        con.execute("DELETE FROM history.quality_section WHERE publication_no > ?", [newest])
        con.execute("DELETE FROM history.changes WHERE to_publication_no > ?", [newest])
        con.execute(
            f"INSERT INTO meta.publication BY NAME SELECT * FROM {_PREVIOUS}.meta.publication "
            "WHERE publication_no NOT IN (SELECT publication_no FROM meta.publication)"
        )
        if _columns(con, _PREVIOUS, "history", "quality_section"):
            _copy_quality_rows(con, (_PREVIOUS, "history", "quality_section"), "publication_no",
                               "WHERE publication_no NOT IN (SELECT publication_no FROM history.quality_section)")
        if _columns(con, _PREVIOUS, "history", "changes"):
            con.execute(
                f"INSERT INTO history.changes BY NAME SELECT * FROM {_PREVIOUS}.history.changes "
                "WHERE to_publication_no NOT IN (SELECT to_publication_no FROM history.changes)"
            )
        reported = con.execute("SELECT count(*) FROM history.quality_section WHERE publication_no = ?", [newest]).fetchall()[0][0]
        if newest and not reported and _columns(con, _PREVIOUS, "kpi", "quality_section"):
            _copy_quality_rows(con, (_PREVIOUS, "kpi", "quality_section"), str(int(newest)))
    finally:
        con.execute(f"DETACH {_PREVIOUS}")


def last_publication_files(con: duckdb.DuckDBPyConnection, published_path: Path) -> list[int] | None:
    """The ingested files of the last publication as the published file records it (the
    history record_publication follows, _follow_published): a publish recorded in the
    working file that never reached the published one is no publication. The working
    file's when nothing numbered is published. None before the first publication, and
    when that publication's files are not known (recorded by an earlier version)."""
    if Path(published_path).exists():
        try:
            con.execute(f"ATTACH ? AS {_PREVIOUS} (READ_ONLY)", [str(published_path)])
        except duckdb.IOException:
            # Another process writes to the published file: the publish step waits for it and
            # names it; until then the working file's record is the best known.
            pass
        else:
            try:
                if "publication_no" in _columns(con, _PREVIOUS, "meta", "publication"):
                    return _newest_files(con, _PREVIOUS)
            finally:
                con.execute(f"DETACH {_PREVIOUS}")
    catalog = _current(con)
    return _newest_files(con, catalog) if "publication_no" in _columns(con, catalog, "meta", "publication") else None


def _newest_files(con: duckdb.DuckDBPyConnection, catalog: str) -> list[int] | None:
    newest = con.execute(
        f"SELECT ingested_file_ids FROM {catalog}.meta.publication ORDER BY publication_no DESC LIMIT 1"
    ).fetchall()
    return list(newest[0][0]) if newest and newest[0][0] is not None else None


# The KPI step's comparison, kept in the working file for the publish of the same state to
# record (comparing two states of the whole history is the slow part): the rows and the files
# they compare. record_publication consumes both, so a published file never holds them.
PENDING_CHANGES = "history.pending_changes"
PENDING_CHANGES_OF = "history.pending_changes_of"


def changes_since_last_publication(con: duckdb.DuckDBPyConnection, published_path: Path) -> pl.DataFrame:
    """Why each figure moved since the last publication (last_publication_files) to every
    file ingested now: what the KPI step checks and record_publication keeps. Computed
    once per pair of states, then read from the working file."""
    since = last_publication_files(con, published_path)
    now = versions.ingested_files(con)
    if _pending_of(con) == (since, now):
        return con.sql(f"SELECT * FROM {PENDING_CHANGES}").pl()
    moved = figure_changes.changes_since(con, since)
    con.register("moved_figures", moved)
    try:
        with warehouse.transaction(con):
            con.execute(f"CREATE OR REPLACE TABLE {PENDING_CHANGES} AS SELECT * FROM moved_figures")
            con.execute(f"CREATE OR REPLACE TABLE {PENDING_CHANGES_OF} AS SELECT ?::INTEGER[] AS since_file_ids, ?::INTEGER[] AS now_file_ids",
                        [since, now])
    finally:
        con.unregister("moved_figures")
    return moved


def _pending_of(con: duckdb.DuckDBPyConnection) -> tuple[list[int] | None, list[int]] | None:
    """The files the kept comparison is between, or None when none is kept."""
    try:
        rows = con.execute(f"SELECT since_file_ids, now_file_ids FROM {PENDING_CHANGES_OF}").fetchall()
    except duckdb.CatalogException:
        return None
    if not rows:
        return None
    since, now = rows[0]
    return (None if since is None else list(since), list(now))


def _drop_pending_changes(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP TABLE IF EXISTS {PENDING_CHANGES}")
    con.execute(f"DROP TABLE IF EXISTS {PENDING_CHANGES_OF}")


def record_publication(con: duckdb.DuckDBPyConnection, published_path: Path, run_id: str | None) -> int:
    """Append this publish to meta.publication and its quality section to
    history.quality_section in the working file (upgraded as needed, its history first
    made that of the published file), and to history.changes why each figure moved since
    the publish before; the publish's number."""
    upgrade(con)
    _follow_published(con, published_path)
    number = int(con.execute("SELECT coalesce(max(publication_no), 0) + 1 FROM meta.publication").fetchall()[0][0])
    moved = changes_since_last_publication(con, published_path).filter(figure_changes.kept())
    with warehouse.transaction(con):  # the publish's row, its quality section and changes, or none
        con.execute(
            """
            INSERT INTO meta.publication BY NAME
            SELECT ?::INTEGER AS publication_no, ?::TIMESTAMP AS published_at, ?::VARCHAR AS run_id, ?::DATE AS as_of,
                   (SELECT count(*) FROM core.decisions) AS decisions,
                   (SELECT count(*) FROM core.feedback) AS responses,
                   count(*) AS files_ingested,
                   coalesce(list(file_id ORDER BY file_id), []) AS ingested_file_ids,
                   max(file_id) AS newest_file_id,
                   arg_max(file_name, file_id) AS newest_file_name
            FROM quality.ingest_log WHERE status = 'ingested'
            """,
            [number, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), run_id, kpi.as_of_date(con)],
        )
        _copy_quality_rows(con, (_current(con), "kpi", "quality_section"), str(number))
        if moved.height:
            con.register("moved_figures", moved)
            try:
                con.execute(
                    "INSERT INTO history.changes BY NAME SELECT ?::INTEGER AS from_publication_no, "
                    "?::INTEGER AS to_publication_no, * FROM moved_figures",
                    [number - 1, number],
                )
            finally:
                con.unregister("moved_figures")
        _drop_pending_changes(con)
    return number


def _current(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_database()").fetchall()[0][0]
