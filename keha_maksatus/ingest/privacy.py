"""Pseudonymisation of customer ids and masking of personal data in free text."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import duckdb
import polars as pl

KEY_ENV = "KEHA_PSEUDONYM_KEY"
# Used only when every export file of the landing folder is a bundled sample file (see resolve_key).
DEMO_KEY = b"keha-maksatus-demo-key-for-bundled-sample-data-only"
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
# The SHA-256 of each bundled sample file, as `sha256sum` writes them (`make sample` rewrites it).
SAMPLE_MANIFEST = SAMPLE_DIR.parent / "sample.sha256"

# Country codes of the IBAN registry and each country's IBAN length.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def _iban_pattern() -> str:
    """An IBAN of a registry country at that country's length, written whole or in
    groups of four separated by single spaces (`FI21 1234 5600 0007 85`)."""
    by_length: dict[int, list[str]] = {}
    for country, length in sorted(IBAN_LENGTHS.items()):
        by_length.setdefault(length, []).append(country)
    forms = []
    for length, countries in sorted(by_length.items()):
        groups, rest = divmod(length - 4, 4)
        bban = f"(?: ?[0-9A-Za-z]{{4}}){{{groups}}}" + (f" ?[0-9A-Za-z]{{{rest}}}" if rest else "")
        forms.append(f"(?i:{'|'.join(countries)})[0-9]{{2}}{bban}")
    return "(?:" + "|".join(forms) + ")"


# A phone number may not follow a letter, digit, `_`, `/` or `-`, nor a dot after a
# digit (ids such as `H0123456` or `2022-0123456`, and the month of `01.03.2022 12:00`,
# begin no phone number); that character is kept.
_PHONE_LEFT = r"(^\.?|[^0-9A-Za-z_/.\-]|[^0-9]\.)"
# After the area code (`040`, `(09)`) come the digits in groups: glued, after a space
# (2 or more digits) or after a dash, slash or dot (3 or more), at least 4 digits, or 5
# in one group. A slash or dot right after the area code takes exactly 3 digits and
# another group. So dates (`01.03.2022`, `01/2022 12`), times (`09.30-10.30`) and
# amounts (`2 010 000.00`; `1 234,50` after a phone number) are no phone numbers.
_GROUP = r"(?: [0-9]{2,}|[-/.][0-9]{3,})"
# (Grouped forms first: the regex takes the first alternative that matches, not the longest.)
_SUBSCRIBER = (
    f"(?: ?(?:[0-9]{{2,}}{_GROUP}+|[0-9]{{5,}})"
    f"| ?- ?(?:[0-9]{{3,}}{_GROUP}+|[0-9]{{5,}})"
    f"| ?[/.] ?[0-9]{{3}}{_GROUP}+)"
)
# After the country code (`+358`, `00358`, `+46`): an optional `(0)`, then 6 or more digits.
_INTERNATIONAL = r"[1-9][0-9]{0,2}[ .-]?(?:\(0\) ?)?[1-9](?:[ ./-]?[0-9]){5,}"
# `+` after a digit is an identity code's century sign (`010180+1232`), no phone number.
INTERNATIONAL_PHONE_PATTERN = f"(?:{_PHONE_LEFT}00|(^|[^0-9])\\+){_INTERNATIONAL}"
_AREA = "0[1-9][0-9]{0,3}"  # a domestic area code (`040`, `09`)
_AREA_BEGINS = f"(?:{_PHONE_LEFT}{_AREA}|\\({_AREA}\\))"  # not after an id's characters, or in parentheses
DOMESTIC_PHONE_PATTERN = f"{_AREA_BEGINS}{_SUBSCRIBER}"

# A phone number glued after a letter, `_`, `/` or `-` (`koti-040 123 4567`,
# `puh0401234567`) is masked when it cannot be an id's digits: grouped by a space or a
# dash after the area code (a first group of 3 or more digits: not a date's `-03-01 00`),
# or a whole mobile number (04x or 050 and 7 digits). The left character, and the one
# after a mobile number, are kept.
_GLUED_LEFT = r"[A-Za-z_/\-]"
_GROUPED_NUMBER = _AREA + r"(?:[ -][0-9]{5,}|[ -][0-9]{3,4}(?: [0-9]{2,})+)"
_MOBILE = r"0(?:4[0-9]|50)[0-9]{7}"
GLUED_PHONE_PATTERN = f"({_GLUED_LEFT})(?:{_GROUPED_NUMBER}|{_MOBILE}([^0-9]|$))"

_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_IBAN = _iban_pattern()
_HETU = r"(?:0[1-9]|[1-9][0-9])[0-9]{4}[-+A-FU-Ya-fu-y][0-9]{3}[0-9A-Ya-y]"  # no day is 00
_YTUNNUS = r"[0-9]{7}-[0-9]"

# E-mail addresses, IBANs, phone numbers in international form, personal identity
# codes (any century sign, glued to anything; no day is 00), business IDs (also glued)
# and domestic phone numbers, masked in this order: a code inside an e-mail address goes
# with the address, an IBAN's digits are not read as anything else, an international
# number's digits (`0035840-1234567`) not as an identity code or business ID, and an
# identity code's or business ID's digits (`010190-123A`) not as a domestic number.
# Every pattern needs a digit or an `@` (mask_column relies on it).
MASKS = (
    (_EMAIL, "[email]"),
    (_IBAN, "[iban]"),
    (INTERNATIONAL_PHONE_PATTERN, "${1}${2}[puhelin]"),
    (_HETU, "[hetu]"),
    (_YTUNNUS, "[y-tunnus]"),
    (DOMESTIC_PHONE_PATTERN, "${1}[puhelin]"),
    (GLUED_PHONE_PATTERN, "${1}[puhelin]${2}"),
)
# Any of them, for telling whether a text holds personal data at all.
PERSONAL_DATA_PATTERN = "|".join(f"(?:{pattern})" for pattern, _ in MASKS)
# The subscriber part without the form of a plain digit run (`0123456` is an id).
_CODE_SUBSCRIBER = (
    f"(?: ?[0-9]{{2,}}{_GROUP}+| [0-9]{{5,}}"
    f"| ?- ?(?:[0-9]{{3,}}{_GROUP}+|[0-9]{{5,}})"
    f"| ?[/.] ?[0-9]{{3}}{_GROUP}+)"
)
# Personal data in a code or id column, where digits are the rule: an identity code or
# business ID not glued to other digits (`20220101-0001` is a date and a number, not a
# code), a phone number only with `+`, `00358`, `00` and a separated country code,
# grouped, or as 8 to 11 digits after an area code `02`-`09` not glued to a letter
# (zero-padded ids such as `0012345678`, `0123456` and `H02000000` are no phone
# numbers), and any e-mail or IBAN.
CODE_PERSONAL_DATA_PATTERN = "|".join(
    f"(?:{pattern})"
    for pattern in (
        _EMAIL,
        _IBAN,
        f"(?:^|[^0-9])\\+{_INTERNATIONAL}",
        r"(?:^|[^0-9])00(?:358[ .-]?|[1-9][0-9]{0,2}[ .-])(?:\(0\) ?)?[1-9](?:[ ./-]?[0-9]){5,}",
        f"(?:^|[^0-9]){_HETU}",
        f"(?:^|[^0-9]){_YTUNNUS}(?:$|[^0-9])",
        f"{_AREA_BEGINS}{_CODE_SUBSCRIBER}",
        f"{_GLUED_LEFT}{_GROUPED_NUMBER}",
        r"(?:^|[^0-9A-Za-z])0[2-9][0-9]{6,9}(?:$|[^0-9])",
    )
)


class MissingKeyError(RuntimeError):
    pass


def resolve_key(landing_dir: Path) -> tuple[bytes, bool]:
    """The HMAC key from the environment; the demo key only for the bundled sample files.

    Returns (key, is_demo). Without a key in the environment, every export file of the
    landing folder (a regular file whose name has an export prefix) must be one of the
    bundled sample files by content, wherever the folder is; otherwise MissingKeyError
    names the first other file, before anything is written."""
    key = os.environ.get(KEY_ENV, "")
    if key:
        return key.encode("utf-8"), False
    from keha_maksatus.ingest import landing  # landing masks names with this module
    from keha_maksatus.ingest.schemas import kind_of_file

    bundled = sample_hashes()
    exports = [item for item in landing.list_landing_files(landing_dir) if kind_of_file(item.name)]
    for item in exports:
        try:
            known = landing.content_hash(item.path) in bundled
        except OSError:
            known = False
        if not known:
            raise MissingKeyError(
                f"{KEY_ENV} is not set, and {item.logged_name} in {landing_dir} is not one of the bundled sample "
                f"files: customer ids are pseudonymised with a secret key from the environment; set {KEY_ENV} "
                f"before ingesting it (the demo key serves only the unchanged sample files of {SAMPLE_DIR})."
            )
    if not exports:
        raise MissingKeyError(
            f"{KEY_ENV} is not set and {landing_dir} holds no bundled sample file: set {KEY_ENV} (the demo key "
            f"serves only the unchanged sample files of {SAMPLE_DIR})."
        )
    return DEMO_KEY, True  # the caller warns


def sample_hashes(manifest: Path = SAMPLE_MANIFEST) -> set[str]:
    """The SHA-256 digests listed in the sample manifest (none when it is missing)."""
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return set()
    return {line.split()[0].lower() for line in lines if line.strip() and not line.startswith("#")}


def write_sample_manifest(sample_dir: Path = SAMPLE_DIR, manifest: Path = SAMPLE_MANIFEST) -> Path:
    """List the SHA-256 of every file in the sample folder (`sha256sum -c` reads it)."""
    from keha_maksatus.ingest import landing

    files = sorted(p for p in Path(sample_dir).iterdir() if p.is_file() and not p.is_symlink())
    manifest.write_text("".join(f"{landing.content_hash(p)}  {p.name}\n" for p in files), encoding="utf-8")
    return manifest


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


def pseudonymise(frame: pl.DataFrame, column: str, key: bytes, into: str = "asiakas_hash") -> pl.DataFrame:
    """The frame with `column`'s customer ids replaced, in place, by their pseudonyms
    (HMAC-SHA256 hex, as core.customers keeps them) in a column named `into`. Each
    distinct id is hashed once, in an in-memory DuckDB: no warehouse is opened, so a
    file's ids are pseudonymised with its other per-file work and no clear id leaves it."""
    ids = frame.select(pl.col(column).unique().alias("customer_id"))
    expression, params = pseudonym_sql("customer_id", key)
    con = duckdb.connect()
    try:
        con.register("ids", ids.to_arrow())
        hashes = con.sql(f"SELECT customer_id, {expression} AS pseudonym FROM ids", params=params).pl()
    finally:
        con.close()
    pseudonyms = frame.select(column).join(
        hashes, left_on=column, right_on="customer_id", how="left", maintain_order="left"
    )["pseudonym"]
    return frame.with_columns(pseudonyms.alias(column)).rename({column: into})


