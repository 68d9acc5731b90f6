"""Every version of every application and response, and the state as of any set of files.

core.decisions and core.feedback hold the current version of each row. A version is
the content a row had from the extract that brought it (valid_from_file_id,
valid_from_line) until the extract that brought a different content
(replaced_by_file_id); `file_id`, `file_name` and `line` are the newest extract that
sent the row. A row sent again unchanged is no new version, so the history grows with
the rows that change, not with the number of extracts. Superseded versions move to
history.replaced_decisions / history.replaced_feedback; the views history.decisions and
history.feedback show every version, the current ones with replaced_by_file_id null.

Extracts apply in file-name order (quality.ingest_log.name_order), a later-ingested file
winning a tie; an older extract that arrives late takes its place in that order.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import duckdb
import polars as pl

from keha_maksatus.errors import ConfigurationError

ID_COLUMNS = {"decisions": "hakemus_id", "feedback": "vastaus_id"}
# What a version is: a change in any of these makes a new one.
CONTENT_COLUMNS = {
    "decisions": ("tukimuoto", "yksikko", "saapunut", "paatetty", "paatos", "haettu_eur", "maksettu_eur", "asiakas_id",
                  "taydennys_pv", "kasittelyaika_pv", "netto_kasittelyaika_pv"),
    "feedback": ("kysely", "palvelu", "vastattu", "arvosana", "tukimuoto", "yksikko", "hakemus_id", "kieli", "vapaa_teksti"),
}
SOURCE_COLUMNS = ("file_name", "file_id", "line")
VERSION_COLUMNS = ("valid_from_file_id", "valid_from_line")

TABLE_COMMENTS = {
    "history.replaced_decisions": "Every superseded version of a payment application: its content, the extract that brought it and the one that replaced it.",
    "history.replaced_feedback": "Every superseded version of a survey response: its content, the extract that brought it and the one that replaced it.",
    "history.decisions": "Every version of every payment application (core.decisions holds the current ones, replaced_by_file_id null; history.replaced_decisions the earlier ones).",
    "history.feedback": "Every version of every survey response (core.feedback holds the current ones, replaced_by_file_id null; history.replaced_feedback the earlier ones).",
}
VERSION_COLUMN_COMMENTS = {
    "valid_from_file_id": "The extract (quality.ingest_log.file_id) that brought this version: the first to send this content",
    "valid_from_line": "Line of the row in that extract",
    "replaced_by_file_id": "The extract that brought the next version; null for the current version",
}
HISTORY_TABLES = tuple(TABLE_COMMENTS)


def column_comments(core_comments: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Column descriptions of the core tables' version columns and of the history tables,
    given those of the core tables."""
    current = {c: t for c, t in VERSION_COLUMN_COMMENTS.items() if c != "replaced_by_file_id"}
    comments = {f"core.{kind}": {**core_comments[f"core.{kind}"], **current} for kind in ID_COLUMNS}
    for kind in ID_COLUMNS:
        for table in (f"history.replaced_{kind}", f"history.{kind}"):
            comments[table] = {**core_comments[f"core.{kind}"], **VERSION_COLUMN_COMMENTS}
    return comments


def upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Create the history tables and views; give core tables of an earlier version their
    version columns (each current row its own first version). Cheap when up to date."""
    have = {
        (table, column)
        for table, column in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'core' AND database_name = current_database()"
        ).fetchall()
    }
    con.execute("CREATE SCHEMA IF NOT EXISTS history")
    for kind in ID_COLUMNS:
        if (kind, "valid_from_file_id") not in have:
            con.execute(f"ALTER TABLE core.{kind} ADD COLUMN valid_from_file_id INTEGER")
            con.execute(f"ALTER TABLE core.{kind} ADD COLUMN valid_from_line BIGINT")
            con.execute(f"UPDATE core.{kind} SET valid_from_file_id = file_id, valid_from_line = line")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS history.replaced_{kind} AS "
            f"SELECT *, NULL::INTEGER AS replaced_by_file_id FROM core.{kind} LIMIT 0"
        )
        con.execute(
            f"CREATE OR REPLACE VIEW history.{kind} AS "
            f"SELECT *, NULL::INTEGER AS replaced_by_file_id FROM core.{kind} "
            f"UNION ALL BY NAME SELECT * FROM history.replaced_{kind}"
        )


def merge_rows(con: duckdb.DuckDBPyConnection, kind: str, file_id: int, file_name: str, rows: str, ids: str) -> None:
    """Merge one file's rows into the versions of core.<kind>: for each id the row of the
    latest extract in file-name order stands; a row whose content differs from the version
    before it in that order is a new version, the old one kept in history.replaced_<kind>.
    `rows` (a fixed name) has the core columns but file_name, file_id and the version
    columns; `ids`, a cheaper relation with the same ids, serves to find the rows
    replaced. Called inside the file's ingest transaction."""
    order = con.execute("SELECT name_order FROM quality.ingest_log WHERE file_id = ?", [file_id]).fetchall()[0][0]
    later_file_merged = con.execute(
        "SELECT count(*) FROM quality.ingest_log WHERE kind = ? AND status = 'ingested' AND name_order > ? AND file_id <> ?",
        [kind, order, file_id],
    ).fetchall()[0][0]
    if later_file_merged:
        _merge_late_file(con, kind, file_id, file_name, rows)
    else:
        _merge_newest_file(con, kind, file_id, file_name, rows, ids)


