"""Exports of the KPI tables for people who live in Excel: .xlsx with Finnish sheet names,
headers and number formats, .csv with `;` and decimal comma, and Parquet with the
warehouse's names and types.

The roll-up rows of the monthly tables (all instruments, all offices) sit on a sheet and in
a .csv of their own, labelled `kaikki`, so that a sum or pivot over the detail rows counts
every decision or response once. The Parquet files keep each warehouse table whole (a null
key = all), so that the same queries work on them as on the warehouse.

All three hold what people may see (disclosure): satisfaction figures under 5 responses
are empty cells with a column saying they were withheld. No text cell is ever a formula:
.xlsx cells hold text as strings, and a .csv text cell that would start a formula is
prefixed with `'`.

A sheet holds at most WORKBOOK_MAX_ROWS rows, the list of pending applications at risk
fewer (it runs to hundreds of thousands at scale, past what a workbook opens or writes in
reasonable time, and people work through it from the top): a longer table
keeps the rows that weigh most, with a note above the header saying where the whole table is.
The .csv and .parquet files always hold every row.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import re
from pathlib import Path

import polars as pl
import xlsxwriter
from xlsxwriter.utility import CHAR_WIDTHS, xl_pixel_width

from keha_maksatus.outputs import finnish as fi
from keha_maksatus.outputs.disclosure import open_for_people
from keha_maksatus.outputs.publish import new_build_directory, replace_directory
from keha_maksatus.outputs.rendering import FORMULA_STARTS

EXPORTED_TABLES = (
    "kpi.quality_section",
    "kpi.quality_section_details",
    "kpi.processing_time_monthly",
    "kpi.satisfaction_monthly",
    "kpi.satisfaction_by_instrument",
    "kpi.monthly_trend",
    "kpi.backlog",
    "kpi.forecast",
    "kpi.forecast_fan",
    "kpi.pending_at_risk",
    "kpi.forecast_what_if",
)
# The warehouse's roll-up rows (a null key = all of them) go to their own sheet and .csv,
# labelled ALL, so that a plain sum or pivot over the detail sheet counts every case once.
ROLLUP_KEYS = {
    "kpi.processing_time_monthly": ("tukimuoto", "yksikko"),
    "kpi.satisfaction_monthly": ("tukimuoto",),
}
ALL = "kaikki"
ROLLUP_FILE_SUFFIX = "_yhteensa"
# Finnish sheet names (at most 31 characters, unique): the detail rows, then the roll-ups.
SHEETS_FI = {
    "kpi.quality_section": "Laatuosio",
    "kpi.quality_section_details": "Laatuosion lisätiedot",
    "kpi.processing_time_monthly": "Käsittelyaika kuukausittain",
    "kpi.satisfaction_monthly": "Tyytyväisyys kuukausittain",
    "kpi.satisfaction_by_instrument": "Tyytyväisyys tukimuodoittain",
    "kpi.monthly_trend": "Mittarit kuukausittain",
    "kpi.backlog": "Avoimet hakemukset",
    "kpi.forecast": "Ennuste",
    "kpi.forecast_fan": "Ennuste kuukausittain",
    "kpi.pending_at_risk": "Riskissä olevat hakemukset",
    "kpi.forecast_what_if": "Mitä jos -laskelmat",
}
# Columns whose meaning in a table differs from the same name elsewhere get a name of their
# own on the sheet and in the .csv (the Parquet keeps the warehouse's): the fan's value is
# observed or forecast, not the period's value.
SHEET_COLUMNS = {"kpi.forecast_fan": {"value": "cumulative_value", "n": "cumulative_n"}}
ROLLUP_SHEETS_FI = {
    "kpi.processing_time_monthly": "Käsittelyaika kk yhteensä",
    "kpi.satisfaction_monthly": "Tyytyväisyys kk yhteensä",
}
# Excel number formats by column, written as Excel stores them (`,` thousands, `.` decimals)
# and shown with the reader's separators: a Finnish Excel shows 1 234,5. Counts and amounts
# are grouped by thousands, years and orders are plain numbers; every numeric column of an
# exported table has its format here (none is left to a default).
PLAIN = "0"
COUNT = "#,##0"
DAYS = "#,##0.0"
SCORE = "#,##0.00"
EUROS = "#,##0.00"
SHARE = "0.0 %"
DATE_FORMAT = "d.m.yyyy"
EXCEL_FORMATS = {
    "year": PLAIN, "band_order": PLAIN, "days_from": PLAIN,
    "n": COUNT, "responses": COUNT, "campaign_n": COUNT,
    "share_within_30_days": SHARE, "share_4_5": SHARE,
    "value": SCORE, "mean_score": SCORE, "ci_low": SCORE, "ci_high": SCORE, "campaign_value": SCORE,
    "target": DAYS, "mean_days": DAYS, "median_days": DAYS, "p90_days": DAYS, "net_mean_days": DAYS, "net_value": DAYS,
    "haettu_eur": EUROS,
    # the forecast tables
    "seed": PLAIN,
    "days_left": COUNT, "seen_n": COUNT, "expected_n": COUNT, "pending_n": COUNT, "pending_expected_in_period": COUNT,
    "expected_arrivals": COUNT, "arrivals_expected_in_period": COUNT, "basis_n": COUNT, "draws": COUNT,
    "cumulative_n": COUNT, "age_days": COUNT, "oldest_n": COUNT,
    "seen_value": SCORE, "median": SCORE, "low_80": SCORE, "high_80": SCORE, "low_95": SCORE, "high_95": SCORE,
    "cumulative_value": SCORE, "drift_sigma": SCORE, "expected_effect_days": SCORE, "change_days": SCORE,
    "expected_days": DAYS,
    "probability_meets_target": SHARE, "probability_after_period_end": SHARE, "probability_over_30_days": SHARE,
}
# Text stays text: xlsxwriter would otherwise write a string starting with `=` as a
# formula, and could turn strings into numbers or hyperlinks.
WORKBOOK_OPTIONS = {"strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False, "nan_inf_to_errors": True}
FILTER_BUTTON_PIXELS = 20
PADDING_PIXELS = 7
DEFAULT_CHAR_PIXELS = 8  # xl_pixel_width's width of a character missing from CHAR_WIDTHS
# At most this many rows of a table on its sheet; the .csv and .parquet hold all of them.
WORKBOOK_MAX_ROWS = 10_000
# Fewer for a list that a person works through from the top: writing a sheet costs about a
# quarter of a second per 1 000 rows, every night.
WORKBOOK_TABLE_MAX_ROWS = {"kpi.pending_at_risk": 1_000}
# Which rows a sheet over the cap keeps: those first in this order (the rest keep the
# table's own order), and what the note calls them.
WORKBOOK_ORDER = {
    # largest expected effect on the period's mean first, as the dashboards' list
    "kpi.pending_at_risk": (("expected_effect_days", "saapunut", "hakemus_id"), (True, False, False)),
}
KEPT_ROWS_FI = {"kpi.pending_at_risk": "eniten vaikuttavaa hakemusta"}
KEPT_ROWS_DEFAULT_FI = "ensimmäistä riviä"


@dataclass(frozen=True)
class Sheet:
    """One sheet of the workbook and its .csv: a table's detail rows or its roll-ups."""

    table: str
    name: str
    file_stem: str
    frame: pl.DataFrame


