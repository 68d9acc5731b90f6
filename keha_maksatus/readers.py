"""Reading one export file into an all-text polars frame.

Whatever the format (CSV/TXT, XLSX, Parquet), the result has the contract's header
names normalised (trimmed, lower-case), every cell as text, and a `line` column: the
record's line number in the file counting the header as line 1.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import polars as pl

LINE = "line"
EXTRA_FIELDS = "_extra_fields"  # fields beyond the header's width, joined; null on a regular row
_EXTRA_WIDTH = 2  # how many surplus fields are read to detect (and keep) a ragged row
CSV_SUFFIXES = {".csv", ".txt"}
EXCEL_SUFFIXES = {".xlsx"}
PARQUET_SUFFIXES = {".parquet"}
SUPPORTED_SUFFIXES = CSV_SUFFIXES | EXCEL_SUFFIXES | PARQUET_SUFFIXES
_SNIFF_BYTES = 64 * 1024


class UnreadableFile(Exception):
    """The file cannot be read as an export at all; the message is the reason."""


@dataclass
class ReadResult:
    frame: pl.DataFrame | None  # all columns String, plus `line` (None once validated)
    file_format: str  # csv, xlsx or parquet
    encoding: str | None = None
    separator: str | None = None


def normalise_header(name: str) -> str:
    return name.replace("\ufeff", "").strip().lower()


def read_export(path: Path) -> ReadResult:
    """Read an export file; raises UnreadableFile with the reason when it cannot."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFile(f"unsupported file type '{suffix}' (accepted: .csv, .txt, .xlsx, .parquet)")
    if path.stat().st_size == 0:
        raise UnreadableFile("empty file")
    try:
        if suffix in CSV_SUFFIXES:
            result = _read_csv(path)
        elif suffix in EXCEL_SUFFIXES:
            result = ReadResult(_read_excel(path), "xlsx")
        else:
            result = ReadResult(_read_parquet(path), "parquet")
    except UnreadableFile:
        raise
    except Exception as error:  # any library failure means: not readable as an export
        raise UnreadableFile(f"cannot be read as {suffix[1:]}: {type(error).__name__}: {error}") from None
    return result


def _with_lines(frame: pl.DataFrame) -> pl.DataFrame:
    names = [normalise_header(c) for c in frame.columns]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise UnreadableFile(f"duplicate column names in header: {', '.join(duplicated)}")
    frame = frame.rename(dict(zip(frame.columns, names)))
    text = frame.select(pl.all().cast(pl.String))
    return text.with_row_index(LINE, offset=2).with_columns(pl.col(LINE).cast(pl.Int64))


def detect_encoding(head: bytes) -> str:
    """utf-8-sig, utf-16 (by BOM), utf-8, else cp1252 (Windows-1252)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        raise UnreadableFile("binary content (NUL bytes) and no UTF-16 byte-order mark")
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as error:
        if error.start >= len(head) - 3:  # a multi-byte character cut by the sniff window
            return "utf-8"
        return "cp1252"


def detect_separator(header_line: str) -> str:
    """The most frequent of `;`, tab and `,` in the header line, outside quotes."""
    unquoted = "".join(part for i, part in enumerate(header_line.split('"')) if i % 2 == 0)
    counts = {sep: unquoted.count(sep) for sep in (";", "\t", ",")}
    separator = max(counts, key=counts.get)
    return separator if counts[separator] else ";"


def _read_csv(path: Path) -> ReadResult:
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    encoding = detect_encoding(head)
    if encoding in ("utf-8", "utf-8-sig"):  # polars reads UTF-8 itself and drops a BOM
        source: Path | bytes = path
    else:
        try:
            source = path.read_bytes().decode(encoding).encode("utf-8")
        except UnicodeDecodeError as error:
            raise UnreadableFile(f"not valid {encoding}: {error}") from None
    first_text = (source[:_SNIFF_BYTES] if isinstance(source, bytes) else head).decode("utf-8", "replace")
    header_line = first_text.lstrip("\ufeff").splitlines()[0] if first_text.strip() else ""
    if not header_line.strip():
        raise UnreadableFile("no header line")
    separator = detect_separator(header_line)
    try:
        frame = _read_csv_text(source, separator)
    except pl.exceptions.ComputeError as error:
        if encoding == "utf-8" and "utf-8" in str(error).lower():
            # Valid UTF-8 at the start, not further on: a Windows-1252 file.
            encoding = "cp1252"
            source = path.read_bytes().decode("cp1252", errors="strict").encode("utf-8")
            frame = _read_csv_text(source, separator)
        else:
            raise
    return ReadResult(_with_lines(frame), "csv", encoding, separator)


def _read_csv_text(source: Path | bytes, separator: str) -> pl.DataFrame:
    """All fields as text. Read a little wider than the header so that a row with too
    many fields is caught (its surplus goes to EXTRA_FIELDS) rather than cut silently."""
    header = pl.read_csv(source, separator=separator, infer_schema=False, quote_char='"', n_rows=0).columns
    width = len(header) + _EXTRA_WIDTH
    frame = pl.read_csv(
        source, separator=separator, has_header=False, infer_schema=False, quote_char='"',
        schema={f"_field{i}": pl.String for i in range(width)}, missing_columns="insert", truncate_ragged_lines=True,
    ).slice(1)
    surplus = [f"_field{i}" for i in range(len(header), width)]
    return frame.select(
        *[pl.col(f"_field{i}").alias(name) for i, name in enumerate(header)],
        pl.concat_str(surplus, separator=separator, ignore_nulls=True).replace("", None).alias(EXTRA_FIELDS),
    )


def _read_excel(path: Path) -> pl.DataFrame:
    frame = pl.read_excel(path, sheet_id=1, infer_schema_length=0)
    return _with_lines(frame)


def _read_parquet(path: Path) -> pl.DataFrame:
    return _with_lines(pl.read_parquet(path))