class CustomerKeys:
    """Pseudonyms to their keys in core.customers, during one run. A pseudonym not yet in
    core.customers gets the next key there (in pseudonym order within each file). The
    run's pseudonyms and keys stay in a temporary table (memory only, dropped at the end)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self.table = f"customer_keys_{os.getpid()}_{id(self)}"
        self._keys_before_run = self._last_key()
        con.execute(f"CREATE TEMP TABLE {self.table} (asiakas_hash VARCHAR NOT NULL, asiakas_id INTEGER NOT NULL)")

    def _last_key(self) -> int:
        return self.con.execute("SELECT coalesce(max(asiakas_id), 0) FROM core.customers").fetchall()[0][0]

    def add(self, relation: str, column: str) -> None:
        """Keys for the pseudonyms of relation.column (fixed names) not met before in this run."""
        new = f"{self.table}_new"
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {new} AS
            SELECT DISTINCT {column} AS asiakas_hash FROM {relation}
            WHERE {column} NOT IN (SELECT asiakas_hash FROM {self.table})
            """
        )
        last = self._last_key()
        # Only customers of earlier runs can already be there: this run's are in self.table.
        earlier = "SELECT asiakas_id, asiakas_hash FROM core.customers WHERE asiakas_id <= ?"
        self.con.execute(
            f"""
            INSERT INTO core.customers
            SELECT ? + row_number() OVER (ORDER BY h.asiakas_hash), h.asiakas_hash
            FROM {new} h ANTI JOIN ({earlier}) c USING (asiakas_hash)
            """,
            [last, self._keys_before_run],
        )
        self.con.execute(
            f"""
            INSERT INTO {self.table}
            SELECT h.asiakas_hash, c.asiakas_id FROM {new} h
            JOIN (SELECT asiakas_id, asiakas_hash FROM core.customers WHERE asiakas_id <= ? OR asiakas_id > ?) c USING (asiakas_hash)
            """,
            [self._keys_before_run, last],
        )
        self.con.execute(f"DROP TABLE {new}")

    def drop(self) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {self.table}")


def mask_free_text(text: pl.Expr) -> pl.Expr:
    """Free text with e-mail addresses, IBANs, identity codes, business IDs and phone
    numbers masked (MASKS)."""
    for pattern, replacement in MASKS:
        text = text.str.replace_all(pattern, replacement)
    return text


def holds_personal_data(text: pl.Expr) -> pl.Expr:
    """Whether the text holds anything mask_free_text would mask (null for null)."""
    return text.str.contains(PERSONAL_DATA_PATTERN)


def code_holds_personal_data(text: pl.Expr) -> pl.Expr:
    """Whether a code or id holds personal data (CODE_PERSONAL_DATA_PATTERN; null for null)."""
    return text.str.contains(CODE_PERSONAL_DATA_PATTERN)


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
