"""Pseudonymisation of customer ids and masking of personal data in free text."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import duckdb
import polars as pl

KEY_ENV = "KEHA_PSEUDONYM_KEY"
# Used only when the landing folder is the bundled sample data (see resolve_key).
DEMO_KEY = b"keha-maksatus-demo-key-for-bundled-sample-data-only"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"

# Personal identity codes, business IDs, e-mail addresses and phone numbers.
MASKS = (
    (r"(?i)\b\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]\b", "[hetu]"),
    (r"\b\d{7}-\d\b", "[y-tunnus]"),
    (r"(?i)\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b", "[email]"),
    (r"(\+\d{1,3}[ -]?|\b0)\d{1,3}([ -]?\d){5,9}\b", "[puhelin]"),
)


class MissingKeyError(RuntimeError):
    pass


def resolve_key(landing_dir: Path) -> tuple[bytes, bool]:
    """The HMAC key from the environment; the demo key only for the bundled sample.

    Returns (key, is_demo). Raises MissingKeyError for any other landing folder
    without a key, before anything is written.
    """
    key = os.environ.get(KEY_ENV, "")
    if key:
        return key.encode("utf-8"), False
    if Path(landing_dir).resolve() == SAMPLE_DIR:
        return DEMO_KEY, True  # the caller warns
    raise MissingKeyError(
        f"{KEY_ENV} is not set. Customer ids are pseudonymised with a secret key from the "
        f"environment; set {KEY_ENV} before ingesting {landing_dir} (the demo key serves only "
        f"the bundled sample in {SAMPLE_DIR})."
    )


def pseudonym(key: bytes, customer_id: str) -> str:
    """HMAC-SHA256 of the normalised id, hex."""
    normalised = customer_id.strip().upper().encode("utf-8")
    return hmac.new(key, normalised, hashlib.sha256).hexdigest()


def pseudonym_sql(column: str, key: bytes) -> tuple[str, list[bytes]]:
    """The same HMAC-SHA256 as a DuckDB expression over `column` (a fixed column name),
    with the key's padded blocks as parameters: H((K ^ opad) || H((K ^ ipad) || m)).
    DuckDB computes it in parallel, far faster than a Python loop."""
    block = hashlib.sha256(key).digest() if len(key) > 64 else key
    block = block.ljust(64, b"\x00")
    inner_pad = bytes(b ^ 0x36 for b in block)
    outer_pad = bytes(b ^ 0x5C for b in block)
    expression = f"sha256(?::BLOB || unhex(sha256(?::BLOB || encode(upper(trim({column}))))))"
    return expression, [outer_pad, inner_pad]


class CustomerKeys:
    """Customer ids to their keys in core.customers, during one run. Each id met is
    hashed (HMAC-SHA256) once per run; a pseudonym not yet in core.customers gets the
    next key there. The clear ids stay in a temporary table (memory only, dropped at
    the end); the warehouse holds only keys and pseudonyms."""

    def __init__(self, con: duckdb.DuckDBPyConnection, key: bytes):
        self.con = con
        self.table = f"customer_keys_{os.getpid()}_{id(self)}"
        self._expression, self._params = pseudonym_sql("customer_id", key)
        self._keys_before_run = self._last_key()
        con.execute(f"CREATE TEMP TABLE {self.table} (customer_id VARCHAR NOT NULL, asiakas_id INTEGER NOT NULL)")

    def _last_key(self) -> int:
        return self.con.execute("SELECT coalesce(max(asiakas_id), 0) FROM core.customers").fetchall()[0][0]

    def add(self, relation: str, column: str) -> None:
        """Keys for the ids of relation.column (fixed names) not met before in this run."""
        hashed = f"{self.table}_hashed"
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {hashed} AS
            SELECT customer_id, {self._expression} AS asiakas_hash FROM (
                SELECT DISTINCT {column} AS customer_id FROM {relation}
                WHERE {column} NOT IN (SELECT customer_id FROM {self.table})
            )
            """,
            self._params,
        )
        last = self._last_key()
        # Only customers of earlier runs can already be there: this run's are in self.table.
        earlier = "SELECT asiakas_id, asiakas_hash FROM core.customers WHERE asiakas_id <= ?"
        self.con.execute(
            f"""
            INSERT INTO core.customers
            SELECT ? + row_number() OVER (ORDER BY h.asiakas_hash), h.asiakas_hash
            FROM {hashed} h ANTI JOIN ({earlier}) c USING (asiakas_hash)
            """,
            [last, self._keys_before_run],
        )
        self.con.execute(
            f"""
            INSERT INTO {self.table}
            SELECT h.customer_id, c.asiakas_id FROM {hashed} h
            JOIN (SELECT asiakas_id, asiakas_hash FROM core.customers WHERE asiakas_id <= ? OR asiakas_id > ?) c USING (asiakas_hash)
            """,
            [self._keys_before_run, last],
        )
        self.con.execute(f"DROP TABLE {hashed}")

    def drop(self) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {self.table}")


def mask_free_text(text: pl.Expr) -> pl.Expr:
    """Free text with identity codes, business IDs, e-mails and phone numbers masked."""
    for pattern, replacement in MASKS:
        text = text.str.replace_all(pattern, replacement)
    return text


def mask_column(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """mask_free_text on one column, run only on the cells that can hold personal data
    (every pattern needs a digit or an @): most free text has neither."""
    positions = frame.select(pl.col(column).str.contains(r"[0-9@]").fill_null(False)).to_series().arg_true()
    if positions.is_empty():
        return frame
    masked = frame.select(pl.col(column).gather(positions)).select(mask_free_text(pl.col(column))).to_series()
    return frame.with_columns(frame[column].scatter(positions, masked))


def mask_string(value: str) -> str:
    """The same masking for one Python string."""
    return pl.select(mask_free_text(pl.lit(value, dtype=pl.String))).item()
