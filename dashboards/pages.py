"""The dashboard pages: which figures each shows, and writing them as offline HTML.

plotly.js is written once beside the pages (plotly.min.js); pages load it by relative
path, so the folder works from disk with no network. Pages come from the autoescaping
template keha_maksatus/outputs/templates/dashboard.html; the figures' div fragments are plotly's
own output (their data JSON-escaped by plotly), inserted as trusted HTML.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import plotly.io as pio
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from dashboards import figures
from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.kpi import MIN_CELL_RESPONSES
from keha_maksatus.outputs.disclosure import open_for_people
from keha_maksatus.outputs.publish import new_build_directory, replace_directory
from keha_maksatus.outputs.rendering import render_template

PLOTLY_JS = "plotly.min.js"
READING_NOTE = (
    "Luku pisteen tai pylvään kohdalla (n) on päätösten, vastausten tai hakemusten määrä, jolle luku perustuu. "
    f"Vaalea viivoitettu pylväs tai avoin piste: {figures.THIN_FI}. Harmaa risti: {figures.HIDDEN_FI}. "
    "Harmaa alue: osittainen kuukausi, aineisto alkaa vasta kuukauden aikana. Punainen katkoviiva: tavoite."
)

FORECAST_READING_NOTE = (
    "Kertymä: jakson luku 1.1. alkaen kunkin kuukauden viimeiseen päivään asti. Yhtenäinen viiva: toteuma; katkoviiva: "
    "ennusteen mediaani; tummempi alue: 80 %:n ja vaaleampi alue: 95 %:n ennusteväli. Luku pisteen alla: päätösten tai "
    "vastausten määrä (ennusteessa odotettu määrä, ≈). Punainen pisteviiva: tavoite. Todennäköisyys: niiden simulointien "
    f"osuus, joissa tavoite saavutetaan. Asiakastyytyväisyyden ennuste on piilotettu, jos vastauksia on alle {MIN_CELL_RESPONSES}."
)


@dataclass(frozen=True)
class Page:
    file_name: str
    title: str
    intro: str
    figures: tuple[Callable[[duckdb.DuckDBPyConnection], figures.Figure], ...]
    tables: tuple[Callable[[duckdb.DuckDBPyConnection], figures.TableView], ...] = ()  # below the figures
    reading_note: str = READING_NOTE


PAGES = (
    Page("index.html", "Yleiskuva", "Tulossopimuksen maksatusmittarit ja niiden tavoitteet.", (
        figures.headline_indicators,
        lambda con: figures.monthly_kpi(con, SATISFACTION),
        lambda con: figures.monthly_kpi(con, PROCESSING_TIME),
    )),
    Page("kasittelyaika.html", "Käsittelyaika", "Maksatuspäätösten käsittelyaika päätöskuukauden mukaan.", (
        figures.processing_time_mean_median,
        figures.share_within_30_days,
        lambda con: figures.processing_time_by(con, "tukimuoto"),
        lambda con: figures.processing_time_by(con, "yksikko"),
        figures.processing_time_distribution,
    )),
    Page("asiakastyytyvaisyys.html", "Asiakastyytyväisyys", "Maksatuksen palveluja koskevat vastaukset (1–5). Alle 5 vastauksen solut on piilotettu.", (
        lambda con: figures.monthly_kpi(con, SATISFACTION),
        *[functools.partial(figures.satisfaction_by_survey, survey=survey) for survey in figures.SURVEYS_FI],
        figures.satisfaction_by_instrument,
    )),
    Page("tyojono.html", "Työjono", "Vireillä olevat maksatushakemukset aineiston uusimman poiminnan päivänä.", (
        figures.backlog_indicators,
        figures.backlog_by_age,
    )),
    Page("ennuste.html", "Ennuste", (
        "Käynnissä olevan vuoden ennuste: mihin mittarit todennäköisesti päätyvät vuoden lopussa, ja vireillä olevat "
        "hakemukset, jotka siihen eniten vaikuttavat. Ennuste perustuu aineiston uusimpaan poimintaan."
    ), (
        figures.forecast_cards,
        lambda con: figures.forecast_fan(con, PROCESSING_TIME),
        lambda con: figures.forecast_fan(con, SATISFACTION),
        figures.at_risk_by_office,
    ), (
        figures.what_if_view,
        figures.top_applications_view,
    ), reading_note=FORECAST_READING_NOTE),
    Page("aineiston_laatu.html", "Aineiston laatu", "Luetut tiedostot ja karanteeniin hylätyt rivit.", (
        figures.rejections_by_rule,
        figures.rows_by_file,
    )),
)


def figure_html(fig: figures.Figure, div_id: str) -> str:
    """A figure's div as plotly writes a graph object's, the dict taken as it is."""
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False}, validate=False)


def render_page(page: Page, con: duckdb.DuckDBPyConnection) -> str:
    """One page from a connection to what people may see (disclosure.open_for_people)."""
    divs = [Markup(figure_html(make(con), f"figure-{index}")) for index, make in enumerate(page.figures)]
    tables = [make(con) for make in page.tables]
    return render_template(
        "dashboard.html", pages=PAGES, page=page, figures=divs, tables=tables, plotly_js=PLOTLY_JS, reading_note=page.reading_note
    )


def build_dashboards(published_path: Path, out_dir: Path) -> list[Path]:
    """Write every page and plotly.js into out_dir (replaced as a whole)."""
    out_dir = Path(out_dir)
    build = new_build_directory(out_dir)
    con = open_for_people(published_path)
    try:
        for page in PAGES:
            (build / page.file_name).write_text(render_page(page, con), encoding="utf-8")
    finally:
        con.close()
    (build / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")
    replace_directory(build, out_dir)
    return [out_dir / page.file_name for page in PAGES]

