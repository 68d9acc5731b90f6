"""Ingesting the landing folder into the working warehouse, one file at a time.

What the working state already knows is read first (plan_landing: one FileTask per
entry). Each new file (by content hash) is then read, validated, masked and its customer
ids pseudonymised (prepare_task, no database: run one file ahead in a background thread
here, or as a step of its own per file on workers, see staging), and stored in one
transaction (store_prepared, the one writer): a line in the ingest log, its rejections
to the quarantine, and its valid rows merged into the current state (core.*). A file that cannot be read is logged with
its reason; an entry that is not a regular file (link, folder, FIFO, ...) is logged as
skipped, never opened.

Every entry is logged once: a rerun adds nothing for a name whose content (or, for a
skipped entry, its reason) is already in the log, whatever its status was, so two runs
over the same folder give the same tables. Bytes already ingested come back under
another name as duplicate_content (logged once too); bytes that were unreadable or
quarantined whole were not ingested, so under another name they are read again.
Names and reasons are logged masked and printable (landing.log_text).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import duckdb
import polars as pl

from keha_maksatus import failpoints, warehouse
from keha_maksatus.history import versions
from keha_maksatus.config import Settings
from keha_maksatus.ingest import landing
from keha_maksatus.ingest.privacy import DEMO_KEY, KEY_ENV, CustomerKeys, mask_column, pseudonymise, sample_hashes
from keha_maksatus.ingest.readers import ReadResult, UnreadableFile, read_export
from keha_maksatus.ingest.schemas import ExportKind, kind_of_file
from keha_maksatus.ingest.validation import ValidationResult, validate_read

INGESTED = "ingested"
QUARANTINED = "quarantined"
UNREADABLE = "unreadable"
DUPLICATE = "duplicate_content"
SKIPPED = "skipped"

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
    """Ingest every entry of the landing folder not yet in the ingest log, in file-name order.

    The next file is prepared in a background thread while this one is stored: polars
    and DuckDB each leave part of the machine idle."""
    tasks = plan_landing(con, landing_dir, key)
    return store_prepared(con, one_ahead(lambda task: prepare_task(task, key, today), tasks), settings)


@dataclass(frozen=True)
class FileTask:
    """One landing entry to prepare, with what the working state knew of it when the run
    began, so that preparing it never opens the working file. `index` is its place in
    file-name order, the order of storing."""

    index: int
    item: landing.LandingFile
    recorded_digest: str | None  # its content hash, when the log knows its fingerprint
    seen_digests: frozenset[str]  # contents not read again under its name: ingested, or logged for this name
    demo_files: frozenset[str] | None  # with the demo key: the only contents it may pseudonymise

    @property
    def settled(self) -> bool:
        """Whether preparing it needs neither hashing nor reading (a skipped entry, or a
        known fingerprint of content already seen)."""
        return self.item.skip_reason is not None or self.recorded_digest in self.seen_digests


def plan_landing(con: duckdb.DuckDBPyConnection, landing_dir: Path, key: bytes) -> list[FileTask]:
    """Every entry of the landing folder in file-name order, with what the working state
    knows of it (the ingest log upgraded first)."""
    warehouse.upgrade_ingest_log(con)
    ingested = frozenset(warehouse.known_hashes(con))
    recorded = warehouse.recorded_hashes(con)
    logged_by_name: dict[bytes, set[str]] = {}
    for entry in warehouse.logged_entries(con):
        if entry[0] == "content":
            logged_by_name.setdefault(entry[1], set()).add(entry[2])
    # The demo key was granted for the bundled sample files alone; a file that lands
    # after that check is not stored under it.
    demo_files = frozenset(sample_hashes()) if key == DEMO_KEY else None
    return [
        FileTask(
            index,
            item,
            recorded.get(landing.fingerprint(item)) if item.skip_reason is None else None,
            ingested | logged_by_name.get(item.name_order, set()),
            demo_files,
        )
        for index, item in enumerate(landing.scan_landing(landing_dir))
    ]


def prepare_task(task: FileTask, key: bytes, today: dt.date | None = None) -> PreparedFile:
    """Hash the entry and, when its content is new, prepare it (prepare_file); touches no database."""
    item = task.item
    if item.skip_reason is not None:
        return PreparedFile(item, None)
    try:
        digest = task.recorded_digest or landing.content_hash(item.path)
    except OSError as error:
        return PreparedFile(item, None, error=_cannot_open(error))
    if digest in task.seen_digests:
        return PreparedFile(item, digest)  # nothing new to read
    if task.demo_files is not None and kind_of_file(item.name) and digest not in task.demo_files:
        return PreparedFile(item, digest, error=f"not a bundled sample file: the demo key serves only those; set {KEY_ENV}")
    return prepare_file(item, digest, key, today)


def store_prepared(con: duckdb.DuckDBPyConnection, prepared_files: Iterable[PreparedFile], settings: Settings) -> list[FileOutcome]:
    """Log and store prepared entries in the order given (file-name order), one
    transaction each; entries the log already holds add nothing."""
    outcomes = []
    known = warehouse.known_hashes(con)
    logged = warehouse.logged_entries(con)
    customers = CustomerKeys(con)
    try:
        for prepared in prepared_files:
            outcome = _ingest_new(con, prepared, known, logged, customers, settings)
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
    need not be read (content already logged, or not a regular file) and `error` says why
    it could not be. `digest` is None for an entry not opened."""

    item: landing.LandingFile
    digest: str | None
    extract_date: dt.date | None = None
    kind: ExportKind | None = None
    read: ReadResult | None = None
    result: ValidationResult | None = None
    error: str | None = None


