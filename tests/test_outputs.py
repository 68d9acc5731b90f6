"""The quality-section report, dashboards and exports on real published data."""

import csv
import datetime as dt

import duckdb
import polars as pl
import pytest

from dashboards.pages import PAGES, PLOTLY_JS, build_dashboards
from keha_maksatus.forecast import tables as forecast_tables
from keha_maksatus.outputs import finnish as fi
from keha_maksatus.outputs.exports import EXPORTED_TABLES, ROLLUP_SHEETS_FI, SHEETS_FI, write_exports
from keha_maksatus.outputs.publish import publish
from keha_maksatus.outputs.report import read_report, render_html, render_markdown, write_report
from keha_maksatus.warehouse import working_path

from conftest import DECISION_HEADER, FEEDBACK_HEADER, build_working, decision, response, write_export


@pytest.fixture
def published(landing, tmp_path):
    write_export(landing, "maksatuspaatokset_2022-12-31.csv", DECISION_HEADER, [
        decision("H1", "1.1.2022", "11.1.2022"), decision("H2", "1.2.2022", "3.3.2022", taydennys="4"),
        decision("H3", "1.12.2022"), decision("H4", "31.2.2022"),
    ])
    write_export(landing, "maksatuspaatokset_2023-02-28.csv", DECISION_HEADER, [decision("H5", "2.1.2023", "12.1.2023")])
    rows = [response(f"V{i}", f"{i + 1}.3.2022", s, tukimuoto="esr") for i, s in enumerate("5454545")]
    rows += [response("W1", "1.4.2022", "1", tukimuoto="eakr", teksti="soita 040 123 4567")]
    write_export(landing, "asiakaspalaute_2022-12-31.csv", FEEDBACK_HEADER, rows)
    con = build_working(landing, tmp_path / "work")
    path = publish(con, working_path(tmp_path / "work"), tmp_path / "pub" / "maksatus.duckdb")
    con.close()
    return path


def test_finnish_number_formats():
    assert fi.number(1234.5, 1) == "1\u00a0234,5"
    assert fi.number(4.2149, 2) == "4,21"
    assert fi.number(None) == fi.DASH
    assert fi.percent(0.625) == "63\u00a0%"  # half up
    assert fi.date(dt.date(2022, 6, 30)) == "30.6.2022"


def test_report_in_finnish_with_targets_and_incomplete_periods(published, tmp_path):
    blocks = read_report(published)
    markdown = render_markdown(blocks)
    # 2022: satisfaction 4.5 over 8 scores incl. 1 -> (4*5+3*4+1)/8 = 4.125; processing time (10 + 30) / 2 = 20.0
    assert "| Asiakastyytyväisyys KEHA-keskuksen maksatuksen palveluihin (1-5) | \\> 4,0 |" in markdown
    assert "4,13 (n = 8)" in markdown and "20,0 (n = 2)" in markdown
    assert "Maksatuspäätösten ka. käsittelyaika (pv) | \\< 30 |" in markdown
    assert "Nettokäsittelyaika ilman täydennysaikaa (pv) | 18,0 | 18,0 |" in markdown
    # 2023 runs only to 28.2.: marked incomplete
    assert "## Vuosi 2023" in markdown and "kesken\\*" in markdown and "Kesken: jakso ei ole päättynyt" in markdown
    assert "päivämäärä ei kelpaa" in markdown  # data-quality summary by rule
    assert "040 123 4567" not in markdown
    page = render_html(blocks)
    assert page.startswith("<!DOCTYPE html>") and '<html lang="fi">' in page and "<script" not in page
    md_path, html_path = write_report(published, tmp_path / "raportti")
    assert md_path.read_text(encoding="utf-8") == markdown and html_path.read_text(encoding="utf-8") == page


def test_dashboards_are_offline_pages_sharing_one_plotly_js(published, tmp_path):
    paths = build_dashboards(published, tmp_path / "dashboards")
    assert [p.name for p in paths] == [page.file_name for page in PAGES]
    assert (tmp_path / "dashboards" / PLOTLY_JS).stat().st_size > 1_000_000
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert f'<script src="{PLOTLY_JS}"></script>' in text
        assert "cdn" not in text.lower() and "http://" not in text and "https://cdn" not in text
        assert text.count('class="plotly-graph-div"') == len(next(p for p in PAGES if p.file_name == path.name).figures)
        assert "040 123 4567" not in text
    # eakr has one response: suppressed, and named as such on the satisfaction page
    satisfaction = (tmp_path / "dashboards" / "asiakastyytyvaisyys.html").read_text(encoding="utf-8")
    assert "piilotettu (alle 5): eakr" in satisfaction


def test_exports_in_three_formats(published, tmp_path):
    write_exports(published, tmp_path / "exports")
    out = tmp_path / "exports"
    for table in EXPORTED_TABLES:
        name = table.replace(".", "_")
        # Five decisions are too few to forecast from: the forecast files are there, empty.
        assert pl.read_parquet(out / f"{name}.parquet").height > 0 or table in forecast_tables.TABLE_COMMENTS
    with (out / "kpi_quality_section.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert rows[0][:3] == ["Mittarin tunnus", "Mittari", "Jakso"]
    value = rows[0].index("Toteuma")
    satisfaction_2022 = next(r for r in rows if r[0] == "maksatus_asiakastyytyvaisyys" and r[2] == "1-12/2022")
    assert satisfaction_2022[value] == "4,125" and satisfaction_2022[rows[0].index("Päättyy")] == "31.12.2022"
    workbook = pl.read_excel(out / "maksatus_kpi.xlsx", sheet_name="Laatuosio")
    assert "Toteuma" in workbook.columns and "Tavoite saavutettu" in workbook.columns
    sheets = pl.read_excel(out / "maksatus_kpi.xlsx", sheet_id=0)
    assert set(sheets) == set(SHEETS_FI.values()) | set(ROLLUP_SHEETS_FI.values())
