"""The dashboard pages: which figures each shows, and writing them as offline HTML.

plotly.js is written once beside the pages (plotly.min.js); pages load it by relative
path, so the folder works from disk with no network.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from dashboards import figures
from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.publish import new_build_directory, replace_directory

PLOTLY_JS = "plotly.min.js"


@dataclass(frozen=True)
class Page:
    file_name: str
    title: str
    intro: str
    figures: tuple[Callable[[duckdb.DuckDBPyConnection], go.Figure], ...]


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
        figures.satisfaction_by_survey,
        figures.satisfaction_by_instrument,
    )),
    Page("tyojono.html", "Työjono", "Vireillä olevat maksatushakemukset aineiston uusimman poiminnan päivänä.", (
        figures.backlog_indicators,
        figures.backlog_by_age,
    )),
    Page("aineiston_laatu.html", "Aineiston laatu", "Luetut tiedostot ja karanteeniin hylätyt rivit.", (
        figures.rejections_by_rule,
        figures.rows_by_file,
    )),
)

STYLE = """
body { font-family: "Segoe UI", Arial, sans-serif; margin: 0; color: #1a1a1a; }
nav { background: #003580; padding: .6rem 1rem; } nav a { color: #fff; margin-right: 1.2rem; text-decoration: none; }
nav a.current { font-weight: bold; text-decoration: underline; }
main { max-width: 72rem; margin: 1rem auto; padding: 0 1rem; } h1 { color: #003580; } .figure { margin-bottom: 1.5rem; }
"""


def render_page(page: Page, con: duckdb.DuckDBPyConnection) -> str:
    current = ' class="current"'
    nav = "".join(f'<a href="{p.file_name}"{current if p is page else ""}>{html.escape(p.title)}</a>' for p in PAGES)
    parts = []
    for index, make in enumerate(page.figures):
        figure = make(con)
        parts.append(
            '<div class="figure">'
            + figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{index}", config={"displaylogo": False})
            + "</div>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="fi">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(page.title)} – maksatuksen mittarit</title>\n"
        f'<script src="{PLOTLY_JS}"></script>\n<style>{STYLE}</style>\n</head>\n<body>\n'
        f"<nav>{nav}</nav>\n<main>\n<h1>{html.escape(page.title)}</h1>\n<p>{html.escape(page.intro)}</p>\n"
        + "\n".join(parts)
        + "\n</main>\n</body>\n</html>\n"
    )


def build_dashboards(published_path: Path, out_dir: Path) -> list[Path]:
    """Write every page and plotly.js into out_dir (replaced as a whole)."""
    out_dir = Path(out_dir)
    build = new_build_directory(out_dir)
    con = duckdb.connect(str(published_path), read_only=True)
    try:
        for page in PAGES:
            (build / page.file_name).write_text(render_page(page, con), encoding="utf-8")
    finally:
        con.close()
    (build / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")
    replace_directory(build, out_dir)
    return [out_dir / page.file_name for page in PAGES]

