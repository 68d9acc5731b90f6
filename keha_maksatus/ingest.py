"""Ingesting the landing folder into the working warehouse, one file at a time.

Each new file (by content hash) is read, validated, pseudonymised and stored in one
transaction: its valid rows to staging, its rejections to the quarantine, and a line
in the ingest log. A file that cannot be read is logged with its reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from keha_maksatus import failpoints, landing, warehouse
from keha_maksatus.config import Settings
from keha_maksatus.privacy import mask_free_text, pseudonym_sql
from keha_maksatus.readers import UnreadableFile, read_export
from keha_maksatus.schemas import kind_of_file
from keha_maksatus.validation import validate_export

INGESTED = "ingested"
QUARANTINED = "quarantined"
UNREADABLE = "unreadable"
DUPLICATE = "duplicate_content"


@dataclass
class FileOutcome:
    file_name: str
    status: str
    kind: str | None = None
    reason: str | None = None
    rows_read: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0


def ingest_landing(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    key: bytes,
    settings: Settings,
    today: dt.date | None = None,
) -> list[FileOutcome]:
    """Ingest every file of the landing folder not yet in the ingest log."""
    outcomes = []
    known = warehouse.known_hashes(con)
    for item in landing.list_landing_files(landing_dir):
        digest = landing.content_hash(item.path)
        if digest in known:
            if known[digest] != item.name and not _logged_name(con, item.name, digest):
                outcome = FileOutcome(item.name, DUPLICATE, reason=f"same content as {known[digest]}, not ingested twice")
                _log(con, item, digest, outcome, None, None)
                outcomes.append(outcome)
            continue
        outcome = ingest_file(con, item, digest, key, settings, today)
        known[digest] = item.name
        outcomes.append(outcome)
    return outcomes


def _logged_name(con: duckdb.DuckDBPyConnection, name: str, digest: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM state.ingest.log WHERE file_name = ? AND content_sha256 = ?", [name, digest]
        ).fetchall()[0][0]
    )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    item: landing.LandingFile,
    digest: str,
    key: bytes,
    settings: Settings,
    today: dt.date | None = None,
) -> FileOutcome:
    kind = kind_of_file(item.name)
    extract_date = landing.extract_date(item.name, today)
    if kind is None:
        outcome = FileOutcome(
            item.name, UNREADABLE, reason="file name starts with neither maksatuspaatokset_ nor asiakaspalaute_"
        )
        with warehouse.transaction(con):
            _log(con, item, digest, outcome, extract_date, None)
        return outcome
    try:
        read = read_export(item.path)
        result = validate_export(read.frame, kind, extract_date, spreadsheet=read.file_format == "xlsx")
    except UnreadableFile as error:
        outcome = FileOutcome(item.name, UNREADABLE, kind.name, reason=str(error))
        with warehouse.transaction(con):
            _log(con, item, digest, outcome, extract_date, None)
        return outcome

    outcome = FileOutcome(
        item.name,
        INGESTED,
        kind.name,
        rows_read=result.rows_read,
        rows_valid=result.rows_valid,
        rows_rejected=result.rows_rejected,
    )
    if result.rows_read and result.rows_rejected / result.rows_read > settings.max_rejected_share:
        outcome.status = QUARANTINED
        outcome.reason = (
            f"{result.rows_rejected} of {result.rows_read} rows rejected "
            f"({result.rows_rejected / result.rows_read:.0%} > {settings.max_rejected_share:.0%}): "
            "a changed export format, not bad rows; none of its rows are used"
        )
    valid = result.valid
    if kind.name == "feedback":
        valid = valid.with_columns(mask_free_text(pl.col("vapaa_teksti")))
    with warehouse.transaction(con):
        file_id = _log(con, item, digest, outcome, extract_date, read, result.extra_columns)
        _store_rows(con, kind.name, file_id, valid, key)
        _store_rejections(con, file_id, item.name, result.rejections)
        failpoints.reach("ingest")  # mid-transaction: nothing of this file may stay
    return outcome


def _log(con, item, digest, outcome: FileOutcome, extract_date, read, extra_columns=None) -> int:
    file_id = warehouse.next_file_id(con)
    con.execute(
        """
        INSERT INTO state.ingest.log VALUES
        (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)
        """,
        [
            file_id, item.name, outcome.kind, digest, item.size, extract_date,
            read.file_format if read else None, read.encoding if read else None,
            read.separator if read else None, outcome.status, outcome.reason,
            outcome.rows_read, outcome.rows_valid, outcome.rows_rejected,
            ", ".join(extra_columns) if extra_columns else None,
        ],
    )
    return file_id


def _store_rows(con: duckdb.DuckDBPyConnection, kind: str, file_id: int, valid: pl.DataFrame, key: bytes) -> None:
    """Valid rows into staging; the customer id is replaced by its pseudonym on the way."""
    if valid.is_empty():
        return
    con.register("incoming_rows", valid)
    try:
        columns = [f"{int(file_id)} AS file_id" if c == "file_id" else c for c in warehouse.STAGING_COLUMNS[kind]]
        if kind == "decisions":
            # Each distinct customer is hashed once, then joined back to its rows.
            expression, params = pseudonym_sql("asiakastunnus", key)
            con.execute(
                f"""
                INSERT INTO state.staging.decisions BY NAME
                WITH customers AS (SELECT DISTINCT asiakastunnus FROM incoming_rows)
                SELECT {', '.join(columns)}
                FROM incoming_rows JOIN (SELECT asiakastunnus, {expression} AS asiakas_hash FROM customers) USING (asiakastunnus)
                """,
                params,
            )
        else:
            con.execute(f"INSERT INTO state.staging.{kind} BY NAME SELECT {', '.join(columns)} FROM incoming_rows")
    finally:
        con.unregister("incoming_rows")


def _store_rejections(con: duckdb.DuckDBPyConnection, file_id: int, file_name: str, rejections: pl.DataFrame) -> None:
    if rejections.is_empty():
        return
    rows = rejections.select(
        pl.lit(file_id, dtype=pl.Int32).alias("file_id"),
        pl.lit(file_name).alias("file_name"),
        "line",
        pl.col("column").alias("column_name"),
        "rule",
        "raw_value",
    )
    con.register("incoming_rejections", rows)
    try:
        con.execute("INSERT INTO state.ingest.quarantine BY NAME SELECT * FROM incoming_rejections")
    finally:
        con.unregister("incoming_rejections")
