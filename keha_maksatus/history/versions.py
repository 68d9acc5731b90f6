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
    "history.unsent_decisions": "Extracts that did not send an application although they lie within the span of one of its versions (from the extract that brought it to the newest that sent it, in file-name order): every other extract of the span sent it.",
    "history.unsent_feedback": "Extracts that did not send a survey response although they lie within the span of one of its versions: every other extract of the span sent it.",
    "history.started": "Set when a warehouse of an earlier version, without row history, was upgraded: its rows' versions are known from the newest file then on; figures as of earlier points need a rebuilt working state.",
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
    for kind, id_column in ID_COLUMNS.items():
        for table in (f"history.replaced_{kind}", f"history.{kind}"):
            comments[table] = {**core_comments[f"core.{kind}"], **VERSION_COLUMN_COMMENTS}
        comments[f"history.unsent_{kind}"] = {
            id_column: core_comments[f"core.{kind}"][id_column],
            "file_id": "The extract (quality.ingest_log.file_id) that did not send it",
        }
    comments["history.started"] = {
        "newest_file_id": "The newest file in quality.ingest_log at the upgrade: row versions are known from it on",
        "upgraded_at": "When the working state was upgraded (UTC)",
    }
    return comments


def upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Create the history tables and views; give core tables of an earlier version their
    version columns (each current row its own first version, the history known from
    then on: history.started). One catalog query and no write when up to date (every
    connection opens through here)."""
    columns = _catalog_columns(con)
    if all(
        (("history", f"{t}_{kind}") in columns for t in ("replaced", "unsent"))
        and ("core", kind) in columns and "valid_from_file_id" in columns[("core", kind)]
        and columns.get(("history", kind)) == [*columns[("core", kind)], "replaced_by_file_id"]
        for kind in ID_COLUMNS
    ) and ("history", "started") in columns:
        return
    con.execute("CREATE SCHEMA IF NOT EXISTS history")
    con.execute("CREATE TABLE IF NOT EXISTS history.started (newest_file_id INTEGER, upgraded_at TIMESTAMP)")
    for kind, id_column in ID_COLUMNS.items():
        if "valid_from_file_id" not in columns.get(("core", kind), []):
            con.execute(f"ALTER TABLE core.{kind} ADD COLUMN valid_from_file_id INTEGER")
            con.execute(f"ALTER TABLE core.{kind} ADD COLUMN valid_from_line BIGINT")
            con.execute(f"UPDATE core.{kind} SET valid_from_file_id = file_id, valid_from_line = line")
            con.execute(
                "INSERT INTO history.started SELECT max(file_id), now()::TIMESTAMP FROM quality.ingest_log "
                "WHERE (SELECT count(*) FROM history.started) = 0 AND (SELECT count(*) FROM quality.ingest_log) > 0"
            )
        con.execute(
            f"CREATE TABLE IF NOT EXISTS history.replaced_{kind} AS "
            f"SELECT *, NULL::INTEGER AS replaced_by_file_id FROM core.{kind} LIMIT 0"
        )
        con.execute(f"CREATE TABLE IF NOT EXISTS history.unsent_{kind} ({id_column} VARCHAR NOT NULL, file_id INTEGER NOT NULL)")
        con.execute(
            f"CREATE OR REPLACE VIEW history.{kind} AS "
            f"SELECT *, NULL::INTEGER AS replaced_by_file_id FROM core.{kind} "
            f"UNION ALL BY NAME SELECT * FROM history.replaced_{kind}"
        )


def _catalog_columns(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], list[str]]:
    """The columns of every table and view of the core and history schemas, in order."""
    columns: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name IN ('core', 'history') ORDER BY schema_name, table_name, column_index"
    ).fetchall():
        columns.setdefault((schema, table), []).append(column)
    return columns


def merge_rows(con: duckdb.DuckDBPyConnection, kind: str, file_id: int, file_name: str, rows: str) -> None:
    """Merge one file's rows into the versions of core.<kind>: for each id the row of the
    latest extract in file-name order stands; a row whose content differs from the version
    before it in that order is a new version, the old one kept in history.replaced_<kind>.
    `rows` (a fixed name) has the core columns but file_name, file_id and the version
    columns. Called inside the file's ingest transaction, the file already logged."""
    order = con.execute("SELECT name_order FROM quality.ingest_log WHERE file_id = ?", [file_id]).fetchall()[0][0]
    later_file_merged = con.execute(
        "SELECT count(*) FROM quality.ingest_log WHERE kind = ? AND status = 'ingested' AND name_order > ? AND file_id <> ?",
        [kind, order, file_id],
    ).fetchall()[0][0]
    if later_file_merged:
        _merge_late_file(con, kind, file_id, rows)
    else:
        _merge_newest_file(con, kind, file_id, file_name, rows)


