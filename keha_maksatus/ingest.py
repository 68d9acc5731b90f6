"""Ingesting the landing folder into the working warehouse, one file at a time.

Each new file (by content hash) is read and validated (prepare_file, no database, run
one file ahead in a background thread), then pseudonymised and stored in one transaction
(store_file): a line in the ingest log, its rejections to the quarantine, and its valid
rows merged into the current state (core.*). A file that cannot be read is logged with
its reason.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import duckdb
import polars as pl

from keha_maksatus import failpoints, landing, warehouse
from keha_maksatus.config import Settings
from keha_maksatus.privacy import CustomerKeys, mask_column
from keha_maksatus.readers import ReadResult, UnreadableFile, read_export
from keha_maksatus.schemas import ExportKind, kind_of_file
from keha_maksatus.validation import ValidationResult, validate_export

INGESTED = "ingested"
QUARANTINED = "quarantined"
UNREADABLE = "unreadable"
DUPLICATE = "duplicate_content"

T = TypeVar("T")
R = TypeVar("R")


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
    """Ingest every file of the landing folder not yet in the ingest log.

    The next file is hashed, read and validated in a background thread while this one is
    stored: polars and DuckDB each leave part of the machine idle."""
    outcomes = []
    known = warehouse.known_hashes(con)
    recorded = warehouse.recorded_hashes(con)
    logged_before = set(known)

    def prepare(item: landing.LandingFile) -> PreparedFile:
        digest = recorded.get(landing.fingerprint(item)) or landing.content_hash(item.path)
        if digest in logged_before:
            return PreparedFile(item, digest)
        return prepare_file(item, digest, today)

    customers = CustomerKeys(con, key)
    try:
        for prepared in one_ahead(prepare, landing.list_landing_files(landing_dir)):
            outcome = _ingest_new(con, prepared, known, customers, settings)
            del prepared  # its rows are stored: free them before the file after next is read
            if outcome:
                outcomes.append(outcome)
    finally:
        customers.drop()
    return outcomes


def one_ahead(work: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """work(item) for each item in order, the next one computed in a background thread
    while the caller handles the current one (at most one result waiting)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-prepare") as pool:
        waiting = None
        try:
            for item in items:
                submitted = pool.submit(work, item)
                if waiting is not None:
                    yield waiting.result()
                waiting = submitted
            if waiting is not None:
                yield waiting.result()
        finally:
            if waiting is not None:
                waiting.cancel()


@dataclass
class PreparedFile:
    """A landing file read and validated, not yet stored; `result` is None when the file
    need not be read (content already logged) and `error` says why it could not be."""

    item: landing.LandingFile
    digest: str
    extract_date: dt.date | None = None
    kind: ExportKind | None = None
    read: ReadResult | None = None
    result: ValidationResult | None = None
    error: str | None = None


def prepare_file(item: landing.LandingFile, digest: str, today: dt.date | None = None) -> PreparedFile:
    """Read, parse, validate and mask one file; touches no database (thread-safe)."""
    kind = kind_of_file(item.name)
    extract_date = landing.extract_date(item.name, today)
    prepared = PreparedFile(item, digest, extract_date, kind)
    if kind is None:
        prepared.error = "file name starts with neither maksatuspaatokset_ nor asiakaspalaute_"
        return prepared
    try:
        read = read_export(item.path)
        result = validate_export(read.frame, kind, extract_date, spreadsheet=read.file_format == "xlsx")
    except UnreadableFile as error:
        prepared.error = str(error)
        return prepared
    if kind.name == "feedback":
        result.valid = mask_column(result.valid, "vapaa_teksti")
    prepared.read = replace(read, frame=None)  # the text rows are no longer needed
    prepared.result = result
    return prepared


