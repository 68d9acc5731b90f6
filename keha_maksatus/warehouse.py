"""The pipeline's working DuckDB file: its tables and descriptions, and the current
state of every application and response.

The working file (`warehouse.duckdb` in the warehouse's own state folder, see state.py)
holds exactly what is published: the ingest log and quarantine (`quality.*`), the current
state (`core.*`, merged file by file as each file is ingested), the KPI tables (`kpi.*`)
and `meta.*`. Publishing copies it, so analysts never open it (outputs/publish.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from keha_maksatus.history import versions

WORKING_FILE = "warehouse.duckdb"
# Files of the earlier two-file layout; removed on connect (a full run rebuilds them).
_LEGACY_FILES = ("state.duckdb", "state.duckdb.wal", "release.duckdb", "release.duckdb.wal")

DDL = """
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS kpi;
CREATE SCHEMA IF NOT EXISTS quality;
CREATE SCHEMA IF NOT EXISTS meta;

CREATE TABLE IF NOT EXISTS quality.ingest_log (
    file_id        INTEGER PRIMARY KEY,
    file_name      VARCHAR NOT NULL,
    name_order     BLOB,
    kind           VARCHAR,
    content_sha256 VARCHAR,
    size_bytes     BIGINT,
    modified_at    TIMESTAMP,
    changed_at     TIMESTAMP_NS,
    inode          UBIGINT,
    extract_date   DATE,
    file_format    VARCHAR,
    encoding       VARCHAR,
    separator      VARCHAR,
    status         VARCHAR NOT NULL,
    reason         VARCHAR,
    rows_read      BIGINT NOT NULL DEFAULT 0,
    rows_valid     BIGINT NOT NULL DEFAULT 0,
    rows_rejected  BIGINT NOT NULL DEFAULT 0,
    extra_columns  VARCHAR,
    ingested_at    TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS quality.quarantine (
    file_id     INTEGER NOT NULL,
    file_name   VARCHAR NOT NULL,
    line        BIGINT NOT NULL,
    column_name VARCHAR NOT NULL,
    rule        VARCHAR NOT NULL,
    raw_value   VARCHAR
);

-- Unique ids and random pseudonyms barely compress; their compression is chosen here,
-- as DuckDB's own analysis of them costs more than the rest of a row's write.
CREATE TABLE IF NOT EXISTS core.customers (
    asiakas_id INTEGER NOT NULL, asiakas_hash VARCHAR NOT NULL USING COMPRESSION uncompressed
);

CREATE TABLE IF NOT EXISTS core.decisions (
    hakemus_id VARCHAR NOT NULL USING COMPRESSION zstd, tukimuoto VARCHAR NOT NULL, yksikko VARCHAR NOT NULL,
    saapunut DATE NOT NULL, paatetty DATE, paatos VARCHAR, haettu_eur DOUBLE, maksettu_eur DOUBLE,
    asiakas_id INTEGER NOT NULL, taydennys_pv BIGINT NOT NULL,
    kasittelyaika_pv BIGINT, netto_kasittelyaika_pv BIGINT,
    file_name VARCHAR NOT NULL, file_id INTEGER NOT NULL, line BIGINT NOT NULL,
    valid_from_file_id INTEGER, valid_from_line BIGINT
);

CREATE TABLE IF NOT EXISTS core.feedback (
    vastaus_id VARCHAR NOT NULL USING COMPRESSION zstd, kysely VARCHAR NOT NULL, palvelu VARCHAR NOT NULL,
    vastattu TIMESTAMP NOT NULL, arvosana BIGINT, tukimuoto VARCHAR, yksikko VARCHAR,
    hakemus_id VARCHAR, kieli VARCHAR, vapaa_teksti VARCHAR,
    file_name VARCHAR NOT NULL, file_id INTEGER NOT NULL, line BIGINT NOT NULL,
    valid_from_file_id INTEGER, valid_from_line BIGINT
);
"""

# Descriptions for every published table and its columns (COMMENT ON).
TABLE_COMMENTS = {
    "quality.ingest_log": "One row per file seen in the landing folder: how it was read and what became of its rows. rows_read = rows_valid + rows_rejected.",
    "quality.quarantine": "Every rejected cell: source file, line (1 = header), column, rule and raw value (personal data masked). A rejected row changes nothing.",
    "core.decisions": "Payment applications in their latest valid state (a later extract replaces an earlier row). Customers are known only by asiakas_id (see core.customers).",
    "core.customers": "One row per customer ever met: a key and the pseudonym, HMAC-SHA256 of the identity code or business ID with a secret key. No identity code is stored.",
    "core.feedback": "Survey responses in their latest valid state. Free text has personal data masked.",
}
COLUMN_COMMENTS = {
    "quality.ingest_log": {
        "file_id": "Sequence number of the file in the ingest log",
        "file_name": "Name of the entry in the landing folder: printable (control characters and bytes that are not UTF-8 as backslash escapes such as \\n, \\xff), personal data masked",
        "name_order": "The name's bytes (personal data masked): extracts apply in this order, a later one winning",
        "kind": "Export kind told by the name: decisions (maksatuspaatokset_) or feedback (asiakaspalaute_)",
        "content_sha256": "SHA-256 of the file's bytes; bytes already ingested are not ingested again (null: not opened)",
        "size_bytes": "File size in bytes",
        "modified_at": "The file's modification time (UTC)",
        "changed_at": "The inode's change time (ctime, UTC), which no tool can put back: a file with the same name, size, modification time, change time and inode is taken as unchanged and not hashed again",
        "inode": "The file's inode number (a file replaced under the same name gets a new one)",
        "extract_date": "Extract date from the file name (else the day it was ingested)",
        "file_format": "csv, xlsx or parquet",
        "encoding": "Detected text encoding (CSV only)",
        "separator": "Detected field separator (CSV only)",
        "status": "ingested, quarantined (whole file held back), unreadable, duplicate_content, skipped (not a regular file: link, folder, FIFO, ...)",
        "reason": "Why a file was quarantined, unreadable or skipped (personal data masked)",
        "rows_read": "Data rows read from the file",
        "rows_valid": "Rows that passed every rule",
        "rows_rejected": "Rows with at least one failed rule (see quality.quarantine)",
        "extra_columns": "Columns outside the contract, kept out of the KPIs (personal data masked)",
        "ingested_at": "When the file was ingested (UTC)",
    },
    "quality.quarantine": {
        "file_id": "File in quality.ingest_log",
        "file_name": "Source file name",
        "line": "Line number in the source file, the header being line 1",
        "column_name": "Column whose value broke the rule",
        "rule": "The rule that failed",
        "raw_value": "The value as it came (customer ids and personal data in free text masked)",
    },
    "core.decisions": {
        "hakemus_id": "Payment application id",
        "tukimuoto": "Instrument (palkkatuki, starttiraha, kulukorvaus, rekrytointituki, esr, eakr, muu, or an unlisted code)",
        "yksikko": "ELY Centre or TE Office code",
        "saapunut": "Date the application was received",
        "paatetty": "Date of the payment decision; null while pending",
        "paatos": "Outcome: myönteinen, kielteinen, osittain myönteinen, raukeaa",
        "haettu_eur": "Amount applied for, EUR",
        "maksettu_eur": "Amount paid, EUR",
        "asiakas_id": "The customer's key in core.customers (the same customer has the same key in every extract)",
        "taydennys_pv": "Days waiting for the customer's supplement",
        "kasittelyaika_pv": "paatetty - saapunut in calendar days",
        "netto_kasittelyaika_pv": "max(0, kasittelyaika_pv - taydennys_pv)",
        "file_name": "Extract the row comes from",
        "file_id": "That extract in quality.ingest_log",
        "line": "Line in that extract",
    },
    "core.customers": {
        "asiakas_id": "Customer key, used in core.decisions",
        "asiakas_hash": "Customer pseudonym: HMAC-SHA256 (hex) of the identity code or business ID, upper-cased and trimmed",
    },
    "core.feedback": {
        "vastaus_id": "Survey response id",
        "kysely": "Survey type: kohtaaminen, jalkikysely, kampanja",
        "palvelu": "Service the response is about; maksatus = payment services",
        "vastattu": "When the response was given",
        "arvosana": "Score 1-5; null = no score (EOS or empty)",
        "tukimuoto": "Instrument, when linked",
        "yksikko": "Office, when linked",
        "hakemus_id": "Payment application, when linked",
        "kieli": "Language: fi, sv, en",
        "vapaa_teksti": "Free-text comment with identity codes, business IDs, e-mails and phone numbers masked",
        "file_name": "Extract the row comes from",
        "file_id": "That extract in quality.ingest_log",
        "line": "Line in that extract",
    },
}


TABLE_COMMENTS.update(versions.TABLE_COMMENTS)
COLUMN_COMMENTS.update(versions.column_comments(COLUMN_COMMENTS))


def connect(work_dir: Path) -> duckdb.DuckDBPyConnection:
    """A connection to the working file (created as needed). The caller closes it."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    for name in _LEGACY_FILES:
        (work_dir / name).unlink(missing_ok=True)
    con = duckdb.connect(str(work_dir / WORKING_FILE))
    try:
        con.execute(DDL)
        versions.upgrade(con)
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def open_working(work_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(work_dir)
    try:
        yield con
    finally:
        con.close()


def working_path(work_dir: Path) -> Path:
    return Path(work_dir) / WORKING_FILE


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def upgrade_ingest_log(con: duckdb.DuckDBPyConnection) -> None:
    """Give an ingest log of an earlier version the columns it lacks (name_order from the
    names it logged then, unmasked); a no-op on a current one."""
    columns = dict(
        con.execute(
            "SELECT column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'quality' AND table_name = 'ingest_log'"
        ).fetchall()
    )
    if "name_order" in columns and columns.get("content_sha256") == "YES":
        return
    con.execute("ALTER TABLE quality.ingest_log ALTER COLUMN content_sha256 DROP NOT NULL")
    for column, data_type in (("name_order", "BLOB"), ("changed_at", "TIMESTAMP_NS"), ("inode", "UBIGINT")):
        con.execute(f"ALTER TABLE quality.ingest_log ADD COLUMN IF NOT EXISTS {column} {data_type}")
    con.execute("UPDATE quality.ingest_log SET name_order = encode(file_name) WHERE name_order IS NULL")


def known_hashes(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """content_sha256 -> logged name of every file ingested (status ingested, the first
    one). Bytes that were unreadable or quarantined whole were not ingested: they are
    read again under another name."""
    return dict(
        con.execute(
            "SELECT content_sha256, arg_min(file_name, file_id) FROM quality.ingest_log WHERE status = 'ingested' GROUP BY 1"
        ).fetchall()
    )


def recorded_hashes(con: duckdb.DuckDBPyConnection) -> dict[tuple[bytes, int, int, int, int], str]:
    """Fingerprint (name_order, size, modification time in microseconds, change time in
    nanoseconds, inode) -> content_sha256 of every hashed file in the ingest log (see
    landing.fingerprint)."""
    rows = con.execute(
        """
        SELECT name_order, size_bytes, epoch_us(modified_at), epoch_ns(changed_at), inode, content_sha256
        FROM quality.ingest_log
        WHERE content_sha256 IS NOT NULL AND modified_at IS NOT NULL AND changed_at IS NOT NULL AND inode IS NOT NULL
        """
    ).fetchall()
    return {tuple(row[:5]): row[5] for row in rows}


def logged_entries(con: duckdb.DuckDBPyConnection) -> set[tuple]:
    """What the ingest log already holds, so that a rerun logs nothing twice:
    ("content", name_order, content_sha256) of each hashed file, ("skipped", name_order,
    reason) of each entry that is not a regular file and ("unopened", *fingerprint) of
    each file that could not be opened (a change of its permissions changes the
    fingerprint: it is tried again)."""
    rows = con.execute(
        """
        SELECT status, name_order, content_sha256, reason, size_bytes, epoch_us(modified_at), epoch_ns(changed_at), inode
        FROM quality.ingest_log
        """
    ).fetchall()
    entries = set()
    for status, order, digest, reason, size, modified, changed, inode in rows:
        if digest is not None:
            entries.add(("content", order, digest))
        elif status == "skipped":
            entries.add(("skipped", order, reason))
        else:
            entries.add(("unopened", order, size, modified, changed, inode))
    return entries


def next_file_id(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT coalesce(max(file_id), 0) + 1 FROM quality.ingest_log").fetchall()[0][0]


def add_comments(con: duckdb.DuckDBPyConnection, tables: dict[str, str], columns: dict[str, dict[str, str]]) -> None:
    """COMMENT ON the given tables and columns (those that exist), only where the comment
    differs (a table made anew each night has none). Call it inside a transaction: each
    statement on its own would be a commit of its own."""
    table_comments = dict(con.execute(
        "SELECT schema_name || '.' || table_name, comment FROM duckdb_tables() WHERE database_name = current_database() "
        "UNION ALL SELECT schema_name || '.' || view_name, comment FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal"
    ).fetchall())
    column_comments = {
        (f"{s}.{t}", c): comment
        for s, t, c, comment in con.execute(
            "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() WHERE database_name = current_database()"
        ).fetchall()
    }
    for table, text in tables.items():
        if table in table_comments and table_comments[table] != text:
            con.execute(f"COMMENT ON TABLE {table} IS {_sql_string(text)}")
    for table, comments in columns.items():
        for column, text in comments.items():
            if (table, column) in column_comments and column_comments[(table, column)] != text:
                con.execute(f"COMMENT ON COLUMN {table}.{column} IS {_sql_string(text)}")


def _sql_string(text: str) -> str:
    # COMMENT ON takes no parameters; the texts are our own constants.
    return "'" + text.replace("'", "''") + "'"
