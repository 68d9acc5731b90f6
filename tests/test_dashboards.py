"""The dashboards read right at a glance (issue 10): real pages built from small real
warehouses in tmp_path, opened in headless Chromium.

The full warehouse: processing time 35 days over 20 decisions from 11.1.2021 (January
2021 partial), and in 2022 25 days over 30 decisions (TE-UUS 20 x 20 and 5 x 30 days,
ELY-LAP 5 x 40 days: under 20, thin); satisfaction 4,0 over 10 responses from 3.3.2021
(March 2021 partial) and 4,5 over 10 in 2022, esr resting on 2 (withheld); one rejected
row. The second warehouse has the same decisions and no feedback at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboards.figures import HIDDEN_FI, NO_DATA_FI, THIN_FI
from dashboards.pages import PAGES, build_dashboards
from keha_maksatus.outputs.publish import publish
from keha_maksatus.warehouse import working_path

from conftest import DECISION_HEADER, FEEDBACK_HEADER, build_working, decision, needs_chromium, response, write_export

pytestmark = needs_chromium
FIGURES = {page.file_name: page for page in PAGES}


def decisions() -> list[str]:
    rows = [decision(f"A{i}", "7.12.2020", "11.1.2021") for i in range(20)]  # 35 days
    rows += [decision(f"B{i}", "1.3.2022", "21.3.2022") for i in range(20)]  # 20 days
    rows += [decision(f"C{i}", "1.3.2022", "31.3.2022") for i in range(5)]  # 30 days: misses "< 30"
    rows += [decision(f"D{i}", "1.3.2022", "10.4.2022", yksikko="ELY-LAP") for i in range(5)]  # 40 days
    rows.append(decision("X1", "31.2.2022"))  # rejected: no such day
    return rows


def feedback() -> list[str]:
    rows = [response(f"V{i}", "3.3.2021", "4", tukimuoto="palkkatuki") for i in range(10)]
    rows += [response(f"W{i}", "5.5.2022", score, tukimuoto="palkkatuki") for i, score in enumerate("55554444")]
    rows += [response("E1", "6.5.2022", "5", tukimuoto="esr"), response("E2", "6.5.2022", "4", tukimuoto="esr")]
    return rows


def build(base: Path, with_feedback: bool) -> Path:
    """The published warehouse's dashboards folder for a small landing."""
    landing = base / "landing"
    write_export(landing, "maksatuspaatokset_2022-12-31.csv", DECISION_HEADER, decisions())
    if with_feedback:
        write_export(landing, "asiakaspalaute_2022-12-31.csv", FEEDBACK_HEADER, feedback())
    con = build_working(landing, base / "work")
    try:
        published = publish(con, working_path(base / "work"), base / "pub" / "maksatus.duckdb")
    finally:
        con.close()
    build_dashboards(published, base / "dashboards")
    return base / "dashboards"


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("full"), with_feedback=True)


@pytest.fixture(scope="module")
def no_feedback(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("no_feedback"), with_feedback=False)



