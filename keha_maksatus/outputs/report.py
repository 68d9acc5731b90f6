"""The quality-section report for the ministry, in Finnish, as Markdown and standalone HTML.

Both renderings come from one list of blocks (headings, paragraphs, tables) of plain
text, built from what people may see of the published warehouse (disclosure), so they
always say the same thing. Each rendering escapes every text for its format: nothing
from the input (file names, codes, rules, column names) becomes markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import duckdb

from keha_maksatus.config import INDICATORS, PROCESSING_TIME, SATISFACTION
from keha_maksatus.outputs import finnish as fi
from keha_maksatus.outputs.disclosure import SUPPRESSED_FI, open_for_people
from keha_maksatus.outputs.publish import new_build_directory, replace_directory
from keha_maksatus.outputs.rendering import markdown_text, render_template

TREND_MONTHS = 12
REPORT_NAME = "laatuosio"


@dataclass
class Heading:
    kind: ClassVar[str] = "heading"  # for the templates
    level: int
    text: str


@dataclass
class Paragraph:
    kind: ClassVar[str] = "paragraph"
    text: str


@dataclass
class Table:
    kind: ClassVar[str] = "table"
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # right-aligned columns


Block = Heading | Paragraph | Table


def build_report(con: duckdb.DuckDBPyConnection) -> list[Block]:
    """The report's content from a connection to what people may see
    (disclosure.open_for_people)."""
    publication = con.sql("SELECT published_at, as_of FROM meta.publication ORDER BY published_at DESC LIMIT 1").pl().row(0, named=True)
    as_of = publication["as_of"]
    blocks: list[Block] = [
        Heading(1, "Maksatuksen palvelukyky ja laatu"),
        Paragraph(
            "Tulossopimuksen laatuosion (2 Tuotokset ja laadunhallinta) maksatusta koskevat mittarit. "
            f"Aineisto {fi.date(as_of)} asti (uusin käytetty poiminta); raportti muodostettu "
            f"{fi.date(publication['published_at'].date())}."
        ),
    ]
    quality = con.sql("SELECT * FROM kpi.quality_section ORDER BY period_start, period_end, indicator").pl()
    details = {
        (r["indicator"], r["period_label"]): r
        for r in con.sql("SELECT * FROM kpi.quality_section_details").pl().iter_rows(named=True)
    }
    incomplete_seen = False
    for year in sorted({d.year for d in quality["period_start"]}):
        rows = {(r["indicator"], r["period_label"]): r for r in quality.iter_rows(named=True) if r["period_start"].year == year}
        periods = [p for p in (f"1-6/{year}", f"1-12/{year}") if any(k[1] == p for k in rows)]
        blocks.append(Heading(2, f"Vuosi {year}"))
        main = Table(
            ["Palvelukyky ja laatu", f"Tavoite {year}"]
            + [f"Toteuma {p.replace('1-', '')}" for p in periods]
            + [f"Tavoite saavutettu {p.replace('1-', '')}" for p in periods],
            [],
            numeric=set(range(1, 2 + len(periods))),
        )
        for indicator in (SATISFACTION, PROCESSING_TIME):
            cells = [rows.get((indicator, p)) for p in periods]
            first = next(c for c in cells if c is not None)
            values = []
            for cell in cells:
                if cell is None:
                    values.append(fi.DASH)
                    continue
                figure = SUPPRESSED_FI if cell["suppressed"] else fi.number(cell["value"], fi.DECIMALS[indicator])
                text = f"{figure} (n = {fi.number(cell['n'])})"
                if not cell["complete"]:
                    text += " kesken*"
                    incomplete_seen = True
                values.append(text)
            met = [_met(c) for c in cells]
            main.rows.append([INDICATORS[indicator], fi.target(first["target_op"], first["target"], indicator), *values, *met])
        blocks.append(main)

        extra = Table(["Lisätieto", *[p.replace("1-", "") for p in periods]], [], numeric=set(range(1, 1 + len(periods))))
        sat = [details.get((SATISFACTION, p)) for p in periods]
        pt = [details.get((PROCESSING_TIME, p)) for p in periods]
        extra.rows.append(
            ["Asiakastyytyväisyyden 95 %:n luottamusväli"]
            + [_confidence_interval(d) for d in sat]
        )
        extra.rows.append(["Kampanjakyselyt (eivät ole virallisessa luvussa)"] + [_campaign(d) for d in sat])
        extra.rows.append(
            ["Nettokäsittelyaika ilman täydennysaikaa (pv)"]
            + [fi.DASH if d is None else fi.number(d["net_value"], 1) for d in pt]
        )
        blocks.append(extra)
    if incomplete_seen:
        blocks.append(Paragraph(f"* Kesken: jakso ei ole päättynyt aineistossa (uusin poiminta {fi.date(as_of)}); luku voi vielä muuttua."))

    blocks += _trend_blocks(con)
    blocks += _data_quality_blocks(con)
    return blocks


def _met(cell: dict | None) -> str:
    if cell is None:
        return fi.DASH
    if cell["suppressed"]:
        return SUPPRESSED_FI
    return fi.yes_no(cell["met"]) + ("*" if not cell["complete"] and cell["met"] is not None else "")


def _confidence_interval(details: dict | None) -> str:
    if details is None:
        return fi.DASH
    if details["suppressed"]:
        return SUPPRESSED_FI
    if details["ci_low"] is None:
        return fi.DASH
    return f"{fi.number(details['ci_low'], 2)}–{fi.number(details['ci_high'], 2)}"


def _campaign(details: dict | None) -> str:
    if details is None or not details["campaign_n"]:
        return fi.DASH
    figure = SUPPRESSED_FI if details["campaign_suppressed"] else fi.number(details["campaign_value"], 2)
    return f"{figure} (n = {fi.number(details['campaign_n'])})"


def _trend_blocks(con: duckdb.DuckDBPyConnection) -> list[Block]:
    trend = con.sql(
        f"""
        WITH months AS (SELECT DISTINCT month FROM kpi.monthly_trend ORDER BY month DESC LIMIT {TREND_MONTHS})
        SELECT m.month,
               p.value AS processing_time, p.n AS decisions,
               s.value AS satisfaction, s.n AS responses, s.suppressed
        FROM months m
        LEFT JOIN kpi.monthly_trend p ON p.month = m.month AND p.indicator = '{PROCESSING_TIME}'
        LEFT JOIN kpi.monthly_trend s ON s.month = m.month AND s.indicator = '{SATISFACTION}'
        ORDER BY m.month
        """
    ).pl()
    table = Table(["Kuukausi", "Käsittelyaika ka. (pv)", "Päätöksiä", "Asiakastyytyväisyys", "Vastauksia"], [], numeric={1, 2, 3, 4})
    for row in trend.iter_rows(named=True):
        satisfaction = SUPPRESSED_FI if row["suppressed"] else fi.number(row["satisfaction"], 2)
        table.rows.append(
            [fi.month(row["month"]), fi.number(row["processing_time"], 1), fi.number(row["decisions"]),
             satisfaction, fi.number(row["responses"])]
        )
    return [
        Heading(2, f"Kuukausikehitys (viimeiset {TREND_MONTHS} kuukautta)"),
        Paragraph("Käsittelyaika päätöskuukauden mukaan, asiakastyytyväisyys vastauskuukauden mukaan (kohtaamis- ja jälkikyselyt)."),
        table,
    ]


def _data_quality_blocks(con: duckdb.DuckDBPyConnection) -> list[Block]:
    files = con.sql(
        "SELECT file_name, status, rows_read, rows_valid, rows_rejected FROM quality.ingest_log ORDER BY file_name, file_id"
    ).pl()
    rules = con.sql(
        "SELECT rule, column_name, count(*) AS n FROM quality.quarantine GROUP BY ALL ORDER BY n DESC, rule, column_name"
    ).pl()
    used = files.filter(files["status"] == "ingested")
    summary = Paragraph(
        f"Tiedostoja luettu {fi.number(files.height)}, joista käytössä {fi.number(used.height)}. "
        f"Rivejä luettu {fi.number(int(files['rows_read'].sum()))}, hyväksytty {fi.number(int(files['rows_valid'].sum()))} "
        f"ja hylätty {fi.number(int(files['rows_rejected'].sum()))}. Hylätyt rivit ovat karanteenissa "
        "(taulu quality.quarantine), eivätkä ne muuta aiemmin hyväksyttyjä tietoja."
    )
    file_table = Table(["Tiedosto", "Tila", "Rivejä", "Hyväksytty", "Hylätty"], [], numeric={2, 3, 4})
    for row in files.iter_rows(named=True):
        file_table.rows.append(
            [row["file_name"], fi.STATUS_FI.get(row["status"], row["status"]), fi.number(row["rows_read"]),
             fi.number(row["rows_valid"]), fi.number(row["rows_rejected"])]
        )
    rule_table = Table(["Hylkäyksen syy", "Sarake", "Rivejä"], [], numeric={2})
    for row in rules.iter_rows(named=True):
        rule_table.rows.append([fi.RULES_FI.get(row["rule"], row["rule"]), row["column_name"], fi.number(row["n"])])
    blocks: list[Block] = [Heading(2, "Aineiston laatu"), summary, file_table]
    if rules.height:
        blocks += [Heading(3, "Hylätyt tiedot säännöittäin"), rule_table]
    return blocks


def render_markdown(blocks: list[Block]) -> str:
    """GitHub-flavoured Markdown; every text escaped (markdown_text)."""
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {markdown_text(block.text)}")
        elif isinstance(block, Paragraph):
            out.append(markdown_text(block.text))
        else:
            out.append("| " + " | ".join(markdown_text(h) for h in block.headers) + " |")
            out.append("|" + "|".join("---:" if i in block.numeric else "---" for i in range(len(block.headers))) + "|")
            out += ["| " + " | ".join(markdown_text(cell) for cell in row) + " |" for row in block.rows]
        out.append("")
    return "\n".join(out)


def render_html(blocks: list[Block]) -> str:
    """A standalone HTML page (templates/report.html, autoescaped)."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "Raportti")
    return render_template("report.html", title=title, blocks=blocks)


def write_report(published_path: Path, out_dir: Path) -> list[Path]:
    """Write laatuosio.md and laatuosio.html from the published warehouse."""
    con = open_for_people(published_path)
    try:
        blocks = build_report(con)
    finally:
        con.close()
    build = new_build_directory(out_dir)
    for suffix, text in ((".md", render_markdown(blocks)), (".html", render_html(blocks))):
        (build / f"{REPORT_NAME}{suffix}").write_text(text, encoding="utf-8")
    replace_directory(build, out_dir)
    return [out_dir / f"{REPORT_NAME}.md", out_dir / f"{REPORT_NAME}.html"]
