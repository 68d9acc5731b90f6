"""The Excel and CSV exports as an analyst opens them: the real .xlsx (a zip of sheet XML,
and polars.read_excel) and the .csv files written from the bundled sample's published file;
and the Finnish number, percent and date formats (Babel's fi_FI) against the hand-written
ones they replaced."""

from __future__ import annotations

import csv
import math
import re
import xml.etree.ElementTree as ET
import zipfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xlsxwriter.utility import xl_col_to_name, xl_pixel_width

from keha_maksatus.config import DEFAULT_LANDING
from keha_maksatus.outputs.exports import (
    ALL, DATE_FORMAT, EXCEL_FORMATS, EXPORTED_TABLES, FILTER_BUTTON_PIXELS, PADDING_PIXELS, ROLLUP_SHEETS_FI, SHEETS_FI,
    WORKBOOK_MAX_ROWS, WORKBOOK_TABLE_MAX_ROWS, Sheet, column_width, in_finnish, pixel_widths, sheets_of, workbook_rows,
    write_csv, write_exports,
)
from keha_maksatus.outputs.exports import shown_text as exporter_shown_text
from keha_maksatus.outputs import finnish as fi
from keha_maksatus.outputs.disclosure import open_for_people
from keha_maksatus.outputs.finnish import HEADERS_FI
from keha_maksatus.outputs.publish import publish
from keha_maksatus.warehouse import working_path

from conftest import build_working

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
BUILT_IN_FORMATS = {0: "General", 1: "0", 2: "0.00", 3: "#,##0", 4: "#,##0.00", 9: "0%", 10: "0.00%", 14: "m/d/yyyy"}
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


def workbook_sheets(path: Path) -> dict[str, dict]:
    """Per sheet name: its worksheet XML root, its table XML roots and the number format
    of each cell style (resolved through styles.xml)."""
    with zipfile.ZipFile(path) as book:
        workbook = ET.fromstring(book.read("xl/workbook.xml"))
        rels = ET.fromstring(book.read("xl/_rels/workbook.xml.rels"))
        targets = {r.get("Id"): r.get("Target") for r in rels}
        styles = ET.fromstring(book.read("xl/styles.xml"))
        custom = {int(f.get("numFmtId")): f.get("formatCode") for f in styles.iter(f"{{{NS['m']}}}numFmt")}
        cell_formats = [
            {**BUILT_IN_FORMATS, **custom}[int(xf.get("numFmtId"))] for xf in styles.find("m:cellXfs", NS).findall("m:xf", NS)
        ]
        sheets = {}
        for sheet in workbook.find("m:sheets", NS):
            target = "xl/" + targets[sheet.get(REL)].removeprefix("/xl/")
            root = ET.fromstring(book.read(target))
            sheet_rels = target.replace("worksheets/", "worksheets/_rels/") + ".rels"
            tables = [
                ET.fromstring(book.read("xl/" + r.get("Target").replace("../", "")))
                for r in ET.fromstring(book.read(sheet_rels)) if r.get("Target").startswith("../tables/")
            ]
            sheets[sheet.get("name")] = {"root": root, "tables": tables, "formats": cell_formats}
    return sheets


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


def test_one_number_style_years_plain_and_thousands_alike(sample_exports):
    _, exports = sample_exports
    sheets = workbook_sheets(exports / "maksatus_kpi.xlsx")
    book = pl.read_excel(exports / "maksatus_kpi.xlsx", sheet_id=0)
    by_header = {HEADERS_FI.get(c, c): f for c, f in EXCEL_FORMATS.items()}
    for name, sheet in sheets.items():
        rows = sheet["root"].find("m:sheetData", NS).findall("m:row", NS)
        headers = {re.sub(r"\d", "", c.get("r")): h for c, h in zip(rows[0].findall("m:c", NS), book[name].columns)}
        for row in rows[1:]:
            for cell in row.findall("m:c", NS):
                if cell.get("t") is not None or cell.find("m:v", NS) is None:
                    continue  # text, or an empty (withheld) cell
                header = headers[re.sub(r"\d", "", cell.get("r"))]
                shown = sheet["formats"][int(cell.get("s", 0))]
                assert shown == by_header.get(header, DATE_FORMAT), (name, cell.get("r"), header, shown)
    for shown in {f for s in sheets.values() for f in s["formats"]} - {"General"}:
        assert shown in ("0", "#,##0", "#,##0.0", "#,##0.00", "0.0 %", DATE_FORMAT), shown
    assert by_header["Vuosi"] == "0" and by_header["Lukumäärä"] == by_header["Vastauksia"] == "#,##0"
    # .csv: plain integers (a year is 2021), decimal comma, no thousands separators
    years = [row["Vuosi"] for row in read_csv(exports / "kpi_satisfaction_by_instrument.csv")]
    assert years and all(re.fullmatch(r"20\d\d", y) for y in years)
    for path in exports.glob("*.csv"):
        for row in read_csv(path):
            for header, field in row.items():
                if header in by_header and field:
                    assert re.fullmatch(r"-?\d+(,\d{1,4})?", field), (path.name, header, field)