def _same_content(kind: str, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{c} IS NOT DISTINCT FROM {right}.{c}" for c in CONTENT_COLUMNS[kind])


def _positions_sql(kind: str) -> str:
    """Each ingested extract of the kind with its position in file-name order (1 = first)."""
    return (
        "SELECT file_id, row_number() OVER (ORDER BY name_order, file_id) AS pos FROM quality.ingest_log "
        f"WHERE kind = '{kind}' AND status = 'ingested'"  # kind is one of ID_COLUMNS' keys
    )


def _merge_newest_file(con, kind: str, file_id: int, file_name: str, rows: str) -> None:
    """The usual nightly case: no later extract is merged, so each incoming row is its
    id's newest sighting. Unchanged rows keep their version (the extracts since its last
    sighting that did not send it recorded in history.unsent_<kind>); changed ones
    replace it."""
    id_column = ID_COLUMNS[kind]
    same = _same_content(kind, "r", "c")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE incoming_versions AS
        SELECT r.*, ?::VARCHAR AS file_name, ?::INTEGER AS file_id,
               CASE WHEN c.{id_column} IS NOT NULL AND {same} THEN c.valid_from_file_id ELSE ?::INTEGER END AS valid_from_file_id,
               CASE WHEN c.{id_column} IS NOT NULL AND {same} THEN c.valid_from_line ELSE r.line END AS valid_from_line,
               c.{id_column} IS NOT NULL AND NOT ({same}) AS replaces,
               CASE WHEN c.{id_column} IS NOT NULL AND {same} THEN c.file_id END AS last_seen_file_id,
               c.rowid AS core_row
        FROM {rows} r LEFT JOIN core.{kind} c ON c.{id_column} = r.{id_column}
        """,
        [file_name, file_id, file_id],
    )
    try:
        previous = con.execute(
            f"SELECT file_id FROM ({_positions_sql(kind)}) WHERE file_id <> ? ORDER BY pos DESC LIMIT 1", [file_id]
        ).fetchall()
        if previous:  # rows last sent before the previous extract: the extracts between did not send them
            con.execute(
                f"""
                INSERT INTO history.unsent_{kind}
                WITH positions AS ({_positions_sql(kind)})
                SELECT r.{id_column}, p.file_id
                FROM incoming_versions r
                JOIN positions seen ON seen.file_id = r.last_seen_file_id
                JOIN positions p ON p.pos > seen.pos AND p.pos < (SELECT pos FROM positions WHERE file_id = ?)
                WHERE r.last_seen_file_id IS NOT NULL AND r.last_seen_file_id <> ?
                """,
                [file_id, previous[0][0]],
            )
        con.execute(
            f"""
            INSERT INTO history.replaced_{kind} BY NAME
            SELECT c.*, ?::INTEGER AS replaced_by_file_id FROM core.{kind} c
            WHERE c.rowid IN (SELECT core_row FROM incoming_versions WHERE replaces)
            """,
            [file_id],
        )
        # By the rows the join found (row ids hold within this transaction): no second pass
        # over every id of the table.
        con.execute(f"DELETE FROM core.{kind} WHERE rowid IN (SELECT core_row FROM incoming_versions WHERE core_row IS NOT NULL)")
        con.execute(f"INSERT INTO core.{kind} BY NAME SELECT * EXCLUDE (replaces, last_seen_file_id, core_row) FROM incoming_versions")
    finally:
        con.execute("DROP TABLE IF EXISTS incoming_versions")


def _merge_late_file(con, kind: str, file_id: int, rows: str) -> None:
    """An extract older (in file-name order) than one already merged: each of its rows
    takes its place among its id's versions, and it is recorded as not sending the rows
    whose versions span it. Rare, so done row by row in Python.

    A version was sent by every extract of its kind from valid_from_file_id to file_id
    (its newest sighting) in file-name order but those in history.unsent_<kind>."""
    id_column = ID_COLUMNS[kind]
    positions = dict(con.execute(_positions_sql(kind)).fetchall())
    here = positions[file_id]
    at_position = {pos: f for f, pos in positions.items()}
    incoming = con.sql(f"SELECT * FROM {rows}").pl()
    con.register("late_ids", incoming.select(id_column))
    try:
        stored = con.sql(
            f"SELECT v.* FROM history.{kind} v WHERE v.{id_column} IN (SELECT {id_column} FROM late_ids)"
        ).pl()
        unsent = set(con.execute(
            f"SELECT {id_column}, file_id FROM history.unsent_{kind} WHERE {id_column} IN (SELECT {id_column} FROM late_ids)"
        ).fetchall())
        # The rows this extract did not send whose versions span it: it is a gap in their sightings.
        con.execute(
            f"""
            INSERT INTO history.unsent_{kind}
            WITH positions AS ({_positions_sql(kind)})
            SELECT v.{id_column}, ?::INTEGER FROM history.{kind} v
            JOIN positions f ON f.file_id = v.valid_from_file_id JOIN positions s ON s.file_id = v.file_id
            WHERE f.pos < ? AND s.pos > ? AND v.{id_column} NOT IN (SELECT {id_column} FROM late_ids)
            """,
            [file_id, here, here],
        )
    finally:
        con.unregister("late_ids")
    content = CONTENT_COLUMNS[kind]
    chains: dict[str, list[dict]] = {}
    for version in stored.sort(pl.col("valid_from_file_id").replace_strict(positions, default=0)).iter_rows(named=True):
        chains.setdefault(version[id_column], []).append(version)
    new_unsent = []
    rebuilt = []

    def sighted(row_id: str, positions_range) -> list[int]:
        return [at_position[p] for p in positions_range if (row_id, at_position[p]) not in unsent]

    for row in incoming.iter_rows(named=True):
        row_id = row[id_column]
        chain = chains.get(row_id, [])
        before = [v for v in chain if positions[v["valid_from_file_id"]] < here]
        previous = before[-1] if before else None
        following = chain[len(before)] if len(before) < len(chain) else None
        same_as = lambda version: version is not None and all(version[c] == row[c] for c in content)  # noqa: E731
        sighting = {"file_id": file_id, "line": row["line"]}
        if previous is not None and positions[previous["file_id"]] > here:
            if not same_as(previous):  # it splits the version that spans it
                last_before = sighted(row_id, range(positions[previous["valid_from_file_id"]], here))[-1]
                first_after = sighted(row_id, range(here + 1, positions[previous["file_id"]] + 1))[0]
                rest = {**previous, "valid_from_file_id": first_after,
                        "valid_from_line": previous["line"] if first_after == previous["file_id"] else None}
                previous.update(file_id=last_before,
                                line=previous["valid_from_line"] if last_before == previous["valid_from_file_id"] else None)
                new = {**row, **sighting, "valid_from_file_id": file_id, "valid_from_line": row["line"]}
                chain[len(before):len(before)] = [new, rest]
        elif same_as(previous):  # sent again after its newest sighting
            new_unsent += [(row_id, f) for f in sighted(row_id, range(positions[previous["file_id"]] + 1, here))]
            previous.update(sighting)
        elif same_as(following):  # the next version, sent earlier than known
            new_unsent += [(row_id, f) for f in sighted(row_id, range(here + 1, positions[following["valid_from_file_id"]]))]
            following.update(valid_from_file_id=file_id, valid_from_line=row["line"])
        else:
            chain.insert(len(before), {**row, **sighting, "valid_from_file_id": file_id, "valid_from_line": row["line"]})
        for version, after in zip(chain, chain[1:] + [None]):
            version["replaced_by_file_id"] = after["valid_from_file_id"] if after else None
        rebuilt.extend(chain)
    _rewrite_versions(con, kind, incoming.select(id_column), rebuilt, stored.schema)
    if new_unsent:
        con.executemany(f"INSERT INTO history.unsent_{kind} VALUES (?, ?)", new_unsent)


def _rewrite_versions(con, kind: str, ids: pl.DataFrame, rebuilt: list[dict], schema) -> None:
    id_column = ID_COLUMNS[kind]
    frame = pl.DataFrame(rebuilt, schema=schema)
    con.register("late_ids", ids)
    con.register("rebuilt_versions", frame)
    try:
        # A version may now name another extract as its newest sighting: its name from the log.
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE rebuilt AS
            SELECT r.* EXCLUDE (file_name), l.file_name
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
    files were those of relation `files` (a fixed name with a column file_id): per id, the
    version of its latest sighting among those files in file-name order. The source
    columns name that sighting (line null when it is neither the version's first nor its
    newest). `among` (a fixed name, default every version: history.<kind>) limits it to
    some ids' versions."""
    id_column = ID_COLUMNS[kind]
    among = among or f"history.{kind}"
    return f"""
        WITH positions AS ({_positions_sql(kind)}),
        chosen AS (SELECT p.file_id, p.pos FROM positions p WHERE p.file_id IN (SELECT file_id FROM {files})),
        sightings AS (
            SELECT v.*, c.file_id AS sighting_file_id, c.pos AS sighting_pos
            FROM {among} v
            JOIN positions first_seen ON first_seen.file_id = v.valid_from_file_id
            JOIN positions last_seen ON last_seen.file_id = v.file_id
            JOIN chosen c ON c.pos >= first_seen.pos AND c.pos <= last_seen.pos
            WHERE NOT EXISTS (
                SELECT 1 FROM history.unsent_{kind} u WHERE u.{id_column} = v.{id_column} AND u.file_id = c.file_id
            )
        )
        SELECT s.* EXCLUDE (replaced_by_file_id, file_id, file_name, line, sighting_file_id, sighting_pos),
               s.sighting_file_id AS file_id, l.file_name,
               CASE WHEN s.sighting_file_id = s.file_id THEN s.line
                    WHEN s.sighting_file_id = s.valid_from_file_id THEN s.valid_from_line END AS line
        FROM sightings s JOIN quality.ingest_log l ON l.file_id = s.sighting_file_id
        QUALIFY row_number() OVER (PARTITION BY s.{id_column} ORDER BY s.sighting_pos DESC) = 1
    """


def history_known(con: duckdb.DuckDBPyConnection, file_ids: list[int]) -> bool:
    """False when the set of files lies before the row history began (a state built by an
    earlier version keeps only each row's newest version from its upgrade on): it holds
    some but not all of the files ingested by then."""
    started = con.execute("SELECT min(newest_file_id) FROM history.started").fetchall()[0][0]
    if started is None:
        return True
    before = {f for (f,) in con.execute(
        "SELECT file_id FROM quality.ingest_log WHERE status = 'ingested' AND file_id <= ?", [started]
    ).fetchall()}
    chosen = before & set(file_ids)
    return not chosen or chosen == before


def _check_known(con: duckdb.DuckDBPyConnection, file_ids: list[int], what: str) -> None:
    if not history_known(con, file_ids):
        upgraded = con.execute("SELECT min(upgraded_at) FROM history.started").fetchall()[0][0]
        raise ConfigurationError(
            f"{what} lies before this warehouse kept its row history (from its upgrade on {upgraded:%d.%m.%Y}); "
            "rebuild the working state from the landing folder (README: Rebuilding the working state) to get earlier figures"
        )


def ingested_files(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Every file ingested now (status ingested), in file_id order: the current state's files."""
    return [f for (f,) in con.execute(
        "SELECT file_id FROM quality.ingest_log WHERE status = 'ingested' ORDER BY file_id"
    ).fetchall()]


def first_extract_date(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The oldest extract date among the ingested files."""
    return con.execute("SELECT min(extract_date) FROM quality.ingest_log WHERE status = 'ingested'").fetchall()[0][0]


def files_as_of(con: duckdb.DuckDBPyConnection, date: dt.date) -> list[int]:
    """The ingested files whose extract date is on or before `date`."""
    files = [f for (f,) in con.execute(
        "SELECT file_id FROM quality.ingest_log WHERE status = 'ingested' AND extract_date <= ? ORDER BY file_id", [date]
    ).fetchall()]
    _check_known(con, files, f"{date:%d.%m.%Y}")
    return files


def files_of_publication(con: duckdb.DuckDBPyConnection, publication_no: int) -> list[int]:
    """The files ingested when publication `publication_no` was made (history.publication)."""
    row = con.execute("SELECT ingested_file_ids FROM meta.publication WHERE publication_no = ?", [publication_no]).fetchall()
    if not row:
        raise ConfigurationError(f"no publication number {publication_no} in this warehouse; see history.publication")
    if row[0][0] is None:
        raise ConfigurationError(
            f"publication {publication_no} was made by an earlier version that did not record its files; "
            "compare publications made since, or dates"
        )
    return list(row[0][0])


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
            first = first_extract_date(con)
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
    files = files_of_publication(con, number)
    _check_known(con, files, f"publication {number}")
    return Point(label, files, as_of)
