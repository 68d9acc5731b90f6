"""Exports of the KPI tables for people who live in Excel: .xlsx with Finnish headers and
number formats, .csv with `;` and decimal comma, and Parquet with the warehouse's names."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import xlsxwriter

from keha_maksatus.finnish import HEADERS_FI
from keha_maksatus.publish import new_build_directory, replace_directory

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
    "haettu_eur": "# ##0.00", "n": "# ##0", "responses": "# ##0",
}


def for_people(frame: pl.DataFrame) -> pl.DataFrame:
    """Finnish column headers, and yes/no in Finnish."""
    return frame.rename({c: HEADERS_FI.get(c, c) for c in frame.columns}).with_columns(
        pl.col(pl.Boolean).replace_strict({True: "kyllä", False: "ei"}, return_dtype=pl.String)
    )


def write_exports(published_path: Path, out_dir: Path) -> list[Path]:
    """Write every KPI table in three formats into out_dir (replaced as a whole)."""
    out_dir = Path(out_dir)
    build = new_build_directory(out_dir)
    con = duckdb.connect(str(published_path), read_only=True)
    try:
        frames = {table: con.sql(f"SELECT * FROM {table}").pl() for table in EXPORTED_TABLES}
    finally:
        con.close()
    names = []
    for table, frame in frames.items():
        name = table.replace(".", "_")
        frame.write_parquet(build / f"{name}.parquet")
        for_people(frame).with_columns(
            pl.col(pl.Date).dt.strftime("%-d.%-m.%Y"),
            pl.col(pl.Float64).round(4),
        ).write_csv(build / f"{name}.csv", separator=";", decimal_comma=True, include_bom=True)
        names.append(name)
    _write_workbook(build / "maksatus_kpi.xlsx", frames)
    replace_directory(build, out_dir)
    return [out_dir / "maksatus_kpi.xlsx"] + [out_dir / f"{n}.{ext}" for n in names for ext in ("csv", "parquet")]


def _write_workbook(path: Path, frames: dict[str, pl.DataFrame]) -> None:
    with xlsxwriter.Workbook(path) as workbook:
        for table, frame in frames.items():
            formats = {HEADERS_FI.get(c, c): EXCEL_FORMATS[c] for c in frame.columns if c in EXCEL_FORMATS}
            for_people(frame).write_excel(
                workbook, worksheet=table.split(".")[1][:31], column_formats=formats,
                dtype_formats={pl.Date: "d.m.yyyy"}, autofit=True, table_style="Table Style Light 9",
            )