def _same_content(kind: str, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{c} IS NOT DISTINCT FROM {right}.{c}" for c in CONTENT_COLUMNS[kind])


def _merge_newest_file(con, kind: str, file_id: int, file_name: str, rows: str, ids: str) -> None:
    """The usual nightly case: no later extract is merged, so each incoming row is its
    id's newest sighting. Unchanged rows keep their version; changed ones replace it."""
    id_column = ID_COLUMNS[kind]
    same = _same_content(kind, "r", "c")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE incoming_versions AS
        SELECT r.*, ?::VARCHAR AS file_name, ?::INTEGER AS file_id,
               CASE WHEN c.{id_column} IS NOT NULL AND {same} THEN c.valid_from_file_id ELSE ?::INTEGER END AS valid_from_file_id,
               CASE WHEN c.{id_column} IS NOT NULL AND {same} THEN c.valid_from_line ELSE r.line END AS valid_from_line,
               c.{id_column} IS NOT NULL AND NOT ({same}) AS replaces
        FROM {rows} r LEFT JOIN core.{kind} c ON c.{id_column} = r.{id_column}
        """,
        [file_name, file_id, file_id],
    )
    try:
        con.execute(
            f"""
            INSERT INTO history.replaced_{kind} BY NAME
            SELECT c.*, ?::INTEGER AS replaced_by_file_id FROM core.{kind} c
            WHERE c.{id_column} IN (SELECT {id_column} FROM incoming_versions WHERE replaces)
            """,
            [file_id],
        )
        # IN (subquery) builds its hash table of the ids alone; USING would carry every column.
        con.execute(f"DELETE FROM core.{kind} WHERE {id_column} IN (SELECT {id_column} FROM {ids})")
        con.execute(f"INSERT INTO core.{kind} BY NAME SELECT * EXCLUDE (replaces) FROM incoming_versions")
    finally:
        con.execute("DROP TABLE IF EXISTS incoming_versions")


def _merge_late_file(con, kind: str, file_id: int, file_name: str, rows: str) -> None:
    """An extract older (in file-name order) than one already merged: each of its rows
    takes its place among its id's versions. Rare, so done row by row in Python."""
    id_column = ID_COLUMNS[kind]
    incoming = con.sql(f"SELECT *, ?::VARCHAR AS file_name, ?::INTEGER AS file_id FROM {rows}", params=[file_name, file_id]).pl()
    con.register("late_ids", incoming.select(id_column))
    try:
        stored = con.sql(
            f"""
            SELECT v.*, f.name_order AS from_order, s.name_order AS seen_order
            FROM history.{kind} v
            JOIN quality.ingest_log f ON f.file_id = v.valid_from_file_id
            JOIN quality.ingest_log s ON s.file_id = v.file_id
            WHERE v.{id_column} IN (SELECT {id_column} FROM late_ids)
            """
        ).pl()
    finally:
        con.unregister("late_ids")
    order = con.execute("SELECT name_order FROM quality.ingest_log WHERE file_id = ?", [file_id]).fetchall()[0][0]
    content = CONTENT_COLUMNS[kind]
    versions: dict[str, list[dict]] = {}
    for version in stored.sort("from_order", "valid_from_file_id").iter_rows(named=True):
        versions.setdefault(version[id_column], []).append(version)
    key = (order, file_id)
    rebuilt = []
    for row in incoming.iter_rows(named=True):
        chain = versions.get(row[id_column], [])
        before = [v for v in chain if (v["from_order"], v["valid_from_file_id"]) < key]
        previous = before[-1] if before else None
        at = len(before)
        if previous is not None and all(previous[c] == row[c] for c in content):
            if previous is chain[-1] and (previous["seen_order"], previous["file_id"]) < key:
                previous.update(file_id=file_id, file_name=file_name, line=row["line"], seen_order=order)
        else:
            new = {**row, "valid_from_file_id": file_id, "valid_from_line": row["line"], "from_order": order, "seen_order": order}
            inserted = [new]
            if previous is not None and (previous["seen_order"], previous["file_id"]) > key:
                # The earlier version was sent again after this extract: it stands again from there.
                inserted.append({**previous, "valid_from_file_id": previous["file_id"], "valid_from_line": previous["line"],
                                 "from_order": previous["seen_order"]})
                previous.update(file_id=previous["valid_from_file_id"], line=previous["valid_from_line"],
                                seen_order=previous["from_order"])
            chain[at:at] = inserted
        versions[row[id_column]] = chain
        for version, following in zip(chain, chain[1:] + [None]):
            version["replaced_by_file_id"] = following["valid_from_file_id"] if following else None
        rebuilt.extend(chain)
    _rewrite_versions(con, kind, incoming.select(id_column), rebuilt, stored.schema)


def _rewrite_versions(con, kind: str, ids: pl.DataFrame, rebuilt: list[dict], schema) -> None:
    id_column = ID_COLUMNS[kind]
    frame = pl.DataFrame(rebuilt, schema=schema)
    con.register("late_ids", ids)
    con.register("rebuilt_versions", frame)
    try:
        # A version may now name an earlier extract as its source: its name from the log.
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE rebuilt AS
            SELECT r.* EXCLUDE (file_name, from_order, seen_order), l.file_name
            FROM rebuilt_versions r JOIN quality.ingest_log l ON l.file_id = r.file_id
            """
        )
        for table in (f"core.{kind}", f"history.replaced_{kind}"):
            con.execute(f"DELETE FROM {table} WHERE {id_column} IN (SELECT {id_column} FROM late_ids)")
        con.execute(f"INSERT INTO core.{kind} BY NAME SELECT * EXCLUDE (replaced_by_file_id) FROM rebuilt WHERE replaced_by_file_id IS NULL")
        con.execute(f"INSERT INTO history.replaced_{kind} BY NAME SELECT * FROM rebuilt WHERE replaced_by_file_id IS NOT NULL")
        con.execute("DROP TABLE rebuilt")
    finally:
        con.unregister("late_ids")
        con.unregister("rebuilt_versions")


# --- the state as of a set of files --------------------------------------------------------


def state_sql(kind: str, files: str, among: str | None = None) -> str:
    """A SELECT with exactly core.<kind>'s columns: the state as it stood when the ingested
    files were those of relation `files` (a fixed name with a column file_id). Per id, the
    version brought by the latest of those files in file-name order; its source columns
    name the newest of those files that sent it. `among` (a fixed name, default every
    version: history.<kind>) limits it to some ids' versions."""
    id_column = ID_COLUMNS[kind]
    among = among or f"history.{kind}"
    return f"""
        SELECT v.* EXCLUDE (replaced_by_file_id, file_id, file_name, line),
               CASE WHEN v.file_id IN (SELECT file_id FROM {files}) THEN v.file_id ELSE v.valid_from_file_id END AS file_id,
               CASE WHEN v.file_id IN (SELECT file_id FROM {files}) THEN v.file_name ELSE l.file_name END AS file_name,
               CASE WHEN v.file_id IN (SELECT file_id FROM {files}) THEN v.line ELSE v.valid_from_line END AS line
        FROM {among} v JOIN quality.ingest_log l ON l.file_id = v.valid_from_file_id
        WHERE v.valid_from_file_id IN (SELECT file_id FROM {files})
        QUALIFY row_number() OVER (PARTITION BY v.{id_column} ORDER BY l.name_order DESC, v.valid_from_file_id DESC) = 1
    """


def files_as_of(con: duckdb.DuckDBPyConnection, date: dt.date) -> list[int]:
    """The ingested files whose extract date is on or before `date`."""
    return [f for (f,) in con.execute(
        "SELECT file_id FROM quality.ingest_log WHERE status = 'ingested' AND extract_date <= ? ORDER BY file_id", [date]
    ).fetchall()]


def files_of_publication(con: duckdb.DuckDBPyConnection, publication_no: int) -> list[int]:
    """The files ingested when publication `publication_no` was made (history.publication)."""
    row = con.execute("SELECT ingested_file_ids FROM meta.publication WHERE publication_no = ?", [publication_no]).fetchall()
    if not row:
        raise ConfigurationError(f"no publication number {publication_no} in this warehouse; see history.publication")
    return list(row[0][0] or [])


@dataclass(frozen=True)
class Point:
    """A point in the warehouse's history: what it is called, the files ingested then and
    the data's as-of date."""

    label: str
    file_ids: list[int]
    as_of: dt.date | None


_DATE_ISO = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")
_DATE_FI = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


def parse_date(text: str) -> dt.date | None:
    """2022-06-30 or 30.6.2022; None when the text is no date of either form."""
    text = text.strip()
    try:
        if _DATE_ISO.match(text):
            return dt.date.fromisoformat("-".join(part.zfill(2) for part in text.split("-")))
        if match := _DATE_FI.match(text):
            day, month, year = (int(part) for part in match.groups())
            return dt.date(year, month, day)
    except ValueError:
        return None
    return None


def resolve_point(con: duckdb.DuckDBPyConnection, text: str) -> Point:
    """A Dagster run id or publication number of history.publication, or a date (the
    files with extract dates up to it)."""
    text = text.strip()
    date = parse_date(text)
    if date is not None:
        files = files_as_of(con, date)
        if not files:
            first = con.execute("SELECT min(extract_date) FROM quality.ingest_log WHERE status = 'ingested'").fetchall()[0][0]
            raise ConfigurationError(
                f"no extract is dated on or before {date:%d.%m.%Y}"
                + (f" (the first is dated {first:%d.%m.%Y})" if first else " (nothing is ingested)")
                + "; give a later date, a run id or a publication number"
            )
        as_of = con.execute(
            "SELECT max(extract_date) FROM quality.ingest_log WHERE status = 'ingested' AND extract_date <= ?", [date]
        ).fetchall()[0][0]
        return Point(f"{date:%d.%m.%Y}", files, as_of)
    publications = con.execute(
        "SELECT publication_no, run_id, as_of, published_at FROM meta.publication "
        "WHERE run_id = ? OR (? AND publication_no = TRY_CAST(? AS INTEGER))",
        [text, text.isdigit(), text],
    ).fetchall()
    if not publications:
        raise ConfigurationError(
            f"{text!r} is neither a date (2022-06-30 or 30.6.2022) nor a run id or number of a publication in "
            "history.publication; list them with: SELECT publication_no, run_id, published_at FROM history.publication"
        )
    number, run_id, as_of, published_at = publications[0]
    label = f"julkaisu {number} ({published_at:%d.%m.%Y})"
    return Point(label, files_of_publication(con, number), as_of)
