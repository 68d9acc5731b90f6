"""The quality-section report for the ministry, in Finnish, as Markdown and standalone HTML.

Both renderings come from one list of blocks (headings, paragraphs, tables) built from
the published warehouse, so they always say the same thing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from keha_maksatus import finnish as fi
from keha_maksatus.config import INDICATORS, PROCESSING_TIME, SATISFACTION
from keha_maksatus.kpi import MIN_CELL_RESPONSES
from keha_maksatus.publish import new_build_directory, replace_directory

TREND_MONTHS = 12
REPORT_NAME = "laatuosio"


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # right-aligned columns


Block = Heading | Paragraph | Table


def build_report(con: duckdb.DuckDBPyConnection) -> list[Block]:
    """The report's content from a published warehouse connection."""
    publication = con.sql("SELECT published_at, as_of FROM meta.publication").pl().row(0, named=True)
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
                text = f"{fi.number(cell['value'], fi.DECIMALS[indicator])} (n = {fi.number(cell['n'])})"
                if not cell["complete"]:
                    text += " kesken*"
                    incomplete_seen = True
                values.append(text)
            met = [fi.DASH if c is None else (fi.yes_no(c["met"]) + ("*" if not c["complete"] and c["met"] is not None else "")) for c in cells]
            main.rows.append([INDICATORS[indicator], fi.target(first["target_op"], first["target"], indicator), *values, *met])
        blocks.append(main)

        extra = Table(["Lisätieto", *[p.replace("1-", "") for p in periods]], [], numeric=set(range(1, 1 + len(periods))))
        sat = [details.get((SATISFACTION, p)) for p in periods]
        pt = [details.get((PROCESSING_TIME, p)) for p in periods]
        extra.rows.append(
            ["Asiakastyytyväisyyden 95 %:n luottamusväli"]
            + [fi.DASH if d is None or d["ci_low"] is None else f"{fi.number(d['ci_low'], 2)}–{fi.number(d['ci_high'], 2)}" for d in sat]
        )
        extra.rows.append(
            ["Kampanjakyselyt (eivät ole virallisessa luvussa)"]
            + [fi.DASH if d is None or not d["campaign_n"] else f"{fi.number(d['campaign_value'], 2)} (n = {fi.number(d['campaign_n'])})" for d in sat]
        )
        extra.rows.append(
            ["Nettokäsittelyaika ilman täydennysaikaa (pv)"]
            + [fi.DASH if d is None else fi.number(d["net_value"], 1) for d in pt]
        )
        blocks.append(extra)
    if incomplete_seen:
        blocks.append(Paragraph(f"\\* Kesken: jakso ei ole päättynyt aineistossa (uusin poiminta {fi.date(as_of)}); luku voi vielä muuttua."))

    blocks += _trend_blocks(con)
    blocks += _data_quality_blocks(con)
    return blocks


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
        satisfaction = f"{fi.DASH} (alle {MIN_CELL_RESPONSES})" if row["suppressed"] else fi.number(row["satisfaction"], 2)
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
        "SELECT file_name, status, rows_read, rows_valid, rows_rejected, reason FROM quality.ingest_log ORDER BY file_name, file_id"
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
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        else:
            out.append("| " + " | ".join(block.headers) + " |")
            out.append("|" + "|".join("---:" if i in block.numeric else "---" for i in range(len(block.headers))) + "|")
            out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in block.rows]
        out.append("")
    return "\n".join(out)


HTML_STYLE = """
body { font-family: "Segoe UI", Arial, sans-serif; max-width: 68rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; }
h1 { color: #003580; } h2 { color: #003580; border-bottom: 2px solid #003580; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .95rem; }
th, td { border: 1px solid #c8c8c8; padding: .35rem .6rem; vertical-align: top; }
th { background: #e8eef7; text-align: left; } td.num, th.num { text-align: right; white-space: nowrap; }
p { line-height: 1.45; }
"""


def render_html(blocks: list[Block]) -> str:
    title = next((b.text for b in blocks if isinstance(b, Heading)), "Raportti")
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{html.escape(block.text.replace(chr(92), ''))}</p>")
        else:
            head = "".join(f'<th{_num(i, block)}>{html.escape(h)}</th>' for i, h in enumerate(block.headers))
            rows = "".join(
                "<tr>" + "".join(f"<td{_num(i, block)}>{html.escape(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return (
        '<!DOCTYPE html>\n<html lang="fi">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _num(index: int, table: Table) -> str:
    return ' class="num"' if index in table.numeric else ""


def write_report(published_path: Path, out_dir: Path) -> list[Path]:
    """Write laatuosio.md and laatuosio.html from the published warehouse."""
    con = duckdb.connect(str(published_path), read_only=True)
    try:
        blocks = build_report(con)
    finally:
        con.close()
    build = new_build_directory(out_dir)
    for suffix, text in ((".md", render_markdown(blocks)), (".html", render_html(blocks))):
        (build / f"{REPORT_NAME}{suffix}").write_text(text, encoding="utf-8")
    replace_directory(build, out_dir)
    return [out_dir / f"{REPORT_NAME}.md", out_dir / f"{REPORT_NAME}.html"]
