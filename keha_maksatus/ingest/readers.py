"""Reading one export file into an all-text polars frame.

Whatever the format (CSV/TXT, XLSX, Parquet), the result has the contract's header
names normalised (trimmed, lower-case), every cell as text, and a `line` column: the
physical line on which the record starts, counting the file's first line as 1 (the
header), as an editor shows it. Blank lines are not rows.

The file is opened by Python and handed to polars as an open file or as bytes: polars would
expand `*`, `?` and `[...]` in a path string as a glob and read other files.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import io
import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import fastexcel
import numpy as np
import polars as pl

from keha_maksatus.ingest.landing import open_regular
from keha_maksatus.ingest.privacy import mask_string

LINE = "line"
EXTRA_FIELDS = "_extra_fields"  # fields beyond the header's width, joined; null on a regular row
_EXTRA_WIDTH = 2  # how many surplus fields are read to detect (and keep) a ragged row
CSV_SUFFIXES = {".csv", ".txt"}
EXCEL_SUFFIXES = {".xlsx"}
PARQUET_SUFFIXES = {".parquet"}
SUPPORTED_SUFFIXES = CSV_SUFFIXES | EXCEL_SUFFIXES | PARQUET_SUFFIXES
_SNIFF_BYTES = 64 * 1024
_FORMAT_NAMES = {".csv": "CSV", ".txt": "CSV", ".xlsx": "an .xlsx workbook", ".parquet": "Parquet"}
TIME_ZONE = "Europe/Helsinki"  # time-zone-aware timestamps are taken as local time here

_LF, _CR, _QUOTE = 10, 13, 34
_LINE_END = re.compile(rb"\r\n|\r|\n")


class UnreadableFile(Exception):
    """The file cannot be read as an export at all; the message is the reason. It never
    quotes the file's content (which may hold personal data), only what failed where."""


class _NotUtf8(Exception):
    """Valid UTF-8 in the sniffed start of the file, not further on."""


@dataclass
class ReadResult:
    frame: pl.DataFrame | None  # all columns String, plus `line` (None once validated)
    file_format: str  # csv, xlsx or parquet
    encoding: str | None = None
    separator: str | None = None
    timestamp_columns: tuple[str, ...] = ()  # columns that came typed as date-times (Parquet, Excel date cells)


def normalise_header(name: str) -> str:
    return name.replace("\ufeff", "").strip().lower()


def read_export(path: Path | str | bytes | os.PathLike) -> ReadResult:
    """Read an export file; raises UnreadableFile with the reason when it cannot.

    The name is taken literally and may hold any bytes (a str with surrogate escapes,
    or bytes)."""
    path = Path(os.fsdecode(path))
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFile(f"unsupported file type '{suffix}' (accepted: .csv, .txt, .xlsx, .parquet)")
    with _open_regular_file(path) as handle:
        if not os.fstat(handle.fileno()).st_size:
            raise UnreadableFile("empty file")
        try:
            if suffix in CSV_SUFFIXES:
                return _read_csv(handle)
            data = handle.read()
            if suffix in EXCEL_SUFFIXES:
                return _read_excel(data)
            return _read_parquet(data)
        except UnreadableFile:
            raise
        except BaseException as error:  # any library failure (a Rust panic included) means: not readable
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            # The library's message may quote cells: only its kind is kept.
            raise UnreadableFile(f"cannot be read as {_FORMAT_NAMES[suffix]} ({type(error).__name__})") from None


