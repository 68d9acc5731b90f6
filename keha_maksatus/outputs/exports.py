"""Exports of the KPI tables for people who live in Excel: .xlsx with Finnish headers and
number formats, .csv with `;` and decimal comma, and Parquet with the warehouse's names.

All three hold what people may see (disclosure): satisfaction figures under 5 responses
are empty cells with a column saying they were withheld. No text cell is ever a formula:
.xlsx cells hold text as strings, and a .csv text cell that would start a formula is
prefixed with `'`.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import xlsxwriter

from keha_maksatus.outputs.disclosure import open_for_people
from keha_maksatus.outputs.finnish import HEADERS_FI
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
)
# Excel number formats by column (Excel shows them with the reader's decimal separator).
EXCEL_FORMATS = {
    "share_within_30_days": "0.0 %", "share_4_5": "0.0 %",
    "value": "0.00", "mean_score": "0.00", "ci_low": "0.00", "ci_high": "0.00", "campaign_value": "0.00", "target": "0.0",
    "mean_days": "0.0", "median_days": "0.0", "p90_days": "0.0", "net_mean_days": "0.0", "net_value": "0.0",
    "haettu_eur": "# ##0.00", "n": "# ##0", "responses": "# ##0", "campaign_n": "# ##0",
}
# Text stays text: xlsxwriter would otherwise write a string starting with `=` as a
# formula, and could turn strings into numbers or hyperlinks.
WORKBOOK_OPTIONS = {"strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False, "nan_inf_to_errors": True}


def in_finnish(frame: pl.DataFrame) -> pl.DataFrame:
    """Finnish column headers, and yes/no in Finnish."""
    return frame.rename({c: HEADERS_FI.get(c, c) for c in frame.columns}).with_columns(
        pl.col(pl.Boolean).replace_strict({True: "kyllä", False: "ei"}, return_dtype=pl.String)
    )


def csv_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text cell that a spreadsheet would take for a formula, prefixed with `'`."""
    text = pl.col(pl.String)
    formula = pl.any_horizontal(*[text.str.starts_with(start) for start in FORMULA_STARTS])
    return frame.with_columns(pl.when(formula).then(pl.lit("'") + text).otherwise(text).name.keep())


def write_exports(published_path: Path, out_dir: Path) -> list[Path]:
    """Write every KPI table in three formats into out_dir (replaced as a whole)."""
    out_dir = Path(out_dir)
    build = new_build_directory(out_dir)
    con = open_for_people(published_path)
    try:
        frames = {table: con.sql(f"SELECT * FROM {table}").pl() for table in EXPORTED_TABLES}
    finally:
        con.close()
    names = []
    for table, frame in frames.items():
        name = table.replace(".", "_")
        frame.write_parquet(build / f"{name}.parquet")
        csv_safe(in_finnish(frame).with_columns(
            pl.col(pl.Date).dt.strftime("%-d.%-m.%Y"),
            pl.col(pl.Float64).round(4),
        )).write_csv(build / f"{name}.csv", separator=";", decimal_comma=True, include_bom=True)
        names.append(name)
    _write_workbook(build / "maksatus_kpi.xlsx", frames)
    replace_directory(build, out_dir)
    return [out_dir / "maksatus_kpi.xlsx"] + [out_dir / f"{n}.{ext}" for n in names for ext in ("csv", "parquet")]


def _write_workbook(path: Path, frames: dict[str, pl.DataFrame]) -> None:
    with xlsxwriter.Workbook(path, WORKBOOK_OPTIONS) as workbook:
        for table, frame in frames.items():
            formats = {HEADERS_FI.get(c, c): EXCEL_FORMATS[c] for c in frame.columns if c in EXCEL_FORMATS}
            in_finnish(frame).write_excel(
                workbook, worksheet=table.split(".")[1][:31], column_formats=formats,
                dtype_formats={pl.Date: "d.m.yyyy"}, autofit=True, table_style="Table Style Light 9",
            )
