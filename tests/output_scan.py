"""Scanning what a run wrote: personal data from the input and live formula cells.

Used by the corpus and the privacy tests: the texts of every DuckDB table (working and
published), of every report, dashboard and export file, and the formula cells of the
exports."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import duckdb
import polars as pl

# Personal data as it may stand in an export, also glued to other characters.
PERSONAL_DATA = (
    re.compile(r"\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]", re.IGNORECASE),  # personal identity code
    re.compile(r"\d{7}-\d"),  # business ID
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # e-mail
    re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,4})?\b"),  # IBAN
    re.compile(r"(?<![\w.,/-])(?:\+|00)\d{1,3}[ (0).-]*\d(?:[ ./-]?\d){5,11}(?!\w)"),  # international phone
    re.compile(r"(?<![\w.,/-])\(?0\d{1,3}\)?[ ./-]?\d{2,4}(?:[ ./-]?\d{2,4}){1,3}(?!\w)"),  # Finnish phone
)
_DATE = re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$|^\d{4}-\d{2}-\d{2}$")
_FORMULA_START = ("=", "+", "@", "\t", "\r")
_NUMBER = re.compile(r"^-\d[\d ]*(,\d+)?$")


def input_text(path: Path) -> str:
    """The text of an input file whatever its format, for finding its personal data."""
    data = path.read_bytes()
    parts = [path.name]
    if path.suffix.lower() == ".xlsx":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                parts += [archive.read(n).decode("utf-8", "replace") for n in archive.namelist() if n.endswith(".xml")]
        except zipfile.BadZipFile:
            pass
    elif path.suffix.lower() == ".parquet":
        try:
            frame = pl.read_parquet(io.BytesIO(data))
            parts.append(repr(frame.rows()))
        except Exception:
            pass
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        parts.append(data.decode("utf-16", "replace"))
    parts += [data.decode("utf-8", "replace"), data.decode("cp1252", "replace")]
    return "\n".join(parts)


def personal_data_in(folder: Path, extra: list[str] = ()) -> set[str]:
    """Every identity code, business ID, e-mail, IBAN and phone number in the files of
    `folder` (recursively, names included), plus `extra`."""
    found = set(extra)
    for path in sorted(folder.rglob("*")):
        text = path.name if not path.is_file() else input_text(path)
        for pattern in PERSONAL_DATA:
            found |= {m.strip() for m in pattern.findall(text)}
    return {s for s in found if len(re.sub(r"\D", "", s)) >= 7 and not _DATE.match(s)}


def database_text(path: Path) -> str:
    """Every text value, column name and comment of a DuckDB file."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns = con.execute(
            "SELECT schema_name, table_name, column_name, data_type, coalesce(comment, '') FROM duckdb_columns() "
            "WHERE NOT internal"
        ).fetchall()
        parts = [f"{c} {comment}" for _, _, c, _, comment in columns]
        for schema, table, column, data_type, _ in columns:
            if data_type == "VARCHAR":
                parts += [str(v) for (v,) in con.execute(f'SELECT DISTINCT "{column}" FROM "{schema}"."{table}"').fetchall()]
        return "\n".join(parts)
    finally:
        con.close()


def file_text(path: Path) -> str:
    if path.suffix == ".duckdb":
        return database_text(path)
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as archive:
            return "\n".join(archive.read(n).decode("utf-8") for n in archive.namelist() if n.endswith(".xml"))
    if path.suffix == ".parquet":
        return repr(pl.read_parquet(path).rows())
    return path.read_bytes().decode("utf-8", "replace")


def output_texts(published: Path, folders: list[Path]) -> dict[str, str]:
    """Path -> text of every file a run left in `folders` (plotly.js aside)."""
    texts = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and path.name != "plotly.min.js" and not path.name.endswith(".wal"):
                texts[str(path)] = file_text(path)
    assert str(published) in texts
    return texts


def formula_cells(exports: Path) -> list[str]:
    """Cells of the exports that a spreadsheet would evaluate: formula elements in the
    workbook's sheets, and CSV fields that start like a formula."""
    found = []
    for path in sorted(Path(exports).glob("*.xlsx")):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.startswith("xl/worksheets/") and re.search(rb"<f[ >]", archive.read(name)):
                    found.append(f"{path.name}:{name}")
    for path in sorted(Path(exports).glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for line, row in enumerate(csv.reader(handle, delimiter=";"), 1):
                for field in row:
                    if field.startswith(_FORMULA_START) or (field.startswith("-") and not _NUMBER.match(field)):
                        found.append(f"{path.name}:{line}: {field[:20]!r}")
    return found