class Dashboard:
    """One page open in Chromium, its charts drawn."""

    def __init__(self, browser, folder: Path, file_name: str):
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto((folder / file_name).as_uri())
        self.page.wait_for_function(
            "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n",
            arg=len(FIGURES[file_name].figures), timeout=20000,
        )

    def texts(self, figure: int) -> list[str]:
        """Every text drawn in a chart's SVG (and each line of a multi-line one), spaces normalised."""
        return [" ".join(t.split()) for t in self.page.locator(f"#figure-{figure} .main-svg text, #figure-{figure} .main-svg tspan.line").all_text_contents()]

    def traces(self, figure: int) -> list[dict]:
        return self.page.evaluate(
            "id => document.getElementById(id).data.map(t => ({name: t.name || '', x: t.x || [], text: t.text || null,"
            " marker: t.marker || {}}))",
            f"figure-{figure}",
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.page.close()


def test_overview_cards_label_the_difference_to_the_target_and_the_change(full, browser):
    with Dashboard(browser, full, "index.html") as page:
        cards = page.texts(0)
        assert "4,50" in cards and "25,0" in cards
        assert "▲ 0,50 yli tavoitteen (> 4,0)" in cards
        assert "▼ 5,0 pv alle tavoitteen (< 30 pv)" in cards
        assert "Muutos jaksosta 1-12/2021 (4,00): +0,50" in cards
        assert "Muutos jaksosta 1-12/2021 (35,0 pv): \u221210,0 pv" in cards
        assert not any(t.startswith(("▲0", "▼\u2212")) for t in cards)  # no bare arrow
        assert page.errors == []


def test_every_bar_and_point_shows_its_n_and_thin_cells_look_different(full, browser):
    with Dashboard(browser, full, "kasittelyaika.html") as page:
        offices = page.texts(3)  # processing time by office, 2022
        assert "n=25" in offices and "n=5" in offices
        assert THIN_FI in offices  # the legend says what the hatched bar means
        traces = {t["name"]: t for t in page.traces(3)}
        thin = traces[THIN_FI]
        assert thin["x"] == ["ELY-LAP"] and thin["marker"]["pattern"]["shape"] == "/"
        normal = next(t for name, t in traces.items() if name != THIN_FI)
        assert normal["x"] == ["TE-UUS"] and normal["marker"]["color"] != thin["marker"]["color"]

        page.page.locator("#figure-3 .barlayer .trace").nth(1).locator(".point path").first.hover(force=True)
        page.page.locator("#figure-3 .hoverlayer .hovertext").first.wait_for()
        assert "n = 5" in " ".join(page.page.locator("#figure-3 .hoverlayer text").all_text_contents())

        months = page.texts(0)  # mean, median, p90 by month: n above the mean's points
        assert {"20", "25", "5"} <= set(months)
        mean = page.traces(0)[0]
        assert mean["marker"]["symbol"] == ["circle", "circle", "circle-open"]  # April 2022: 5 decisions

        shares = page.texts(1)
        assert {"n=20", "n=25", "n=5"} <= set(shares)

    with Dashboard(browser, full, "asiakastyytyvaisyys.html") as page:
        by_instrument = page.texts(4)  # after the monthly figure and one chart per survey type
        assert "n=8" in by_instrument and "n=2 piilotettu" in by_instrument
        assert HIDDEN_FI in by_instrument


def test_distribution_colours_30_days_as_missed(full, browser):
    with Dashboard(browser, full, "kasittelyaika.html") as page:
        bands = {t["name"]: t["x"] for t in page.traces(4)}
        assert bands == {"alle 30 päivää (tavoitteessa)": ["20–24"], "30 päivää tai yli (tavoite ei täyty)": ["30–34", "40–44"]}
        assert {"20", "5"} <= set(page.texts(4))


def test_satisfaction_by_instrument_has_the_target_line(full, browser):
    with Dashboard(browser, full, "asiakastyytyvaisyys.html") as page:
        assert "tavoite > 4,0" in page.texts(4)
        lines = page.page.evaluate("() => document.getElementById('figure-4').layout.shapes.map(s => [s.y0, s.y1, s.line.dash])")
        assert [4, 4, "dash"] in lines
        assert page.page.locator("#figure-4 .shapelayer path").count() >= 1
    with Dashboard(browser, full, "kasittelyaika.html") as page:
        assert "tavoite < 30 pv" in page.texts(2) and "tavoite < 30 pv" in page.texts(3)


def test_partial_first_month_is_marked(full, browser):
    with Dashboard(browser, full, "kasittelyaika.html") as page:
        assert "osittainen kuukausi (alkaa 11.1.2021)" in page.texts(0)
        assert "osittainen kuukausi (alkaa 11.1.2021)" in page.texts(1)
    with Dashboard(browser, full, "asiakastyytyvaisyys.html") as page:
        assert "osittainen kuukausi (alkaa 3.3.2021)" in page.texts(0)


def test_count_axes_have_whole_distinct_ticks(full, browser):
    with Dashboard(browser, full, "aineiston_laatu.html") as page:
        ticks = page.page.locator("#figure-0 .xtick text").all_text_contents()
        assert ticks and len(ticks) == len(set(ticks)) and all(t.isdigit() for t in ticks)
        assert "1" in page.texts(0)  # the one rejected row, shown on its bar
    with Dashboard(browser, full, "kasittelyaika.html") as page:
        ticks = page.page.locator("#figure-4 .ytick text").all_text_contents()
        assert ticks and len(ticks) == len(set(ticks)) and all(t.isdigit() for t in ticks)


def test_each_survey_type_has_a_chart_of_its_own(full, browser):
    # Three lines in one chart made their counts collide: one chart per survey type.
    with Dashboard(browser, full, "asiakastyytyvaisyys.html") as page:
        for figure, survey in ((1, "kohtaamiskysely"), (2, "jälkikysely"), (3, "kampanjakysely")):
            assert any(t.startswith(f"Asiakastyytyväisyys: {survey}") for t in page.texts(figure))
            assert len([t for t in page.traces(figure) if t["name"].endswith("(luku: vastauksia)")]) <= 1


def test_charts_without_data_say_so(no_feedback, browser):
    with Dashboard(browser, no_feedback, "asiakastyytyvaisyys.html") as page:
        for figure in range(5):
            assert NO_DATA_FI in page.texts(figure)
            assert page.page.locator(f"#figure-{figure} .xtick, #figure-{figure} .ytick").count() == 0  # no empty grid
        assert page.errors == []
    with Dashboard(browser, no_feedback, "index.html") as page:
        assert NO_DATA_FI in page.texts(0) and "▼ 5,0 pv alle tavoitteen (< 30 pv)" in page.texts(0)
        assert NO_DATA_FI in page.texts(1)  # satisfaction by month
    with Dashboard(browser, no_feedback, "tyojono.html") as page:
        assert "Ei vireillä olevia hakemuksia" in page.texts(1)