def _ingest_new(con, prepared: PreparedFile, known: dict[str, str], customers: CustomerKeys, settings: Settings) -> FileOutcome | None:
    """Store one landing file unless its content is known; None when nothing is new."""
    item, digest = prepared.item, prepared.digest
    if digest in known:
        if known[digest] == item.name or _logged_name(con, item.name, digest):
            return None
        outcome = FileOutcome(item.name, DUPLICATE, reason=f"same content as {known[digest]}, not ingested twice")
        _log(con, item, digest, outcome, None, None)
        return outcome
    outcome = store_file(con, prepared, customers, settings)
    known[digest] = item.name
    return outcome


def _logged_name(con: duckdb.DuckDBPyConnection, name: str, digest: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM quality.ingest_log WHERE file_name = ? AND content_sha256 = ?", [name, digest]
        ).fetchall()[0][0]
    )


def store_file(con: duckdb.DuckDBPyConnection, prepared: PreparedFile, customers: CustomerKeys, settings: Settings) -> FileOutcome:
    """Log a prepared file, quarantine its rejections and merge its valid rows, in one transaction."""
    item, digest, kind, read, result = prepared.item, prepared.digest, prepared.kind, prepared.read, prepared.result
    extract_date = prepared.extract_date
    if prepared.error is not None:
        outcome = FileOutcome(item.name, UNREADABLE, kind.name if kind else None, reason=prepared.error)
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
    with warehouse.transaction(con):
        file_id = _log(con, item, digest, outcome, extract_date, read, result.extra_columns)
        _store_rejections(con, file_id, item.name, result.rejections)
        failpoints.reach("ingest")  # mid-transaction: nothing of this file may stay
        if outcome.status == INGESTED:
            _merge_valid_rows(con, kind.name, file_id, item.name, result.valid, customers)
        failpoints.reach("validate")  # rows merged into the current state, not committed
    return outcome


def _log(con, item, digest, outcome: FileOutcome, extract_date, read, extra_columns=None) -> int:
    file_id = warehouse.next_file_id(con)
    con.execute(
        """
        INSERT INTO quality.ingest_log VALUES
        (?, ?, ?, ?, ?, make_timestamp(?::BIGINT), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)
        """,
        [
            file_id, item.name, outcome.kind, digest, item.size, item.mtime_us, extract_date,
            read.file_format if read else None, read.encoding if read else None,
            read.separator if read else None, outcome.status, outcome.reason,
            outcome.rows_read, outcome.rows_valid, outcome.rows_rejected,
            ", ".join(extra_columns) if extra_columns else None,
        ],
    )
    return file_id


def _merge_valid_rows(con, kind: str, file_id: int, file_name: str, valid: pl.DataFrame, customers: CustomerKeys) -> None:
    """Valid rows into the current state; the customer id is replaced by the key of its
    pseudonym (core.customers) on the way."""
    if valid.is_empty():
        return
    # Arrow with string views: DuckDB reads them as they are, no conversion of the text.
    con.register("incoming_rows", valid.to_arrow(compat_level=pl.CompatLevel.newest()))
    try:
        if kind == "decisions":
            customers.add("incoming_rows", "asiakastunnus")
            con.execute(
                f"""
                CREATE OR REPLACE TEMP VIEW incoming AS
                SELECT i.* EXCLUDE (asiakastunnus), k.asiakas_id,
                       i.paatetty - i.saapunut AS kasittelyaika_pv,
                       greatest(0, i.paatetty - i.saapunut - i.taydennys_pv) AS netto_kasittelyaika_pv
                FROM incoming_rows i JOIN {customers.table} k ON k.customer_id = i.asiakastunnus
                """
            )
        else:
            con.execute("CREATE OR REPLACE TEMP VIEW incoming AS SELECT * FROM incoming_rows")
        warehouse.merge_rows(con, kind, file_id, file_name, rows="incoming", ids="incoming_rows")
        con.execute("DROP VIEW incoming")
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
        con.execute("INSERT INTO quality.quarantine BY NAME SELECT * FROM incoming_rejections")
    finally:
        con.unregister("incoming_rejections")
