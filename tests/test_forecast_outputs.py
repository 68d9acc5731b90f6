"""The year-end forecast where people see it (issue 11, items 8 and 9): the report's section
"Ennuste vuoden lopun toteumasta", the dashboard page Ennuste and the exports' forecast
sheets, on real published warehouses in tmp_path.

A generated two-year landing is cut to an extract of 31.10.2022 (the applications decided
later still pending, the responses answered later not yet there), so that 1-12/2022 is
running; the real `keha-maksatus run` publishes it. Every figure the outputs show is
compared with the published tables, formatted here independently of the code (Finnish
decimal comma, rounded half up). Two smaller warehouses go through the library: the
same data uncut (no period running) and one whose running year has 3 responses.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from dashboards.figures import FORECAST_HIDDEN_FI, NO_FORECAST_FI
from dashboards.pages import PAGES
from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.kpi import MIN_CELL_RESPONSES
from keha_maksatus.outputs.exports import SHEETS_FI
from keha_maksatus.outputs.publish import output_folders
from keha_maksatus.outputs.report import NO_FORECAST_FI as REPORT_NO_FORECAST_FI
from keha_maksatus.outputs.report import REPORT_NAME
from keha_maksatus.sample import write_sample

from conftest import FEEDBACK_HEADER, needs_chromium, response, write_export
from output_scan import formula_cells
from test_output_safety import (
    check_outputs, inline_text, markdown_parser, markdown_tables, plotly_figures, read_html, run_outputs,
    searchable_hidden, suppressed_figures, walk,
)

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "keha-maksatus"
AS_OF = dt.date(2022, 10, 31)
NBSP = "\u00a0"
FORECAST_TABLES = ("kpi.forecast", "kpi.forecast_fan", "kpi.pending_at_risk", "kpi.forecast_what_if")
PAGE = next(p for p in PAGES if p.file_name == "ennuste.html")


# -- Finnish formats, written here apart from keha_maksatus.outputs.finnish ----------------


def number(value: float, decimals: int = 0) -> str:
    rounded = Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{rounded:,.{decimals}f}".replace(",", NBSP).replace(".", ",")


def chance(share: float) -> str:
    """A probability as the outputs write it: whole percent, never 0 % or 100 %."""
    if share < 0.005:
        return f"alle 1{NBSP}%"
    if share >= 0.995:
        return f"yli 99{NBSP}%"
    return f"{number(share * 100)}{NBSP}%"


def values(array) -> list:
    """A plotly data array as numbers: a list, or a typed array (base64 bytes with a dtype)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def day(value: dt.date) -> str:
    return f"{value.day}.{value.month}.{value.year}"


# -- landings ------------------------------------------------------------------------------


def _date(column: str) -> pl.Expr:
    return pl.col(column).str.slice(0, 10).str.strip_chars().str.to_date("%d.%m.%Y", strict=False)


def cut_landing(generated: Path, landing: Path, cut: dt.date) -> None:
    """The generated extracts as they stood on `cut`: earlier extracts as they are, the later
    ones merged (a later row wins) into one extract dated `cut`, holding the applications
    received by then (decided later = still pending) and the responses answered by then."""
    landing.mkdir(parents=True)
    later: dict[str, list[pl.DataFrame]] = {"maksatuspaatokset": [], "asiakaspalaute": []}
    for path in sorted(generated.iterdir()):
        prefix, extract = path.stem.split("_")[0], dt.date.fromisoformat(path.stem.split("_")[1])
        if extract <= cut:
            shutil.copy(path, landing / path.name)
        else:
            later[prefix].append(pl.read_csv(path, separator=";", infer_schema=False))
    for prefix, frames in later.items():
        if not frames:
            continue
        key = "hakemus_id" if prefix == "maksatuspaatokset" else "vastaus_id"
        frame = pl.concat(frames).unique(key, keep="last", maintain_order=True)
        if prefix == "maksatuspaatokset":
            pending = _date("paatetty") > cut
            frame = frame.filter(_date("saapunut") <= cut).with_columns(
                pl.when(pending).then(None).otherwise(pl.col(c)).alias(c) for c in ("paatetty", "paatos", "maksettu_eur")
            )
        else:
            frame = frame.filter(_date("vastattu") <= cut)
        frame.write_csv(landing / f"{prefix}_{cut.isoformat()}.csv", separator=";")