def prepare_file(item: landing.LandingFile, digest: str, key: bytes, today: dt.date | None = None) -> PreparedFile:
    """Read, parse, validate, mask and pseudonymise one file; touches no warehouse (thread-safe)."""
    kind = kind_of_file(item.name)
    extract_date = landing.extract_date(item.name, today)
    prepared = PreparedFile(item, digest, extract_date, kind)
    if kind is None:
        prepared.error = "file name starts with neither maksatuspaatokset_ nor asiakaspalaute_"
        return prepared
    try:
        read = read_export(item.path)
        result = validate_read(read, kind, extract_date)
    except UnreadableFile as error:
        prepared.error = str(error)
        return prepared
    except OSError as error:  # removed or made unreadable since it was hashed
        prepared.error = _cannot_open(error)
        return prepared
    if kind.name == "feedback":
        result.valid = mask_column(result.valid, "vapaa_teksti")
    else:  # no clear customer id goes further than this
        result.valid = pseudonymise(result.valid, "asiakastunnus", key)
    prepared.read = replace(read, frame=None)  # the text rows are no longer needed
    prepared.result = result
    return prepared


def _cannot_open(error: OSError) -> str:
    # strerror only: str(error) would quote the path, the real name unmasked.
    return f"cannot be opened: {error.strerror or type(error).__name__}"


def log_key(prepared: PreparedFile) -> tuple:
    """What identifies this entry in the ingest log (see warehouse.logged_entries)."""
    item = prepared.item
    if item.skip_reason is not None:
        return ("skipped", item.name_order, item.skip_reason)
    if prepared.digest is None:
        return ("unopened", *landing.fingerprint(item))
    return ("content", item.name_order, prepared.digest)


def _ingest_new(
    con, prepared: PreparedFile, known: dict[str, str], logged: set[tuple], customers: CustomerKeys, settings: Settings
) -> FileOutcome | None:
    """Log (and store) one landing entry unless the log holds it already; None when nothing is new."""
    item, digest = prepared.item, prepared.digest
    key = log_key(prepared)
    if key in logged:
        return None
    if item.skip_reason is not None:
        outcome = FileOutcome(item.logged_name, SKIPPED, reason=item.skip_reason)
        with warehouse.transaction(con):
            _log(con, item, None, outcome, None, None)
    elif digest in known:
        outcome = FileOutcome(item.logged_name, DUPLICATE, reason=f"same content as {known[digest]}, not ingested twice")
        with warehouse.transaction(con):
            _log(con, item, digest, outcome, None, None)
    else:
        outcome = store_file(con, prepared, customers, settings)
        if outcome.status == INGESTED:
            known[digest] = item.logged_name
    logged.add(key)
    return outcome


