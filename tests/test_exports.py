"""The Excel and CSV exports as an analyst opens them: the real .xlsx (a zip of sheet XML,
and polars.read_excel) and the .csv files written from the bundled sample's published file."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import polars as pl
import pytest

from keha_maksatus.config import DEFAULT_LANDING
from keha_maksatus.outputs.exports import (
    ALL, ROLLUP_SHEETS_FI, SHEETS_FI, write_exports,
)
from keha_maksatus.outputs.publish import publish
from keha_maksatus.warehouse import working_path

from conftest import build_working

PROCESSING_DETAIL, PROCESSING_ROLLUPS = SHEETS_FI["kpi.processing_time_monthly"], ROLLUP_SHEETS_FI["kpi.processing_time_monthly"]
SATISFACTION_DETAIL, SATISFACTION_ROLLUPS = SHEETS_FI["kpi.satisfaction_monthly"], ROLLUP_SHEETS_FI["kpi.satisfaction_monthly"]


@pytest.fixture(scope="module")
def sample_exports(tmp_path_factory) -> tuple[Path, Path]:
    """The bundled sample ingested, published and exported: (published file, exports folder)."""
    base = tmp_path_factory.mktemp("sample_exports")
    con = build_working(DEFAULT_LANDING, base / "work")
    published = publish(con, working_path(base / "work"), base / "pub" / "maksatus.duckdb")
    con.close()
    write_exports(published, base / "exports")
    return published, base / "exports"


def published_value(published: Path, sql: str):
    con = duckdb.connect(str(published), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def test_detail_rows_of_processing_time_sum_to_the_decided_applications(sample_exports):
    published, exports = sample_exports
    decided = published_value(published, "SELECT count(*) FROM core.decisions WHERE paatetty IS NOT NULL")
    assert decided > 1000
    book = pl.read_excel(exports / "maksatus_kpi.xlsx", sheet_id=0)
    detail, rollups = book[PROCESSING_DETAIL], book[PROCESSING_ROLLUPS]
    assert detail["Lukumäärä"].sum() == decided
    assert detail["Tukimuoto"].null_count() == detail["Yksikkö"].null_count() == 0
    assert ALL not in detail["Tukimuoto"].to_list() + detail["Yksikkö"].to_list()
    # every roll-up says what it sums over; each of the three kinds sums to the same total
    assert ((rollups["Tukimuoto"] == ALL) | (rollups["Yksikkö"] == ALL)).all()
    for kind in (
        (pl.col("Tukimuoto") == ALL) & (pl.col("Yksikkö") == ALL),
        (pl.col("Tukimuoto") == ALL) & (pl.col("Yksikkö") != ALL),
        (pl.col("Tukimuoto") != ALL) & (pl.col("Yksikkö") == ALL),
    ):
        assert rollups.filter(kind)["Lukumäärä"].sum() == decided
    # the .csv of the sheet sums the same; the Parquet keeps the warehouse table whole
    assert sum(int(row["Lukumäärä"]) for row in read_csv(exports / "kpi_processing_time_monthly.csv")) == decided
    assert len(read_csv(exports / "kpi_processing_time_monthly_yhteensa.csv")) == rollups.height
    whole = pl.read_parquet(exports / "kpi_processing_time_monthly.parquet")
    assert whole.height == detail.height + rollups.height
    assert whole.filter(pl.col("tukimuoto").is_null() & pl.col("yksikko").is_null())["n"].sum() == decided


def test_satisfaction_roll_ups_apart_from_the_instruments(sample_exports):
    published, exports = sample_exports
    book = pl.read_excel(exports / "maksatus_kpi.xlsx", sheet_id=0)
    detail, rollups = book[SATISFACTION_DETAIL], book[SATISFACTION_ROLLUPS]
    assert detail["Tukimuoto"].null_count() == 0 and ALL not in detail["Tukimuoto"].to_list()
    assert rollups["Tukimuoto"].to_list() == [ALL] * rollups.height
    assert detail["Vastauksia"].sum() == rollups["Vastauksia"].sum() == published_value(
        published, "SELECT count(*) FROM core.feedback WHERE palvelu = 'maksatus'"
    )