def sheets_of(table: str, frame: pl.DataFrame) -> list[Sheet]:
    """The table as people read it: detail rows, and roll-ups (labelled `kaikki`) apart."""
    stem = table.replace(".", "_")
    frame = frame.rename(SHEET_COLUMNS.get(table, {}))
    keys = ROLLUP_KEYS.get(table)
    if not keys:
        return [Sheet(table, SHEETS_FI[table], stem, frame)]
    rollup = pl.any_horizontal(*[pl.col(key).is_null() for key in keys])
    rollups = frame.filter(rollup).with_columns(pl.col(*keys).fill_null(ALL))
    return [
        Sheet(table, SHEETS_FI[table], stem, frame.filter(~rollup)),
        Sheet(table, ROLLUP_SHEETS_FI[table], stem + ROLLUP_FILE_SUFFIX, rollups),
    ]


def in_finnish(frame: pl.DataFrame) -> pl.DataFrame:
    """Finnish column headers, and yes/no in Finnish."""
    return frame.rename({c: fi.HEADERS_FI.get(c, c) for c in frame.columns}).with_columns(
        pl.col(pl.Boolean).replace_strict({True: "kyllä", False: "ei"}, return_dtype=pl.String)
    )


def csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text cell that a spreadsheet would take for a formula, prefixed with `'`
    (which spreadsheets take as "this is text"); each cell judged alone."""
    text = pl.col(pl.String)  # expands to each text column in turn
    formula = text.str.contains("^[" + "".join(re.escape(start) for start in FORMULA_STARTS) + "]")
    return frame.with_columns(pl.when(formula).then(pl.lit("'") + text).otherwise(text).name.keep())


def write_exports(published_path: Path, out_dir: Path, max_rows: int = WORKBOOK_MAX_ROWS) -> list[Path]:
    """Write every KPI table into out_dir (replaced as a whole): one workbook with a sheet
    per table (roll-ups on a sheet of their own, at most max_rows rows each), a .csv per
    sheet and a .parquet per table."""
    out_dir = Path(out_dir)
    build = new_build_directory(out_dir)
    con = open_for_people(published_path)
    try:
        frames = {table: con.sql(f"SELECT * FROM {table}").pl() for table in EXPORTED_TABLES}
    finally:
        con.close()
    # The files are written in polars, which lets go of the GIL: on a second core, while
    # the workbook (xlsxwriter, Python through and through) is written here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        files = pool.submit(_write_files, frames, build)
        _write_workbook(build / "maksatus_kpi.xlsx", frames, max_rows)
        names = files.result()
    replace_directory(build, out_dir)
    return [out_dir / "maksatus_kpi.xlsx"] + [out_dir / name for name in names]


def _write_files(frames: dict[str, pl.DataFrame], build: Path) -> list[str]:
    """A .parquet per table and a .csv per sheet into build; their names."""
    names = []
    for table, frame in frames.items():
        # Parquet is typed data for tools: the warehouse table as it is (null key = all).
        frame.write_parquet(build / f"{table.replace('.', '_')}.parquet")
        names.append(f"{table.replace('.', '_')}.parquet")
        for sheet in sheets_of(table, frame):
            write_csv(sheet.frame, build / f"{sheet.file_stem}.csv")
            names.append(f"{sheet.file_stem}.csv")
    return names


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    """`;`, decimal comma, UTF-8 with BOM, dates as 30.6.2022; numbers without thousands
    separators (a year is 2021), at most 4 decimals rounded half up (polars rounds half even
    unless told)."""
    csv_safe(in_finnish(frame).with_columns(
        pl.col(pl.Date).dt.strftime("%-d.%-m.%Y"),
        pl.col(pl.Float64).round(4, mode="half_away_from_zero"),
    )).write_csv(path, separator=";", decimal_comma=True, include_bom=True)


def _write_workbook(path: Path, frames: dict[str, pl.DataFrame], max_rows: int = WORKBOOK_MAX_ROWS) -> None:
    with xlsxwriter.Workbook(path, WORKBOOK_OPTIONS) as workbook:
        for table, frame in frames.items():
            for sheet in sheets_of(table, frame):
                _write_sheet(workbook, sheet, max_rows)


def workbook_rows(sheet: Sheet, max_rows: int) -> tuple[pl.DataFrame, str | None]:
    """The rows of the sheet in the workbook, and the note when they are not all of them."""
    max_rows = min(max_rows, WORKBOOK_TABLE_MAX_ROWS.get(sheet.table, max_rows))
    if sheet.frame.height <= max_rows:
        return sheet.frame, None
    frame = sheet.frame
    if sheet.table in WORKBOOK_ORDER:
        by, descending = WORKBOOK_ORDER[sheet.table]
        frame = frame.sort(by, descending=list(descending), nulls_last=True, maintain_order=True)
    stem = sheet.table.replace(".", "_")
    files = f"{sheet.file_stem}.csv ja " + (".parquet" if sheet.file_stem == stem else f"{stem}.parquet")
    kept = KEPT_ROWS_FI.get(sheet.table, KEPT_ROWS_DEFAULT_FI)
    note = f"Työkirjassa {fi.number(max_rows)} {kept}; kaikki {fi.number(sheet.frame.height)} tiedostoissa {files}"
    return frame.head(max_rows), note


def _write_sheet(workbook: xlsxwriter.Workbook, sheet: Sheet, max_rows: int) -> None:
    """A sheet with its header row frozen, a filter on every column and widths that fit;
    a sheet cut to max_rows has the note above its header (frozen with it)."""
    frame, note = workbook_rows(sheet, max_rows)
    columns = frame.columns
    formats = {fi.HEADERS_FI.get(c, c): EXCEL_FORMATS[c] for c in columns if c in EXCEL_FORMATS}
    widths = {fi.HEADERS_FI.get(c, c): column_width(c, frame[c]) for c in columns}
    first_row = 1 if note else 0
    in_finnish(frame).write_excel(
        workbook, worksheet=sheet.name, position=(first_row, 0), column_formats=formats,
        dtype_formats={pl.Date: DATE_FORMAT}, column_widths=widths, autofilter=True,
        freeze_panes=(first_row + 1, 0), table_style="Table Style Light 9",
    )
    if note:
        workbook.get_worksheet_by_name(sheet.name).write_string(0, 0, note, workbook.add_format({"bold": True}))


def column_width(column: str, values: pl.Series) -> int:
    """Pixels that fit the header (with its filter button) and every value as shown."""
    header = xl_pixel_width(fi.HEADERS_FI.get(column, column)) + FILTER_BUTTON_PIXELS
    return max(header, widest_cell(column, values)) + PADDING_PIXELS


def widest_cell(column: str, values: pl.Series) -> int:
    """Pixels of the widest value as shown, without formatting every value: digits are
    equally wide, so the widest number is an extreme (most digits, with or without a sign);
    texts are measured in polars; dates, yes/no and anything else by distinct value."""
    values = values.drop_nulls()
    if values.is_empty():
        return 0
    if values.dtype == pl.String:
        return int(pixel_widths(values.unique()).max())
    if values.dtype.is_integer() or values.dtype.is_float():
        finite = values.filter(values.is_finite()) if values.dtype.is_float() else values
        candidates = [finite.min(), finite.max()] if len(finite) else []
        if values.dtype.is_float():
            candidates += values.filter(~values.is_finite()).unique().to_list()  # NaN, ±inf
            zeros = finite.filter(finite == 0)
            if len(zeros) and (1.0 / zeros).min() < 0:
                candidates.append(-0.0)  # shown "-0,00", wider than the extremes when none is negative
    else:
        candidates = values.unique().to_list()
    return max(xl_pixel_width(shown_text(column, value)) for value in candidates)


def _width_classes() -> dict[int, str]:
    """A regex character class per pixel width in xl_pixel_width's table."""
    chars: dict[int, list[str]] = {}
    for char, width in CHAR_WIDTHS.items():
        chars.setdefault(width, []).append(char)
    return {width: "[" + "".join(f"\\x{{{ord(c):X}}}" for c in group) + "]" for width, group in chars.items()}


WIDTH_CLASSES = _width_classes()


def pixel_widths(texts: pl.Series) -> pl.Series:
    """xl_pixel_width of each text, in polars: the characters of each width counted."""
    counts = {width: pl.col("t").str.count_matches(pattern) for width, pattern in WIDTH_CLASSES.items()}
    known = pl.sum_horizontal(*counts.values())
    width = pl.sum_horizontal(*(count * width for width, count in counts.items()))
    return pl.DataFrame({"t": texts}).select(
        width + (pl.col("t").str.len_chars() - known) * DEFAULT_CHAR_PIXELS
    ).to_series()


def shown_text(column: str, value: object) -> str:
    """A cell as a Finnish Excel shows it under the column's number format."""
    if isinstance(value, bool):
        return "kyllä" if value else "ei"
    if isinstance(value, dt.date):
        return fi.date(value)
    if isinstance(value, (int, float)):
        number_format = EXCEL_FORMATS.get(column, COUNT)
        decimals = len(number_format.split(".")[1].rstrip(" %")) if "." in number_format else 0
        if number_format == SHARE:
            return fi.number(value * 100, decimals) + " %"
        text = fi.number(value, decimals)
        return text if "," in number_format else text.replace(fi.NBSP, "")
    return str(value)