def generate(folder: Path) -> Path:
    write_sample(folder, decisions=3000, feedback=1500, seed=7, csv_only=True, first_year=2021, last_year=2022)
    return folder


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Path:
    """The real command on a landing whose newest extracts are of 31.10.2022; the published file."""
    base = tmp_path_factory.mktemp("running")
    cut_landing(generate(base / "generated"), base / "landing", AS_OF)
    published = base / "wh" / "maksatus.duckdb"
    env = {**os.environ, "KEHA_PSEUDONYM_KEY": "forecast-outputs-test-key"}  # DAGSTER_HOME: the tests' (conftest)
    done = subprocess.run([str(CLI), "run", "--landing", str(base / "landing"), "--warehouse", str(published)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    return published


def table(published: Path, name: str) -> pl.DataFrame:
    con = duckdb.connect(str(published), read_only=True)
    try:
        return con.sql(f"SELECT * FROM {name}").pl()
    finally:
        con.close()


def report_markdown(published: Path) -> str:
    return (output_folders(published).report / f"{REPORT_NAME}.md").read_text(encoding="utf-8")


def forecast_section(markdown: str) -> tuple[list[list[list[str]]], list[str]]:
    """The report's forecast section: its tables (rows of cell texts) and paragraphs."""
    tokens = markdown_parser().parse(markdown)
    headings = [i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"]
    start = next(i for i in headings if inline_text(tokens[i + 1]) == "Ennuste vuoden lopun toteumasta")
    end = next((i for i in headings if i > start), len(tokens))
    section = tokens[start:end]
    paragraphs = [inline_text(section[i + 1]) for i, t in enumerate(section) if t.type == "paragraph_open"]
    return markdown_tables(section), paragraphs


# -- the running year ----------------------------------------------------------------------


def test_the_running_year_has_a_forecast_for_both_indicators(running):
    forecast = table(running, "kpi.forecast")
    assert sorted(forecast["indicator"]) == sorted([PROCESSING_TIME, SATISFACTION])
    assert set(forecast["period_label"]) == {"1-12/2022"} and set(forecast["as_of"]) == {AS_OF}
    assert (forecast["seen_n"] >= MIN_CELL_RESPONSES).all()
    for name in FORECAST_TABLES:
        assert table(running, name).height > 0, name


def test_report_section_figures_equal_the_forecast_table(running):
    forecast = table(running, "kpi.forecast")
    tables, paragraphs = forecast_section(report_markdown(running))
    summary = next(t for t in tables if t[0][0] == "Mittari")
    assert len(summary) == 1 + forecast.height
    for row in forecast.iter_rows(named=True):
        decimals = 1 if row["indicator"] == PROCESSING_TIME else 2
        cells = next(r for r in summary[1:] if r[0] == ("Käsittelyaika (pv)" if decimals == 1 else "Asiakastyytyväisyys (1–5)"))
        assert cells[1] == row["period_label"]
        assert cells[2] == f"{number(row['seen_value'], decimals)} (n = {number(row['seen_n'])}, {day(row['as_of'])})"
        assert cells[3] == number(row["median"], decimals)
        assert cells[4] == f"{number(row['low_80'], decimals)}–{number(row['high_80'], decimals)}"
        assert cells[5] == f"{number(row['low_95'], decimals)}–{number(row['high_95'], decimals)}"
        assert cells[6] == f"{row['target_op']} {number(row['target'], 0 if decimals == 1 else 1)}"
        assert cells[7] == chance(row["probability_meets_target"])
        unit = " pv" if decimals == 1 else ""
        words = next(p for p in paragraphs if p.startswith(f"Tilanne {day(row['as_of'])}") and row["period_label"] in p
                     and (("käsittelyaika" in p) == (decimals == 1)))
        assert f"on tähän mennessä {number(row['seen_value'], decimals)}{unit}" in words
        assert f"ennusteväli on {number(row['low_80'], decimals)}–{number(row['high_80'], decimals)}{unit}" in words
        assert f"{chance(row['probability_meets_target'])}:n todennäköisyydellä" in words
        assert f"jakson loppuun {number(row['days_left'])} päivää" in words
        basis = next(p for p in paragraphs if p.startswith("Ennuste perustuu") and
                     (("vireillä" in p) == (decimals == 1)))
        assert f"Simulointeja {number(row['draws'])}, siemenluku {row['seed']}" in basis
        assert f"{number(row['basis_n'])} {'päätöksestä' if decimals == 1 else 'vastauksesta'}" in basis
        assert f"noin {number(row['expected_arrivals'])}" in basis or f"arviolta {number(row['expected_arrivals'])}" in basis
        if decimals == 1:
            assert f"vireillä on {number(row['pending_n'])} hakemusta, joista arviolta {number(row['pending_expected_in_period'])}" in basis
            assert f"noin {number(row['arrivals_expected_in_period'])} ehditään päättää" in basis
    method = [p for p in paragraphs if p.startswith("Menetelmä")]
    assert len(method) == forecast.height and any("Kaplan–Meier" in p for p in method)


def test_report_what_if_and_offices_follow_their_tables(running):
    levers = table(running, "kpi.forecast_what_if")
    pending = table(running, "kpi.pending_at_risk")
    markdown = report_markdown(running)
    tables, paragraphs = forecast_section(markdown)
    what_if = next(t for t in tables if t[0][0].startswith("Vanhimmat vireillä olevat"))
    dates = sorted(set(levers["decided_by"]))
    assert what_if[0][1:] == [f"{day(d)} mennessä" for d in dates]
    counts = sorted(set(levers["oldest_n"]))
    assert [int(re.sub(r"\D", "", r[0])) for r in what_if[1:]] == counts
    for lever in levers.iter_rows(named=True):
        cells = what_if[1 + counts.index(lever["oldest_n"])]
        assert cells[1 + dates.index(lever["decided_by"])] == (
            f"{number(lever['median'], 1)} pv ({chance(lever['probability_meets_target'])})"
        )
    example = next(p for p in paragraphs if p.startswith("Esimerkki: jos "))
    count, date = re.match(r"Esimerkki: jos (\d+) vanhinta vireillä olevaa hakemusta päätetään (\S+) mennessä", example).groups()
    lever = levers.filter(pl.col("oldest_n") == int(count), pl.col("decided_by").map_elements(day, return_dtype=pl.String) == date)
    assert f"käsittelyajan ennuste on {number(lever['median'][0], 1)} pv" in example

    offices = next(t for t in tables if t[0][0] == "Yksikkö")
    total = next(r for r in offices if r[0] == "yhteensä")
    assert total[1] == number(pending.height)
    assert total[2] == number(pending["probability_over_30_days"].sum())
    by_office = pending.group_by("yksikko").agg(pl.len().alias("n"), pl.col("expected_effect_days").sum().alias("effect"))
    top = by_office.sort("effect", descending=True).row(0, named=True)
    assert offices[1][:2] == [top["yksikko"], number(top["n"])]
    # by office and by count only: no application id reaches the ministry's report
    assert not any(hakemus in markdown for hakemus in pending["hakemus_id"])


def test_dashboard_page_shows_the_fan_the_offices_and_the_top_applications(running):
    page_path = output_folders(running).dashboards / PAGE.file_name
    page = read_html(page_path.read_text(encoding="utf-8"))
    figures = [f for script in page.scripts for f in plotly_figures(script)]
    assert len(figures) == len(PAGE.figures)
    fan = table(running, "kpi.forecast_fan").sort("date")
    for index, indicator in ((1, PROCESSING_TIME), (2, SATISFACTION)):
        data, layout = figures[index]
        rows = fan.filter(pl.col("indicator") == indicator)
        observed, ahead = rows.filter(pl.col("observed")), rows.filter(~pl.col("observed"))
        traces = {t.get("name", ""): t for t in data}
        assert values(traces["Ennuste (mediaani)"]["y"]) == observed["value"].tail(1).to_list() + ahead["value"].to_list()
        assert traces["Ennuste (mediaani)"]["line"]["dash"] == "dash"
        assert values(next(t for n, t in traces.items() if n.startswith("Toteuma"))["y"]) == observed["value"].to_list()
        assert {"95 %:n ennusteväli", "80 %:n ennusteväli"} <= set(traces)
        band = values(traces["80 %:n ennusteväli"]["y"])  # up along the upper ends, back along the lower
        assert band == [observed["value"][-1], *ahead["high_80"], *ahead["low_80"].reverse(), observed["value"][-1]]
        target = next(t for n, t in traces.items() if n.startswith("Tavoite"))
        assert values(target["y"]) == ([30.0, 30.0] if indicator == PROCESSING_TIME else [4.0, 4.0])
        assert layout["xaxis"]["title"]["text"].startswith("päivä 2022") and "1.1. alkaen" in layout["yaxis"]["title"]["text"]
    # the top applications, in the order of their expected effect
    top = table(running, "kpi.pending_at_risk").sort(["expected_effect_days", "saapunut", "hakemus_id"],
                                                     descending=[True, False, False]).head(25)
    cells = page.cells
    header = cells.index("Hakemus")
    shown = [cells[i] for i in range(header + 9, len(cells), 9)][:25]
    assert shown == top["hakemus_id"].to_list()


@needs_chromium
def test_dashboard_page_loads_in_chromium_without_errors(running, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto((output_folders(running).dashboards / PAGE.file_name).as_uri())
        page.wait_for_function("n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n",
                               arg=len(PAGE.figures), timeout=20000)
        assert page.locator(".js-plotly-plot").count() == len(PAGE.figures)
        assert page.locator("#figure-1 .scatterlayer .trace").count() >= 5  # bands, observed, median, target
        assert page.locator("#figure-3 .barlayer .point").count() > 0  # the offices
        assert page.locator("table").count() == 2 and page.locator("table").nth(1).locator("tbody tr").count() == 25
        assert "Ennuste" in page.locator("nav a.current").inner_text()
        assert errors == []
    finally:
        page.close()


def test_exports_hold_the_forecast_sheets(running):
    exports = output_folders(running).exports
    book = pl.read_excel(exports / "maksatus_kpi.xlsx", sheet_id=0)
    for name in FORECAST_TABLES:
        warehouse = table(running, name)
        sheet = book[SHEETS_FI[name]]
        assert sheet.height == warehouse.height, name
        assert not any("_" in column for column in sheet.columns), name  # Finnish headers
        stem = name.replace(".", "_")
        with (exports / f"{stem}.csv").open(encoding="utf-8-sig", newline="") as handle:
            assert len(list(csv.DictReader(handle, delimiter=";"))) == warehouse.height
        assert pl.read_parquet(exports / f"{stem}.parquet").height == warehouse.height
    forecast = book[SHEETS_FI["kpi.forecast"]]
    processing = forecast.filter(pl.col("Mittarin tunnus") == PROCESSING_TIME).row(0, named=True)
    expected = table(running, "kpi.forecast").filter(pl.col("indicator") == PROCESSING_TIME).row(0, named=True)
    assert processing["Ennuste (mediaani)"] == pytest.approx(expected["median"])
    assert processing["Tavoitteen saavuttamisen todennäköisyys"] == pytest.approx(expected["probability_meets_target"])
    fan = book[SHEETS_FI["kpi.forecast_fan"]]
    assert "Kertymä 1.1. alkaen (toteuma tai ennusteen mediaani)" in fan.columns
    risks = book[SHEETS_FI["kpi.pending_at_risk"]]
    assert risks["Hakemus"].to_list() == table(running, "kpi.pending_at_risk")["hakemus_id"].to_list()


# -- no running period; a satisfaction forecast on 3 responses -------------------------------


def test_no_running_period_says_so_everywhere(tmp_path):
    landing = generate(tmp_path / "landing")  # extracts up to 31.12.2022: nothing is running
    outputs = run_outputs(landing, tmp_path)
    for name in FORECAST_TABLES:
        assert table(outputs.published, name).height == 0, name
    tables, paragraphs = forecast_section(report_markdown(outputs.published))
    assert tables == [] and paragraphs == [REPORT_NO_FORECAST_FI]
    assert REPORT_NO_FORECAST_FI == "Aineistossa ei ole käynnissä olevaa raportointikautta; ennustettavaa ei ole."
    page = read_html((outputs.dashboards / PAGE.file_name).read_text(encoding="utf-8"))
    figures = [f for script in page.scripts for f in plotly_figures(script)]
    assert all(NO_FORECAST_FI in [v for v in walk(figure) if isinstance(v, str)] for figure in figures)
    assert "".join(page.text).count(NO_FORECAST_FI) == len(PAGE.tables)
    book = pl.read_excel(outputs.exports / "maksatus_kpi.xlsx", sheet_id=0)
    assert all(book[SHEETS_FI[name]].height == 0 for name in FORECAST_TABLES)


def test_satisfaction_forecast_on_under_5_responses_is_withheld(tmp_path):
    generated = generate(tmp_path / "generated")
    for path in generated.glob("asiakaspalaute_*"):
        path.unlink()
    landing = tmp_path / "landing"
    cut_landing(generated, landing, AS_OF)
    rows = [response(f"A{i}", f"{i % 28 + 1}.{i % 12 + 1}.2021", "45"[i % 2]) for i in range(60)]  # 2021: a history
    rows += [response("B1", "3.2.2022", "2"), response("B2", "4.5.2022", "2"), response("B3", "5.9.2022", "3")]
    write_export(landing, f"asiakaspalaute_{AS_OF.isoformat()}.csv", FEEDBACK_HEADER, rows)
    outputs = run_outputs(landing, tmp_path)

    exact = table(outputs.published, "kpi.forecast").filter(pl.col("indicator") == SATISFACTION).row(0, named=True)
    assert exact["seen_n"] == 3 and exact["median"] is not None  # the analysts' warehouse keeps it
    hidden = suppressed_figures(outputs.published)
    assert any(abs(h - exact["median"]) < 1e-9 for h in hidden) and any(abs(h - 7 / 3) < 1e-9 for h in hidden)
    searchable, _ = searchable_hidden(outputs)
    assert any(abs(h - exact["median"]) < 1e-9 for h in searchable)  # told apart from every figure shown
    check_outputs(outputs)  # no withheld figure in the report, the dashboards or the exports

    tables, paragraphs = forecast_section(report_markdown(outputs.published))
    summary = next(t for t in tables if t[0][0] == "Mittari")
    satisfaction = next(r for r in summary if r[0].startswith("Asiakastyytyväisyys"))
    assert satisfaction[2:] == [f"alle 5 vastausta (n = 3, {day(AS_OF)})", *["alle 5 vastausta"] * 3, "> 4,0", "alle 5 vastausta"]
    processing = next(r for r in summary if r[0].startswith("Käsittelyaika"))
    assert re.fullmatch(r"\d+,\d", processing[3])  # the other indicator is shown
    page = read_html((outputs.dashboards / PAGE.file_name).read_text(encoding="utf-8"))
    texts = [v for script in page.scripts for f in plotly_figures(script) for v in walk(f) if isinstance(v, str)]
    assert FORECAST_HIDDEN_FI in texts  # the card and the satisfaction fan
    people = pl.read_parquet(outputs.exports / "kpi_forecast.parquet").filter(pl.col("indicator") == SATISFACTION).row(0, named=True)
    assert people["suppressed"] and people["seen_n"] == 3
    assert all(people[c] is None for c in ("seen_value", "median", "low_80", "high_80", "low_95", "high_95", "probability_meets_target"))
    fan = pl.read_parquet(outputs.exports / "kpi_forecast_fan.parquet").filter(pl.col("indicator") == SATISFACTION)
    assert fan.height and fan["suppressed"].all() and fan["value"].null_count() == fan.height


def test_too_little_data_gives_no_forecast_and_the_report_says_why(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(REPO / "tests" / "corpus" / "22_invalid_hetu_checksum", landing, ignore=shutil.ignore_patterns("*.toml"))
    outputs = run_outputs(landing, tmp_path, today=dt.date(2022, 6, 30))  # one pending application, no valid decision
    for name in ("kpi.forecast", "kpi.pending_at_risk", "kpi.forecast_what_if"):
        assert table(outputs.published, name).is_empty()  # one decision is nothing to learn a time to decision from
    assert pl.read_parquet(outputs.exports / "kpi_pending_at_risk.parquet").is_empty()
    assert formula_cells(outputs.exports) == []
    # No decision is valid, so no period has a figure yet: the section says there is nothing to forecast.
    assert REPORT_NO_FORECAST_FI in report_markdown(outputs.published)
    markdown = report_markdown(outputs.published)
    assert "NaN" not in markdown and "nan" not in markdown.lower().split()