def test_csv_numbers_are_rounded_half_up_to_four_decimals(tmp_path):
    frame = pl.DataFrame({"year": [2021, 2022], "n": [12345, 7], "mean_score": [1 / 32, 4.125], "haettu_eur": [1234567.5, None]})
    write_csv(frame, tmp_path / "x.csv")
    assert read_csv(tmp_path / "x.csv") == [
        {"Vuosi": "2021", "Lukumäärä": "12345", "Keskiarvo": "0,0313", "Haettu (EUR)": "1234567,5"},
        {"Vuosi": "2022", "Lukumäärä": "7", "Keskiarvo": "4,125", "Haettu (EUR)": ""},
    ]


def shown_text(value: object, number_format: str) -> str:
    """A value as the column's format shows it (independently of the exporter's own code)."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if number_format == "0.0 %":
            return f"{value * 100:.1f} %"
        decimals = len(number_format.partition(".")[2])
        return f"{value:,.{decimals}f}" if "," in number_format else f"{value:.{decimals}f}"
    if hasattr(value, "year"):
        return "30.12.2022"
    return str(value)


def test_sheets_in_finnish_header_frozen_filter_on_widths_fit(sample_exports):
    _, exports = sample_exports
    sheets = workbook_sheets(exports / "maksatus_kpi.xlsx")
    expected = [SHEETS_FI[t] for t in EXPORTED_TABLES]
    expected.insert(expected.index(PROCESSING_DETAIL) + 1, PROCESSING_ROLLUPS)
    expected.insert(expected.index(SATISFACTION_DETAIL) + 1, SATISFACTION_ROLLUPS)
    assert list(sheets) == expected
    assert len(set(expected)) == len(expected) and all(len(name) <= 31 for name in expected)
    assert not any("_" in name for name in expected)  # Finnish words, not the warehouse's names
    book = pl.read_excel(exports / "maksatus_kpi.xlsx", sheet_id=0)
    by_header = {HEADERS_FI.get(c, c): f for c, f in EXCEL_FORMATS.items()}
    for name, sheet in sheets.items():
        pane = sheet["root"].find("m:sheetViews/m:sheetView/m:pane", NS)
        assert (pane.get("state"), pane.get("ySplit"), pane.get("topLeftCell")) == ("frozen", "1", "A2"), name
        frame = book[name]
        (table,) = sheet["tables"]
        last_column = xl_col_to_name(frame.width - 1)  # the forecast sheet runs past Z
        assert table.find("m:autoFilter", NS).get("ref") == f"A1:{last_column}{frame.height + 1}", name
        widths = {int(c.get("min")): float(c.get("width")) for c in sheet["root"].iter(f"{{{NS['m']}}}col")}
        for index, header in enumerate(frame.columns, 1):
            texts = [shown_text(v, by_header.get(header, "")) for v in frame[header].to_list()]
            # Calibri 11 pixels; 16 for the filter button beside the header
            needed = max([xl_pixel_width(header) + 16] + [xl_pixel_width(t) for t in texts])
            pixels = widths[index] * 7 + 5  # Excel's width is in digit widths, plus 5 pixels of margin
            assert needed <= pixels <= needed + 40, (name, header, needed, pixels)


# -- widths without formatting every cell, against formatting every cell


def exhaustive_width(column: str, values: pl.Series) -> int:
    """The width as it was computed before: every value formatted and measured."""
    header = xl_pixel_width(HEADERS_FI.get(column, column)) + FILTER_BUTTON_PIXELS
    shown = [exporter_shown_text(column, value) for value in values.drop_nulls().to_list()]
    return max([header] + [xl_pixel_width(text) for text in shown]) + PADDING_PIXELS


# narrow and wide characters (a long text of i's is narrower than a short one of W's),
# Finnish letters, the no-break space, and anything else (8 pixels each)
texts = st.one_of(st.text(alphabet=st.sampled_from("iIl.,:WMm@% 0\u00a0äöÅ€"), max_size=40), st.text(max_size=30))
numeric_columns = st.sampled_from(["year", "n", "mean_days", "mean_score", "share_4_5", "haettu_eur", "not_formatted"])
# (Babel's formatting, the old width's too, gives up on numbers past ~1e27)
floats = st.one_of(
    st.floats(-1e15, 1e15), st.floats(-1e7, 1e7),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 0.05, -0.05, 999.95, -999.95]),
)


@settings(max_examples=300, deadline=None)
@given(numeric_columns, st.one_of(
    st.lists(st.one_of(st.none(), st.integers(-10**13, 10**13)), max_size=30).map(lambda v: pl.Series(v, dtype=pl.Int64)),
    st.lists(st.one_of(st.none(), floats), max_size=30).map(lambda v: pl.Series(v, dtype=pl.Float64)),
))
def test_width_of_numbers_from_their_extremes_is_the_exhaustive_one(column, values):
    assert column_width(column, values) == exhaustive_width(column, values)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["saapunut", "as_of", "hakemus_id", "period_label", "complete", "x"]), st.one_of(
    st.lists(st.one_of(st.none(), st.dates()), max_size=30).map(lambda v: pl.Series(v, dtype=pl.Date)),
    st.lists(st.one_of(st.none(), st.booleans()), max_size=30).map(lambda v: pl.Series(v, dtype=pl.Boolean)),
    st.lists(st.one_of(st.none(), texts), max_size=30).map(lambda v: pl.Series(v, dtype=pl.String)),
))
def test_width_of_dates_yes_no_and_texts_is_the_exhaustive_one(column, values):
    assert column_width(column, values) == exhaustive_width(column, values)


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, min_size=1, max_size=20))
def test_pixel_widths_in_polars_are_xlsxwriters(strings):
    assert pixel_widths(pl.Series(strings, dtype=pl.String)).to_list() == [xl_pixel_width(t) for t in strings]


# -- a bounded workbook: long tables keep the rows that weigh most, the files keep all


def sheet_note(exports_dir: Path, sheet: str) -> str | None:
    """The note in A1 when the first row holds it alone (otherwise the row is the header)."""
    first = pl.read_excel(exports_dir / "maksatus_kpi.xlsx", sheet_name=sheet, has_header=False, read_options={"n_rows": 1})
    cells = [value for value in first.row(0) if value is not None]
    return cells[0] if len(cells) == 1 and first.width > 1 else None


def test_a_long_table_keeps_its_weightiest_rows_in_the_workbook_and_all_in_the_files(sample_exports, tmp_path):
    published, _ = sample_exports
    cap = 7
    write_exports(published, tmp_path / "exports", max_rows=cap)
    out = tmp_path / "exports"
    con = open_for_people(published)  # the tables as the exports read them
    try:
        weightiest = [r[0] for r in con.execute(
            "SELECT hakemus_id FROM kpi.pending_at_risk ORDER BY expected_effect_days DESC NULLS LAST, saapunut, hakemus_id"
        ).fetchall()]
        frames = {table: con.sql(f"SELECT * FROM {table}").pl() for table in EXPORTED_TABLES}
    finally:
        con.close()
    pending = len(weightiest)
    assert pending > cap
    book = workbook_sheets(out / "maksatus_kpi.xlsx")
    name = SHEETS_FI["kpi.pending_at_risk"]
    note = sheet_note(out, name)
    assert note == f"Työkirjassa {cap} eniten vaikuttavaa hakemusta; kaikki {pending:,} tiedostoissa kpi_pending_at_risk.csv ja .parquet".replace(",", fi.NBSP)
    sheet = pl.read_excel(out / "maksatus_kpi.xlsx", sheet_name=name, read_options={"header_row": 1})
    assert sheet["Hakemus"].to_list() == weightiest[:cap]
    assert sheet["Odotettu vaikutus jakson keskiarvoon (pv)"].to_list() == sorted(sheet["Odotettu vaikutus jakson keskiarvoon (pv)"], reverse=True)
    # the note and the header stay in view; the table and its filter start below the note
    pane = book[name]["root"].find("m:sheetViews/m:sheetView/m:pane", NS)
    assert (pane.get("ySplit"), pane.get("topLeftCell")) == ("2", "A3")
    (table,) = book[name]["tables"]
    assert table.find("m:autoFilter", NS).get("ref") == f"A2:{xl_col_to_name(sheet.width - 1)}{cap + 2}"
    # the .csv and .parquet hold every application
    assert [row["Hakemus"] for row in read_csv(out / "kpi_pending_at_risk.csv")] == weightiest
    assert pl.read_parquet(out / "kpi_pending_at_risk.parquet").height == pending
    # every other sheet: over the cap, its first rows and a note naming its own files; otherwise whole, no note
    capped = 0
    for table_name, frame in frames.items():
        for part in sheets_of(table_name, frame):
            note = sheet_note(out, part.name)
            rows = pl.read_excel(out / "maksatus_kpi.xlsx", sheet_name=part.name, read_options={"header_row": 1 if note else 0})
            csv_rows = read_csv(out / f"{part.file_stem}.csv")
            assert len(csv_rows) == part.frame.height, part.name
            if part.frame.height <= cap:
                assert note is None and rows.height == part.frame.height, part.name
                continue
            capped += 1
            assert rows.height == cap, part.name
            parquet = part.table.replace(".", "_") + ".parquet"
            files = f"{part.file_stem}.csv ja " + (".parquet" if part.file_stem + ".parquet" == parquet else parquet)
            kept = "eniten vaikuttavaa hakemusta" if part.table == "kpi.pending_at_risk" else "ensimmäistä riviä"
            assert note == f"Työkirjassa {cap} {kept}; kaikki {part.frame.height:,} tiedostoissa {files}".replace(",", fi.NBSP)
            if part.table != "kpi.pending_at_risk":  # the table's own order: its first rows
                first = in_finnish(part.frame.head(cap))
                text_columns = [c for c, dtype in first.schema.items() if dtype == pl.String]
                assert text_columns and rows.select(text_columns).cast(pl.String).equals(first.select(text_columns)), part.name
    assert capped >= 4  # the monthly tables' detail and roll-up sheets too


# -- Finnish formats (keha_maksatus.outputs.finnish, Babel's fi_FI) against the hand-written ones

OLD_MONTHS = ("tammi", "helmi", "maalis", "huhti", "touko", "kesä", "heinä", "elo", "syys", "loka", "marras", "joulu")


def old_number(value: float | int | Decimal, decimals: int = 0) -> str:
    """The hand-written format that Babel replaced."""
    exact = value if isinstance(value, Decimal) else Decimal(repr(value))
    rounded = exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{rounded:,.{decimals}f}".replace(",", fi.NBSP).replace(".", ",")


finite = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False)
halves = st.builds(lambda whole, decimals: (whole + 0.5) / 10**decimals, st.integers(-10**6, 10**6), st.integers(0, 3))


@settings(max_examples=1000, deadline=None)
@given(st.one_of(finite, halves, st.integers(-10**15, 10**15)), st.integers(0, 4))
def test_babel_number_is_the_hand_written_one(value, decimals):
    assert fi.number(value, decimals) == old_number(value, decimals)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.floats(min_value=-10, max_value=10, allow_nan=False), halves.map(lambda h: h / 100)))
def test_babel_percent_rounds_the_share_as_written(share):
    """The one difference: the hand-written format multiplied by 100 in binary floating
    point (0.145 * 100 = 14.499999999999998 -> 14 %); Babel multiplies the share as written
    (14.5 -> 15 %), which is what half up promises."""
    as_written = Decimal(repr(share)) * 100
    assert fi.percent(share) == old_number(as_written) + "\u00a0%"
    if Decimal(repr(share * 100)) == as_written:
        assert fi.percent(share) == old_number(share * 100) + "\u00a0%"


def test_finnish_formats_keep_half_up_and_the_dash():
    assert fi.number(4.125, 2) == "4,13" and fi.number(2.5) == "3" and fi.number(-2.5) == "-3"
    assert fi.number(1234567.891, 2) == "1\u00a0234\u00a0567,89"
    assert fi.percent(0.145) == "15\u00a0%" and fi.percent(None) == fi.number(None) == fi.date(None) == fi.DASH


@settings(max_examples=500, deadline=None)
@given(st.dates())
def test_babel_date_and_month_are_the_hand_written_ones(day):
    assert fi.date(day) == f"{day.day}.{day.month}.{day.year}"
    assert fi.month(day) == f"{OLD_MONTHS[day.month - 1]}kuu {day.year}"


def test_the_list_of_pending_applications_at_risk_has_a_cap_of_its_own(sample_exports):
    published, _ = sample_exports
    con = open_for_people(published)
    try:
        pending = con.sql("SELECT * FROM kpi.pending_at_risk").pl()
        monthly = con.sql("SELECT * FROM kpi.processing_time_monthly WHERE tukimuoto IS NOT NULL AND yksikko IS NOT NULL").pl()
    finally:
        con.close()
    own_cap = WORKBOOK_TABLE_MAX_ROWS["kpi.pending_at_risk"]
    assert own_cap < WORKBOOK_MAX_ROWS
    many = pl.concat([pending] * (own_cap // pending.height + 1)).head(own_cap + 1)
    rows, note = workbook_rows(Sheet("kpi.pending_at_risk", "x", "x", many), WORKBOOK_MAX_ROWS)
    assert rows.height == own_cap and note is not None
    rows, note = workbook_rows(Sheet("kpi.pending_at_risk", "x", "x", many.head(own_cap)), WORKBOOK_MAX_ROWS)
    assert rows.height == own_cap and note is None
    # other tables keep the general cap: a monthly table longer than the list's cap stays whole
    longer = pl.concat([monthly] * (own_cap // monthly.height + 1)).head(own_cap + 1)
    rows, note = workbook_rows(Sheet("kpi.processing_time_monthly", "x", "x", longer), WORKBOOK_MAX_ROWS)
    assert rows.height == own_cap + 1 and note is None