def store_file(con: duckdb.DuckDBPyConnection, prepared: PreparedFile, customers: CustomerKeys, settings: Settings) -> FileOutcome:
    """Log a prepared file, quarantine its rejections and merge its valid rows, in one transaction."""
    item, digest, kind, read, result = prepared.item, prepared.digest, prepared.kind, prepared.read, prepared.result
    extract_date = prepared.extract_date
    if prepared.error is not None:
        outcome = FileOutcome(item.logged_name, UNREADABLE, kind.name if kind else None, reason=landing.log_text(prepared.error))
        with warehouse.transaction(con):
            _log(con, item, digest, outcome, extract_date, None)
        return outcome

    outcome = FileOutcome(
        item.logged_name,
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
        _store_rejections(con, file_id, item.logged_name, result.rejections)
        failpoints.reach("ingest")  # mid-transaction: nothing of this file may stay
        if outcome.status == INGESTED:
            _merge_valid_rows(con, kind.name, file_id, item.logged_name, result.valid, customers)
        failpoints.reach("validate")  # rows merged into the current state, not committed
    return outcome


def _log(con, item: landing.LandingFile, digest: str | None, outcome: FileOutcome, extract_date, read, extra_columns=None) -> int:
    """One line in the ingest log; outcome's name and reason are already masked. Nothing
    of an entry that is not a regular file is kept but its name."""
    file_id = warehouse.next_file_id(con)
    regular = item.skip_reason is None
    con.execute(
        """
        INSERT INTO quality.ingest_log (
            file_id, file_name, name_order, kind, content_sha256, size_bytes, modified_at, changed_at, inode,
            extract_date, file_format, encoding, separator, status, reason, rows_read, rows_valid, rows_rejected,
            extra_columns, ingested_at
        ) VALUES (?, ?, ?, ?, ?, ?, make_timestamp(?::BIGINT), make_timestamp_ns(?::BIGINT), ?,
                  ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)
        """,
        [
            file_id, outcome.file_name, item.name_order, outcome.kind, digest,
            item.size if regular else None, item.mtime_us if regular else None,
            item.ctime_ns if regular else None, item.inode if regular else None,
            extract_date, read.file_format if read else None, read.encoding if read else None,
            read.separator if read else None, outcome.status, outcome.reason,
            outcome.rows_read, outcome.rows_valid, outcome.rows_rejected,
            landing.log_text(", ".join(extra_columns)) if extra_columns else None,
        ],
    )
    return file_id


def _merge_valid_rows(con, kind: str, file_id: int, file_name: str, valid: pl.DataFrame, customers: CustomerKeys) -> None:
    """Valid rows into the current state; the customer's pseudonym is replaced by its key
    (core.customers) on the way."""
    if valid.is_empty():
        return
    # Arrow with string views: DuckDB reads them as they are, no conversion of the text.
    con.register("incoming_rows", valid.to_arrow(compat_level=pl.CompatLevel.newest()))
    try:
        if kind == "decisions":
            customers.add("incoming_rows", "asiakas_hash")
            con.execute(
                f"""
                CREATE OR REPLACE TEMP VIEW incoming AS
                SELECT i.* EXCLUDE (asiakas_hash), k.asiakas_id,
                       i.paatetty - i.saapunut AS kasittelyaika_pv,
                       greatest(0, i.paatetty - i.saapunut - i.taydennys_pv) AS netto_kasittelyaika_pv
                FROM incoming_rows i JOIN {customers.table} k ON k.asiakas_hash = i.asiakas_hash
                """
            )
        else:
            con.execute("CREATE OR REPLACE TEMP VIEW incoming AS SELECT * FROM incoming_rows")
        versions.merge_rows(con, kind, file_id, file_name, rows="incoming")
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