def _open_regular_file(path: Path) -> BinaryIO:
    """The file opened for reading (landing.open_regular); a name swapped since the folder
    was listed for a link (not followed) or a pipe (would wait for a writer) is refused."""
    try:
        return open_regular(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnreadableFile("symbolic link, not followed") from None
        if error.errno == 0:
            raise UnreadableFile("not a regular file") from None
        raise UnreadableFile(f"cannot be opened: {error.strerror or type(error).__name__}") from None


# --- typed cells as text -------------------------------------------------------------


def column_names(raw_names: list[str]) -> list[str]:
    """Header names normalised; a name the reader uses itself gets a suffix; duplicates
    after normalising make the file unreadable."""
    names = [normalise_header(str(c)) for c in raw_names]
    names = [f"{n} (in file)" if n in (LINE, EXTRA_FIELDS) else n for n in names]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise UnreadableFile(f"duplicate column names in header: {mask_string(', '.join(duplicated))}")
    return names


def _with_lines(frame: pl.DataFrame, lines: pl.Series | None = None) -> pl.DataFrame:
    """The `line` column first: given, or by default the row's position (the header
    being line 1)."""
    if lines is None:
        return frame.with_row_index(LINE, offset=2).with_columns(pl.col(LINE).cast(pl.Int64))
    return frame.insert_column(0, lines.alias(LINE).cast(pl.Int64))


def _typed_as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame of typed columns (Excel, Parquet) with names normalised and every cell as text."""
    names = column_names(frame.columns)
    return pl.DataFrame([cell_text(column).alias(name) for column, name in zip(frame.get_columns(), names)])


def cell_text(column: pl.Series) -> pl.Series:
    """A typed column as the text an export would hold: dates ISO, date-times ISO in
    Helsinki time (fractions of a second only when there are any), integral floats as
    integers; nested and binary values as JSON-like text, never an error."""
    dtype = column.dtype
    if dtype == pl.String:
        return column
    if dtype == pl.Date:
        return column.dt.strftime("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            column = column.dt.convert_time_zone(TIME_ZONE).dt.replace_time_zone(None)
        return column.dt.strftime("%Y-%m-%d %H:%M:%S%.f")  # %.f: nothing when the fraction is zero
    if dtype.is_float():
        whole = column.is_finite() & (column == column.round(0)) & (column.abs() < 2**53)
        return (
            pl.select(pl.when(whole).then(column.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(column.cast(pl.String)))
            .to_series()
            .alias(column.name)
        )
    if isinstance(dtype, pl.Decimal):
        return column.cast(pl.String).str.replace(r"^(-?\d+)\.0+$", "$1")
    if isinstance(dtype, pl.Duration):
        return column.dt.to_string()
    if dtype == pl.Binary:
        try:
            return column.cast(pl.String)
        except pl.exceptions.PolarsError:  # not UTF-8
            return _python_text(column, lambda v: v.decode("utf-8", "replace"))
    if dtype.is_nested():
        if _json_writable(dtype):
            encoded = pl.select(pl.struct(column.alias("v")).struct.json_encode()).to_series()
            # '{"v":...}' -> '...'; a null cell stays null
            return pl.select(pl.when(column.is_not_null()).then(encoded.str.slice(5).str.head(-1))).to_series().alias(column.name)
        return _python_text(column, str)
    try:
        return column.cast(pl.String)  # integers, booleans, times, categoricals, nulls
    except pl.exceptions.PolarsError:
        return _python_text(column, str)


def _python_text(column: pl.Series, convert) -> pl.Series:
    return pl.Series(column.name, [None if v is None else convert(v) for v in column.to_list()], dtype=pl.String)


_JSON_LEAVES = (pl.String, pl.Boolean, pl.Date, pl.Datetime, pl.Null)


def _json_writable(dtype: pl.DataType) -> bool:
    """Whether polars writes this type as JSON (it panics on binary, for one)."""
    if isinstance(dtype, (pl.List, pl.Array)):
        return _json_writable(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return all(_json_writable(field.dtype) for field in dtype.fields)
    return dtype.is_integer() or dtype.is_float() or isinstance(dtype, _JSON_LEAVES)


# --- CSV -----------------------------------------------------------------------------


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


def _read_csv(handle: BinaryIO) -> ReadResult:
    """A UTF-8 file is looked at through a memory map and polars reads it from the open
    file (no copy in Python); any other encoding is decoded into UTF-8 bytes first."""
    mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        encoding = detect_encoding(mapped[:_SNIFF_BYTES])
        if encoding in ("utf-8", "utf-8-sig"):
            try:
                return _read_csv_as(mapped, encoding, handle)
            except _NotUtf8:  # valid UTF-8 at the start, not further on: a Windows-1252 file
                encoding = "cp1252"
        data = mapped[:]
    finally:
        with contextlib.suppress(BufferError):  # a view still held (by an error's traceback) closes later
            mapped.close()
    return _read_csv_as(_utf8_text(data, encoding), encoding)


def _utf8_text(data: bytes, encoding: str) -> bytes:
    if encoding in ("utf-8", "utf-8-sig"):  # polars reads UTF-8 itself and drops a BOM
        return data
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as error:
        line = len(_LINE_END.findall(data[: error.start].decode(encoding, "replace"))) + 1
        raise UnreadableFile(f"not valid {encoding}: undecodable bytes on line {line}") from None


def _read_csv_as(original: bytes | mmap.mmap, encoding: str, handle: BinaryIO | None = None) -> ReadResult:
    """Read UTF-8 text (`handle`: the open file that holds it unchanged)."""
    start = len(codecs.BOM_UTF8) if original[:3] == codecs.BOM_UTF8 else 0
    line_ends = _count_line_ends(np.frombuffer(original, dtype=np.uint8))
    first_end = _LINE_END.search(original, start)
    first_line = original[start : first_end.start() if first_end else len(original)]
    text, records, header = original, None, 0
    if line_ends.bare_cr or _is_blank(first_line):
        # polars knows LF and CR LF only, and takes the first line for the header: the
        # text from the first record that is not blank, each record ended by LF.
        records = _find_records(original, start)
        if records.blank.all():
            raise UnreadableFile("no header line")
        header = int(np.argmin(records.blank))
        text = _lf_ended(original, records, header)
        first_line = text[: text.index(b"\n")]
    separator = detect_separator(first_line.decode("utf-8", "replace"))
    try:
        frame = _read_csv_text(handle if text is original and handle else text, separator)
    except pl.exceptions.PolarsError:
        bad_byte = _first_non_utf8(text)
        if bad_byte is None:
            return _read_csv_quoting_as_python(original, start, separator, encoding)
        if encoding == "utf-8":
            raise _NotUtf8 from None
        line = len(_LINE_END.findall(text[:bad_byte])) + 1
        raise UnreadableFile(f"not valid UTF-8 despite its byte-order mark: undecodable bytes on line {line}") from None

    if records is None:
        one_line_per_record = line_ends.lf == frame.height + (1 if text[-1:] == b"\n" else 0)
        if one_line_per_record and not _may_have_blank_rows(frame):  # the usual file
            return ReadResult(_with_lines(frame), "csv", encoding, separator)
        # Blank lines that polars read as rows, or quoted line breaks: where is each record?
        records = _find_records(original, start)
    # polars' rows are the records after the header, blank ones included
    blank, lines = records.blank[header + 1 :], records.lines[header + 1 :]
    if frame.height != len(lines):
        return _read_csv_quoting_as_python(original, start, separator, encoding)
    keep = ~blank
    return ReadResult(_with_lines(frame.filter(pl.Series(keep)), pl.Series(lines[keep])), "csv", encoding, separator)


def _read_csv_quoting_as_python(original: bytes | mmap.mmap, start: int, separator: str, encoding: str) -> ReadResult:
    """The slow way for a file polars cannot split: a double quote is special only at the
    start of a field (`12" näyttö` is text), as Python's csv module reads it. A quote that
    opens a field and is never closed still makes the file unreadable."""
    text = bytes(original[start:]).decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, quotechar='"', strict=True)
    records, line = [], 1
    try:
        for fields in reader:
            records.append((line, fields))
            line = reader.line_num + 1
    except csv.Error:
        raise UnreadableFile(_csv_failure(original, start)) from None
    records = [(n, fields) for n, fields in records if len(fields) > 1 or "".join(fields).strip()]  # blank lines
    if not records:
        raise UnreadableFile("no header line")
    header = column_names(records[0][1])
    width = len(header)
    rows = [[field or None for field in fields[:width]] + [None] * (width - len(fields)) for _, fields in records[1:]]
    surplus = [separator.join(fields[width:]) or None for _, fields in records[1:]]
    frame = pl.DataFrame(rows, schema={name: pl.String for name in header}, orient="row").with_columns(
        pl.Series(EXTRA_FIELDS, surplus, dtype=pl.String)
    )
    return ReadResult(_with_lines(frame, pl.Series([n for n, _ in records[1:]])), "csv", encoding, separator)


def _read_csv_text(source: bytes | BinaryIO, separator: str) -> pl.DataFrame:
    """All fields as text. Read a little wider than the header so that a row with too
    many fields is caught (its surplus goes to EXTRA_FIELDS) rather than cut silently."""
    if not isinstance(source, bytes):
        source.seek(0)
    header = column_names(pl.read_csv(source, separator=separator, infer_schema=False, quote_char='"', n_rows=0).columns)
    width = len(header) + _EXTRA_WIDTH
    if not isinstance(source, bytes):
        source.seek(0)
    frame = pl.read_csv(
        source, separator=separator, has_header=False, infer_schema=False, quote_char='"',
        schema={f"_field{i}": pl.String for i in range(width)}, missing_columns="insert", truncate_ragged_lines=True,
    ).slice(1)
    surplus = [f"_field{i}" for i in range(len(header), width)]
    return frame.select(
        *[pl.col(f"_field{i}").alias(name) for i, name in enumerate(header)],
        pl.concat_str(surplus, separator=separator, ignore_nulls=True).replace("", None).alias(EXTRA_FIELDS),
    )


@dataclass(frozen=True)
class _LineEnds:
    cr: int  # CR bytes
    lf: int  # LF bytes
    crlf: int  # CR LF pairs

    @property
    def bare_cr(self) -> bool:
        """Whether some CR is not followed by LF (a line end of its own)."""
        return self.cr != self.crlf


_CHUNK = 1 << 18


def _count_line_ends(array: np.ndarray) -> _LineEnds:
    """CR, LF and CR LF counts in one pass over cache-sized chunks (whole-file temporary
    arrays would cost more in page faults than the comparisons themselves)."""
    cr = lf = crlf = 0
    is_cr, is_lf, both = (np.empty(_CHUNK, dtype=bool) for _ in range(3))
    for offset in range(0, len(array), _CHUNK):
        chunk = array[offset : offset + _CHUNK]
        n = len(chunk)
        chunk_cr, chunk_lf = is_cr[:n], is_lf[:n]
        np.equal(chunk, _CR, out=chunk_cr)
        np.equal(chunk, _LF, out=chunk_lf)
        cr += int(np.count_nonzero(chunk_cr))
        lf += int(np.count_nonzero(chunk_lf))
        crlf += int(np.count_nonzero(np.logical_and(chunk_cr[:-1], chunk_lf[1:], out=both[: max(n - 1, 0)])))
        if offset and chunk_lf[0] and array[offset - 1] == _CR:  # a pair across the chunk boundary
            crlf += 1
    return _LineEnds(cr, lf, crlf)


# First bytes (UTF-8) of a line that may hold only blanks: space, tab, vertical tab,
# form feed, and the lead bytes of no-break and other Unicode spaces (U+00A0, U+2000-U+205F, U+3000).
_BLANK_FIRST_BYTES = np.array([0x20, 0x09, 0x0B, 0x0C, 0xC2, 0xE1, 0xE2, 0xE3], dtype=np.uint8)


def _is_blank(line: bytes) -> bool:
    """No characters, or only blanks (any Unicode space)."""
    return not line.decode("utf-8", "replace").strip()


def _may_have_blank_rows(frame: pl.DataFrame) -> bool:
    """Whether some row read may be a blank line: every field empty but perhaps the
    first, which holds only blanks. (A line of separators alone looks the same here;
    _find_records tells them apart.)"""
    fields = frame.columns
    others_empty = pl.all_horizontal([pl.col(c).is_null() for c in fields[1:]]) if len(fields) > 1 else pl.lit(True)
    suspects = frame.lazy().filter(others_empty).select(fields[0]).collect().to_series()
    return bool((suspects.is_null() | suspects.str.contains(r"^\s*$")).any())


@dataclass
class _Records:
    """The records of a CSV text: where each one's bytes are (its line end excluded),
    the physical line it starts on, and whether it is blank (no characters, or only
    spaces and tabs)."""

    starts: np.ndarray
    ends: np.ndarray
    lines: np.ndarray
    blank: np.ndarray
    quoted_line_breaks: bool  # some line end lies inside a quoted field


def _find_records(text: bytes, start: int) -> _Records:
    """LF, CR LF and a bare CR each end a line; a line end inside double quotes belongs
    to the field (the quotes before it are odd in number)."""
    array = np.frombuffer(text, dtype=np.uint8)
    n = len(array)
    lf = np.flatnonzero(array == _LF)
    cr = np.flatnonzero(array == _CR)
    after_cr = (lf > 0) & (array[np.maximum(lf - 1, 0)] == _CR)
    bare_cr = cr[array[np.minimum(cr + 1, n - 1)] != _LF] if n else cr
    end_from = np.concatenate([lf - after_cr, bare_cr])  # first byte of each line end
    end_to = np.concatenate([lf + 1, bare_cr + 1])  # just past it
    if len(bare_cr) and len(lf):  # both kinds: in the order of the text
        order = np.argsort(end_from, kind="stable")
        end_from, end_to = end_from[order], end_to[order]

    quotes = np.flatnonzero(array == _QUOTE)
    closing = np.flatnonzero(np.searchsorted(quotes, end_from) % 2 == 0)  # line ends that end a record
    starts = np.concatenate([[start], end_to[closing]])
    ends = np.concatenate([end_from[closing], [n]])
    lines = np.concatenate([[1], closing + 2])  # line k + 2 follows the (k + 1)th line end
    if starts[-1] >= n:  # nothing after the last line end
        starts, ends, lines = starts[:-1], ends[:-1], lines[:-1]

    blank = ends == starts
    first = array[np.minimum(starts, n - 1)] if n else starts
    for i in np.flatnonzero(~blank & np.isin(first, _BLANK_FIRST_BYTES)):
        blank[i] = _is_blank(text[starts[i] : ends[i]])
    return _Records(starts, ends, lines, blank, len(closing) < len(end_from))


def _lf_ended(text: bytes, records: _Records, first: int) -> bytes:
    """The records from `first` on (blank ones too), each ended by one LF."""
    starts, ends = records.starts[first:], records.ends[first:]
    if not records.quoted_line_breaks:  # every CR is part of a line end
        rest = text[starts[0] :].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return rest if rest.endswith(b"\n") else rest + b"\n"
    # Line ends inside quotes stay as they are: keep each record's bytes and the first
    # byte of its line end, made LF (ranges marked by +1/-1 and a running sum).
    array = np.frombuffer(text, dtype=np.uint8)
    n = len(array)
    marks = np.zeros(n + 2, dtype=np.int8)
    marks[starts] += 1
    marks[ends + 1] -= 1
    kept = np.cumsum(marks[:n], dtype=np.int8).view(bool)
    rewritten = array.copy()
    rewritten[ends[ends < n]] = _LF
    joined = rewritten[kept].tobytes()
    return joined if ends[-1] < n else joined + b"\n"


def _first_non_utf8(text: bytes | mmap.mmap) -> int | None:
    """Where the text stops being UTF-8, if it does."""
    try:
        str(text, "utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return None


def _csv_failure(text: bytes, start: int) -> str:
    """Why polars could not split the text into fields, without quoting it."""
    records = _find_records(text, start)
    if np.count_nonzero(np.frombuffer(text, dtype=np.uint8) == _QUOTE) % 2 and len(records.lines):
        return f"cannot be read as CSV: a double quote opened on line {records.lines[-1]} is never closed"
    return "cannot be read as CSV: fields not quoted as CSV requires (text after a field's closing double quote?)"


# --- Excel and Parquet ---------------------------------------------------------------


def _read_excel(data: bytes) -> ReadResult:
    """The first sheet as text (fastexcel writes a date cell as `yyyy-mm-dd hh:mm:ss`, an
    integral number without decimals). A row with every cell empty is not a row; the
    others keep their sheet row number as line. Columns whose cells are all date cells
    are named in timestamp_columns: in a date column such a cell is its date."""
    frame = pl.read_excel(
        data, sheet_id=1, infer_schema_length=0, drop_empty_rows=False, drop_empty_cols=True, raise_if_empty=False
    )
    if not frame.width:
        raise UnreadableFile("no header row on the first sheet")
    text = _with_lines(_typed_as_text(frame))
    text = text.filter(~pl.all_horizontal(pl.exclude(LINE).is_null()))
    available = fastexcel.read_excel(data).load_sheet(0).available_columns()
    dates = {normalise_header(str(c.name)) for c in available if c.dtype in ("datetime", "date")}
    return ReadResult(text, "xlsx", timestamp_columns=tuple(c for c in text.columns if c in dates))


def _read_parquet(data: bytes) -> ReadResult:
    frame = pl.read_parquet(data)
    timestamps = tuple(name for name, dtype in zip(column_names(frame.columns), frame.dtypes) if isinstance(dtype, pl.Datetime))
    return ReadResult(_with_lines(_typed_as_text(frame)), "parquet", timestamp_columns=timestamps)
