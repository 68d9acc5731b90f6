"""What people open is safe: no satisfaction figure resting on under 5 responses, no live
formula, no input text turned into markup (contract: "Privacy", "Outputs are safe to open").

The real library pipeline (ingest, KPIs, publish, report, dashboards, exports) runs on
landing files whose codes and file names are hostile and whose satisfaction cells rest on
1-4 responses; every output is then read back the way a program would: the .xlsx as its
sheet XML, the .csv as fields, the Markdown through a CommonMark/GFM parser, the HTML
through an HTML parser and the dashboards' plotly figures as their JSON.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import math
import os
import re
import shutil
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st
from markdown_it import MarkdownIt

from dashboards.pages import PAGES, PLOTLY_JS
from dashboards.screenshots import CHROMIUM_ARGS
from keha_maksatus.config import SATISFACTION
from keha_maksatus.forecast.tables import TABLE_COMMENTS as FORECAST_TABLE_COMMENTS
from keha_maksatus.kpi import CAMPAIGN_SURVEY, MIN_CELL_RESPONSES, OFFICIAL_SURVEYS, TABLE_COMMENTS
from keha_maksatus.outputs import exports
from keha_maksatus.outputs.disclosure import PEOPLE_TABLES, SUPPRESSED_FI, for_people, open_for_people
from keha_maksatus.outputs.exports import csv_safe
from keha_maksatus.outputs.publish import publish
from keha_maksatus.outputs.rendering import FORMULA_STARTS, markdown_text, plotly_text
from keha_maksatus.outputs.report import REPORT_NAME
from keha_maksatus.warehouse import working_path

from conftest import DECISION_HEADER, FEEDBACK_HEADER, build_working, write_outputs
from test_corpus import lay_out_landing

CORPUS = Path(__file__).parent / "corpus"
# Every published table of figures: the KPIs and the forecast.
FIGURE_TABLES = {**TABLE_COMMENTS, **FORECAST_TABLE_COMMENTS}
SAFETY_CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and 70 <= int(p.name[:2]) <= 79)

# Codes as an export could carry them: formula starts, Markdown, HTML, table breaks,
# autolinks, entities, a line break.
HOSTILE_CODES = [
    '=HYPERLINK("http://x.example","y")', "=1+1", "+sum(1)", "-1+2", "@sum(a1)", "=cmd|' /c calc'!a0",
    "# otsikko", "## väli", "[linkki](http://x.example)", "![kuva](http://x.example/k.png)",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<b>lihava</b>", '<a href="http://x.example">a</a>',
    "`koodi`", "```", "*lihava*", "__alle__", "> lainaus", "- lista", "+ lista", "1. lista", "2) lista",
    "a|b", "| alku", "www.x.example", "http://x.example", "&lt;b&gt;", "&amp;", "~~yli~~", "rivi\nvaihto", "\\*",
    "---", "===", "<!-- kommentti -->", "{{ 7*7 }}", "%{x}", "<br>",
]
# File names as a landing folder could hold them (no `/`): the same classes.
HOSTILE_NAME_TAILS = [
    "<img src=x onerror=alert(1)>", "# otsikko", "[linkki](http:x.example)", "a|b|c", "*e* _f_ `g`", "rivi\nvaihto",
    "=1+1", "&lt;b&gt;", "www.x.example", "> lainaus", "1. lista", "<script>alert(1)<\\script>", "![k](x.png)",
]
TRUSTED_PLOTLY_MARKUP = re.compile(r"<br>|<span style='font-size:0\.7em'>|</span>|</?extra>")
FORBIDDEN_MARKDOWN = {
    "link_open", "image", "html_inline", "html_block", "code_inline", "code_block", "fence", "em_open", "strong_open",
    "s_open", "blockquote_open", "bullet_list_open", "ordered_list_open", "hr", "hardbreak",
}
REPORT_HEADINGS = re.compile(
    r"Maksatuksen palvelukyky ja laatu|Vuosi \d{4}|Kuukausikehitys \(viimeiset \d+ kuukautta\)|Aineiston laatu|Hylätyt tiedot säännöittäin"
    r"|Ennuste vuoden lopun toteumasta|(Asiakastyytyväisyys \(1–5\)|Käsittelyaika \(pv\)), jakso 1-(6|12)/\d{4}"
    r"|Mitä jos vanhimmat vireillä olevat hakemukset päätetään\?|Vireillä olevat hakemukset yksiköittäin"
)
NUMBER_TEXT = re.compile(r"[-+]?\d[\d\u00a0 ]*(,\d+)?([eE][-+]?\d+)?")
LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


@dataclass(frozen=True)
class Outputs:
    published: Path
    report: Path
    dashboards: Path
    exports: Path


def run_outputs(landing: Path, base: Path, today: dt.date | None = None) -> Outputs:
    """The library pipeline as the assets call it, from the landing folder to every output."""
    con = build_working(landing, base / "work", today=today)
    try:
        published = publish(con, working_path(base / "work"), base / "pub" / "maksatus.duckdb")
    finally:
        con.close()
    folders = write_outputs(published)
    return Outputs(published, folders.report, folders.dashboards, folders.exports)


def csv_rows(header: str, rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(header.split(";"))
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def write_hostile_landing(landing: Path) -> None:
    """Decisions and responses under every hostile code; responses also in files with
    hostile names. Satisfaction: 2021 and 1-6/2022 (which has a target) rest on 3
    responses each, so does the campaign and each instrument's cells; 1-12/2022 on many."""
    decisions, responses = [], []
    for i, code in enumerate(HOSTILE_CODES):
        decisions.append([f"H{i}", code, code, "1.3.2022", "11.3.2022", "myönteinen", "1000,00", "", "131052-308T", ""])
        decisions.append([f"P{i}", code, code, "1.11.2022", "", "", "500,00", "", "0737546-2", ""])
        for j, score in enumerate((4, 4, 5) if i % 2 else (3, 4, 4)):  # 4.3333 or 3.6667 per instrument
            responses.append([f"V{i}_{j}", "kohtaaminen", "maksatus", f"{j + 10}.8.2022 12:00", str(score), code, "", "", "fi", ""])
    for j, score in enumerate((2, 2, 3)):  # 1-6/2022: 3 responses, mean 2.3333 (target > 4: not met)
        responses.append([f"W{j}", "jalkikysely", "maksatus", f"{j + 1}.3.2022 9:00", str(score), "", "", "", "fi", ""])
    for j, score in enumerate((3, 3, 4)):  # 2021: 3 responses, mean 3.3333
        responses.append([f"X{j}", "kohtaaminen", "maksatus", f"{j + 1}.3.2021 9:00", str(score), "", "", "", "fi", ""])
    for j, score in enumerate((1, 2, 2)):  # campaign 2022: 3 responses, mean 1.6667
        responses.append([f"K{j}", CAMPAIGN_SURVEY, "maksatus", f"{j + 1}.2.2022 9:00", str(score), "", "", "", "fi", ""])
    (landing / "maksatuspaatokset_2022-12-31.csv").write_bytes(csv_rows(DECISION_HEADER, decisions))
    (landing / "asiakaspalaute_2022-12-31.csv").write_bytes(csv_rows(FEEDBACK_HEADER, responses))
    for k, tail in enumerate(HOSTILE_NAME_TAILS):
        row = [f"N{k}", "kohtaaminen", "maksatus", "5.9.2022 10:00", "4", "", "", "", "fi", ""]
        (landing / f"asiakaspalaute_2022-11-{k + 1:02d} {tail}.csv").write_bytes(csv_rows(FEEDBACK_HEADER, [row]))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Outputs:
    base = tmp_path_factory.mktemp("hostile")
    landing = base / "landing"
    landing.mkdir()
    write_hostile_landing(landing)
    return run_outputs(landing, base)


# -- what the outputs must not show, and what they must -----------------------------------


def suppressed_figures(published: Path) -> list[float]:
    """Every satisfaction figure resting on under MIN_CELL_RESPONSES scored responses, exact,
    from the analysts' warehouse: quality-section periods with their confidence intervals,
    campaign lines, and the breakdown cells recomputed from core.feedback."""
    con = duckdb.connect(str(published), read_only=True)
    try:
        periods = con.execute(
            """
            SELECT q.value, d.ci_low, d.ci_high FROM kpi.quality_section q
            JOIN kpi.quality_section_details d USING (indicator, period_label)
            WHERE q.indicator = ? AND q.n < ?
            """,
            [SATISFACTION, MIN_CELL_RESPONSES],
        ).fetchall()
        campaigns = con.execute(
            "SELECT campaign_value FROM kpi.quality_section_details WHERE indicator = ? AND campaign_n < ?",
            [SATISFACTION, MIN_CELL_RESPONSES],
        ).fetchall()
        cells = con.execute(
            """
            WITH scored AS (SELECT * FROM core.feedback WHERE palvelu = 'maksatus' AND arvosana IS NOT NULL)
            SELECT avg(arvosana), avg((arvosana >= 4)::INT) FROM scored
            GROUP BY GROUPING SETS ((date_trunc('month', vastattu), kysely, coalesce(tukimuoto, '')),
                                    (date_trunc('month', vastattu), kysely))
            HAVING count(*) < ?
            UNION ALL
            SELECT avg(arvosana), avg((arvosana >= 4)::INT) FROM scored WHERE kysely IN (?, ?)
            GROUP BY year(vastattu), coalesce(tukimuoto, '') HAVING count(*) < ?
            UNION ALL
            SELECT avg(arvosana), NULL FROM scored WHERE kysely IN (?, ?)
            GROUP BY date_trunc('month', vastattu) HAVING count(*) < ?
            """,
            [MIN_CELL_RESPONSES, *OFFICIAL_SURVEYS, MIN_CELL_RESPONSES, *OFFICIAL_SURVEYS, MIN_CELL_RESPONSES],
        ).fetchall()
        # forecasts resting on under MIN_CELL_RESPONSES responses seen so far or expected in all
        forecasts = con.execute(
            "SELECT seen_value, median, low_80, high_80, low_95, high_95 FROM kpi.forecast "
            "WHERE indicator = ? AND (seen_n < ? OR expected_n < ?)",
            [SATISFACTION, MIN_CELL_RESPONSES, MIN_CELL_RESPONSES],
        ).fetchall()
        fan = con.execute(
            f"WITH {FAN_SEEN} SELECT value, low_80, high_80, low_95, high_95 FROM kpi.forecast_fan JOIN seen USING (indicator, year) "
            "WHERE indicator = ? AND (n < ? OR seen_n < ?)",
            [SATISFACTION, MIN_CELL_RESPONSES, MIN_CELL_RESPONSES],
        ).fetchall()
    finally:
        con.close()
    return sorted({v for row in periods + campaigns + cells + forecasts + fan for v in row if v is not None})


SATISFACTION_FIGURES = (
    "value", "ci_low", "ci_high", "mean_score", "share_4_5",
    "seen_value", "median", "low_80", "high_80", "low_95", "high_95", "probability_meets_target",
)
# The count a year's fan rests on: its observed n at the as-of date (the newest observed point).
FAN_SEEN = "seen AS (SELECT indicator, year, arg_max(n, date) AS seen_n FROM kpi.forecast_fan WHERE observed GROUP BY ALL)"


def counts_behind(table: str, row: dict, fan_seen: dict) -> list[float]:
    """The counts a row's satisfaction figures rest on."""
    if table == "kpi.forecast":
        return [row["seen_n"], row["expected_n"]]
    if table == "kpi.forecast_fan":
        return [row["n"], fan_seen.get((row["indicator"], row["year"]))]
    return [row["n"]]


def shown_figures(published: Path) -> list[float]:
    """Every number of the analysts' KPI tables that people may see: all but the
    satisfaction figures of rows resting on under MIN_CELL_RESPONSES (the contract's rule,
    stated here apart from the code that applies it)."""
    con = duckdb.connect(str(published), read_only=True)
    try:
        frames = {table: con.sql(f"SELECT * FROM {table}").pl() for table in FIGURE_TABLES}
        fan_seen = {(i, y): n for i, y, n in con.execute(f"WITH {FAN_SEEN} SELECT * FROM seen").fetchall()}
    finally:
        con.close()
    counts = frames["kpi.quality_section"].select("indicator", "period_label", "n")
    frames["kpi.quality_section_details"] = frames["kpi.quality_section_details"].join(counts, on=["indicator", "period_label"])
    shown = set()
    for table, frame in frames.items():
        for row in frame.iter_rows(named=True):
            satisfaction = row["indicator"] == SATISFACTION if "indicator" in row else table.startswith("kpi.satisfaction")
            hidden = satisfaction and any((n or 0) < MIN_CELL_RESPONSES for n in counts_behind(table, row, fan_seen))
            for column, value in row.items():
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                if hidden and column in SATISFACTION_FIGURES:
                    continue
                if column == "campaign_value" and (row["campaign_n"] or 0) < MIN_CELL_RESPONSES:
                    continue
                shown.add(float(value))
    return sorted(shown)


def figure_texts(value: float) -> set[str]:
    """How an output may write the value: rounded or cut to two decimals (every longer form
    starts with the cut one), point or comma."""
    cut = f"{math.floor(value * 100) / 100:.2f}"
    texts = {f"{value:.2f}", cut}
    return texts | {t.replace(".", ",") for t in texts}


def same_figure(a: float, b: float) -> bool:
    return abs(a - b) < 1e-9 or round(a, 4) == round(b, 4)


def searchable_hidden(outputs: Outputs) -> tuple[list[float], set[str]]:
    """The suppressed figures that can be looked for, and their texts: those told apart
    from every figure shown (a share of 1.0 may be withheld in one cell and shown in another)."""
    shown = shown_figures(outputs.published)
    shown_texts = set().union(*[figure_texts(v) for v in shown]) if shown else set()
    hidden = [
        value for value in suppressed_figures(outputs.published)
        if not any(same_figure(value, s) for s in shown) and not figure_texts(value) & shown_texts
    ]
    return hidden, set().union(*[figure_texts(v) for v in hidden]) if hidden else set()


def codes_of(published: Path) -> set[str]:
    """Every instrument and office code in the warehouse (they reach the KPI tables)."""
    con = duckdb.connect(str(published), read_only=True)
    try:
        rows = con.execute(
            "SELECT tukimuoto FROM core.decisions UNION SELECT yksikko FROM core.decisions "
            "UNION SELECT tukimuoto FROM core.feedback WHERE tukimuoto IS NOT NULL AND palvelu = 'maksatus'"
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def logged_names(published: Path) -> list[str]:
    con = duckdb.connect(str(published), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT file_name FROM quality.ingest_log ORDER BY file_name, file_id").fetchall()]
    finally:
        con.close()


def assert_no_hidden_text(text: str, hidden_texts: set[str], where: str) -> None:
    for figure in hidden_texts:
        # Not part of a longer number: "2,33" may stand in "12,33" only as another figure.
        assert not re.search(rf"(?<![\d.,]){re.escape(figure)}", text), f"{where}: suppressed figure {figure}"


# -- readers of each output -------------------------------------------------------------


def workbook_cells(path: Path) -> list[tuple[str, str, str | None, object]]:
    """Every cell of every sheet: (sheet, ref, type, value), with shared strings resolved;
    asserts that no cell holds a formula."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    cells = []
    with zipfile.ZipFile(path) as book:
        names = book.namelist()
        shared = []
        if "xl/sharedStrings.xml" in names:
            root = ET.fromstring(book.read("xl/sharedStrings.xml"))
            shared = [ooxml_text("".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t"))) for si in root.findall("m:si", ns)]
        for name in names:
            if not re.fullmatch(r"xl/worksheets/sheet\d+\.xml", name):
                continue
            xml = book.read(name).decode("utf-8")
            assert "<f>" not in xml and "<f " not in xml, f"{name}: formula element"
            assert "<hyperlink" not in xml, f"{name}: hyperlink"
            for cell in ET.fromstring(xml).iter(f"{{{ns['m']}}}c"):
                assert cell.find("m:f", ns) is None, f"{name} {cell.get('r')}: formula"
                kind, raw = cell.get("t"), cell.find("m:v", ns)
                assert kind in (None, "n", "s", "inlineStr", "b"), f"{name} {cell.get('r')}: cell type {kind}"
                if kind == "s":
                    value = shared[int(raw.text)]
                elif kind == "inlineStr":
                    value = ooxml_text("".join(t.text or "" for t in cell.iter(f"{{{ns['m']}}}t")))
                elif raw is not None:
                    value = float(raw.text)
                else:
                    value = None
                cells.append((name, cell.get("r"), kind, value))
    return cells


def ooxml_text(text: str) -> str:
    """A workbook string as Excel reads it: characters XML cannot hold are written _xHHHH_."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


class HTMLReader(HTMLParser):
    """Tags with their attributes, the text of table cells, script bodies and the text
    outside scripts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.cells: list[str] = []
        self.scripts: list[str] = []
        self.text: list[str] = []  # outside scripts
        self._cell: list[str] | None = None
        self._script: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("td", "th"):
            self._cell = []
        if tag == "script":
            self._script = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._script is not None:
            self._script.append(data)
        else:
            self.text.append(data)


def read_html(text: str) -> HTMLReader:
    reader = HTMLReader()
    reader.feed(text)
    reader.close()
    return reader


def plotly_figures(script: str) -> list[tuple[list, dict]]:
    """The data and layout (without the theme) of every Plotly.newPlot call in a script."""
    decoder = json.JSONDecoder()
    figures = []
    for match in re.finditer(r"Plotly\.newPlot\(\s*\"[^\"]*\",\s*", script):
        data, end = decoder.raw_decode(script, match.end())
        layout, _ = decoder.raw_decode(script, script.index("{", end))
        layout.pop("template", None)  # plotly's own theme (colour scales), not data
        figures.append((data, layout))
    return figures


def walk(value):
    """Every string and number inside nested JSON values."""
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from walk(item)
    else:
        yield value


def markdown_parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def inline_text(token) -> str:
    return "".join(child.content if child.type in ("text", "text_special") else "\n" for child in token.children or [])


def markdown_tables(tokens) -> list[list[list[str]]]:
    """Each table as rows of cell texts (header row first)."""
    tables, row = [], None
    for token in tokens:
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and row is not None:
            row.append(inline_text(token))
        elif token.type == "tr_close":
            tables[-1].append(row)
            row = None
    return tables


def shown_name(name: str) -> str:
    """A logged file name as the Markdown report shows it: on one line."""
    return LINE_BREAKS.sub(" ", name).replace("\x00", "\ufffd").strip()


# -- the checks, for any landing ---------------------------------------------------------


def check_exports(outputs: Outputs, codes: set[str], hidden: list[float], hidden_texts: set[str]) -> None:
    """No formula and no suppressed figure in any export; every code a text cell."""
    cells = workbook_cells(outputs.exports / "maksatus_kpi.xlsx")
    strings = {value for _, _, kind, value in cells if kind in ("s", "inlineStr")}
    for code in codes:
        assert code in strings, f"code {code!r} is not a string cell"
    for sheet, ref, kind, value in cells:
        if isinstance(value, float):
            assert not any(same_figure(value, h) for h in hidden), f"{sheet} {ref}: suppressed figure {value}"
        elif isinstance(value, str):
            assert_no_hidden_text(value, hidden_texts, f"{sheet} {ref}")

    csv_fields = set()
    for path in sorted(outputs.exports.glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle, delimiter=";"))
        for line, row in enumerate(rows, 1):
            for field in row:
                csv_fields.add(field)
                if field.startswith(FORMULA_STARTS):
                    assert NUMBER_TEXT.fullmatch(field), f"{path.name}:{line}: live formula {field!r}"
                if NUMBER_TEXT.fullmatch(field):
                    number = float(field.replace("\u00a0", "").replace(" ", "").replace(",", "."))
                    assert not any(same_figure(number, h) for h in hidden), f"{path.name}:{line}: suppressed {field}"
                else:
                    assert_no_hidden_text(field, hidden_texts, f"{path.name}:{line}")
    for code in codes:
        assert ("'" + code if code.startswith(FORMULA_STARTS) else code) in csv_fields, f"code {code!r} in no CSV"

    for path in sorted(outputs.exports.glob("*.parquet")):
        frame = pl.read_parquet(path)
        for column in frame.select(pl.col(pl.Float64)).columns:
            for value in frame[column].drop_nulls().to_list():
                assert not any(same_figure(value, h) for h in hidden), f"{path.name} {column}: suppressed {value}"


def check_report(outputs: Outputs, names: list[str], hidden_texts: set[str]) -> None:
    """The Markdown report parses to no markup but its own headings and tables, every file
    name shown as it is; the HTML report has only its own tags; no suppressed figure."""
    markdown = (outputs.report / f"{REPORT_NAME}.md").read_text(encoding="utf-8")
    tokens = markdown_parser().parse(markdown)
    every = tokens + [child for t in tokens for child in (t.children or [])]
    assert not {t.type for t in every} & FORBIDDEN_MARKDOWN, {t.type for t in every} & FORBIDDEN_MARKDOWN
    headings = [inline_text(tokens[i + 1]) for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert all(REPORT_HEADINGS.fullmatch(h) for h in headings), headings
    tables = markdown_tables(tokens)
    assert all(len(row) == len(table[0]) for table in tables for row in table)
    files = next(table for table in tables if table[0][0] == "Tiedosto")
    assert [row[0] for row in files[1:]] == [shown_name(n) for n in names]
    assert_no_hidden_text(markdown, hidden_texts, "laatuosio.md")

    page = read_html((outputs.report / f"{REPORT_NAME}.html").read_text(encoding="utf-8"))
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table", "thead", "tbody", "tr", "th", "td"}
    assert {tag for tag, _ in page.tags} <= allowed, {tag for tag, _ in page.tags} - allowed
    for name in names:
        assert name in page.cells, f"file name {name!r} not shown as it is"
    assert_no_hidden_text("".join(page.text), hidden_texts, "laatuosio.html")


def check_dashboards(outputs: Outputs, hidden: list[float], hidden_texts: set[str]) -> set[str]:
    """Only the pages' own tags and links; in plotly's texts no markup but the pages' own;
    no suppressed figure. Returns every text in the figures."""
    plotly_strings = set()
    for spec in PAGES:
        page = read_html((outputs.dashboards / spec.file_name).read_text(encoding="utf-8"))
        allowed = {"html", "head", "meta", "title", "script", "style", "body", "nav", "a", "main", "h1", "p", "div",
                   "section", "h2", "table", "thead", "tbody", "tr", "th", "td"}
        assert {tag for tag, _ in page.tags} <= allowed, {tag for tag, _ in page.tags} - allowed
        for tag, attrs in page.tags:
            if tag == "a":
                assert attrs["href"] in {p.file_name for p in PAGES}
            if tag == "script":
                assert attrs.get("src") in (None, PLOTLY_JS)
        figures = [f for script in page.scripts for f in plotly_figures(script)]
        assert len(figures) == len(spec.figures)
        for value in walk([figures]):
            if isinstance(value, str):
                plotly_strings.add(value)
                # Plotly renders tags in its texts: only the pages' own may stand there.
                assert "<" not in TRUSTED_PLOTLY_MARKUP.sub("", value), f"{spec.file_name}: markup from input {value!r}"
                assert_no_hidden_text(value, hidden_texts, spec.file_name)
            elif isinstance(value, float):
                assert not any(same_figure(value, h) for h in hidden), f"{spec.file_name}: suppressed figure {value}"
        assert_no_hidden_text("".join(page.text), hidden_texts, spec.file_name)
    return plotly_strings


def check_outputs(outputs: Outputs) -> set[str]:
    """Every check on every output; returns the dashboards' texts."""
    hidden, hidden_texts = searchable_hidden(outputs)
    check_exports(outputs, codes_of(outputs.published), hidden, hidden_texts)
    check_report(outputs, logged_names(outputs.published), hidden_texts)
    return check_dashboards(outputs, hidden, hidden_texts)


# -- the tests --------------------------------------------------------------------------


def test_hostile_codes_and_few_responses_reach_no_output_unsafely(hostile):
    stored = codes_of(hostile.published)
    for code in HOSTILE_CODES:  # every hostile code got through ingest (as lower- or upper-case)
        assert {code.lower(), code.upper()} <= stored, code
    hidden, _ = searchable_hidden(hostile)
    # 1-6/2022 and 2021 (3 responses) with their confidence intervals, the campaign (3), every instrument's cells (3)
    assert len(hidden) >= 9
    for mean in (7 / 3, 10 / 3, 5 / 3, 13 / 3, 11 / 3):
        assert any(abs(h - mean) < 1e-9 for h in hidden), mean
    shown = "\n".join(check_outputs(hostile))
    for text in stored | set(logged_names(hostile.published)):  # shown escaped on the dashboards
        assert plotly_text(text) in shown, f"{text!r} not shown escaped"


def test_suppressed_periods_say_so_in_the_report_and_exports(hostile):
    markdown = (hostile.report / f"{REPORT_NAME}.md").read_text(encoding="utf-8")
    tables = markdown_tables(markdown_parser().parse(markdown))
    main = {t[0][1]: t for t in tables if t[0][0] == "Palvelukyky ja laatu"}
    extra = [t for t in tables if t[0][0] == "Lisätieto"]
    # 2021: both periods on 3 responses; no target, so nothing to meet
    satisfaction = next(row for row in main["Tavoite 2021"] if row[0].startswith("Asiakastyytyväisyys"))
    assert satisfaction[2:] == [f"{SUPPRESSED_FI} (n = 3)"] * 2 + [SUPPRESSED_FI] * 2
    assert next(row for row in extra[0] if row[0].startswith("Asiakastyytyväisyyden"))[1:] == [SUPPRESSED_FI] * 2
    # 2022: 1-6 on 3 responses, value and met withheld; 1-12 shown
    satisfaction = next(row for row in main["Tavoite 2022"] if row[0].startswith("Asiakastyytyväisyys"))
    assert satisfaction[2] == f"{SUPPRESSED_FI} (n = 3)" and satisfaction[4] == SUPPRESSED_FI
    assert re.fullmatch(r"\d,\d\d \(n = \d+\)", satisfaction[3]) and satisfaction[5] in ("kyllä", "ei")
    interval = next(row for row in extra[1] if row[0].startswith("Asiakastyytyväisyyden"))
    assert interval[1] == SUPPRESSED_FI and re.fullmatch(r"\d,\d\d–\d,\d\d", interval[2])
    campaign = next(row for row in extra[1] if row[0].startswith("Kampanjakyselyt"))
    assert campaign[1:] == [f"{SUPPRESSED_FI} (n = 3)"] * 2
    # the exports say which figures were withheld, and keep n
    quality = pl.read_parquet(hostile.exports / "kpi_quality_section.parquet")
    period = quality.filter(pl.col("indicator") == SATISFACTION, pl.col("period_label") == "1-6/2022").row(0, named=True)
    assert period["suppressed"] and period["value"] is None and period["met"] is None and period["n"] == 3
    details = pl.read_parquet(hostile.exports / "kpi_quality_section_details.parquet")
    period = details.filter(pl.col("indicator") == SATISFACTION, pl.col("period_label") == "1-6/2022").row(0, named=True)
    assert period["suppressed"] and period["ci_low"] is None and period["ci_high"] is None and period["n"] == 3
    assert period["campaign_suppressed"] and period["campaign_value"] is None and period["campaign_n"] == 3
    with (hostile.exports / "kpi_quality_section.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    row = next(r for r in rows if r["Mittarin tunnus"] == SATISFACTION and r["Jakso"] == "1-6/2022")
    assert (row["Toteuma"], row["Tavoite saavutettu"], row["Lukumäärä"], row["Piilotettu (alle 5 vastausta)"]) == ("", "", "3", "kyllä")
    # the analysts' warehouse keeps the exact figures
    con = duckdb.connect(str(hostile.published), read_only=True)
    try:
        value, met = con.execute(
            "SELECT value, met FROM kpi.quality_section WHERE indicator = ? AND period_label = '1-6/2022'", [SATISFACTION]
        ).fetchall()[0]
    finally:
        con.close()
    assert value == pytest.approx(7 / 3) and met is False


@pytest.mark.parametrize("case", SAFETY_CASES)
def test_output_safety_corpus_case(case, tmp_path):
    """The corpus cases of this class, through every output and the same checks."""
    folder = CORPUS / case
    expected = tomllib.loads((folder / "expected.toml").read_text(encoding="utf-8"))
    landing = lay_out_landing(folder, tmp_path / "landing", expected.get("special", []))
    outputs = run_outputs(landing, tmp_path, today=dt.date(2022, 6, 30))
    hidden, _ = searchable_hidden(outputs)
    assert hidden or not suppressed_figures(outputs.published), f"{case}: no withheld figure can be looked for"
    check_outputs(outputs)


def test_every_kpi_table_is_classified_for_people():
    assert set(PEOPLE_TABLES) == set(FIGURE_TABLES)
    with pytest.raises(ValueError):
        for_people({"core.feedback": pl.DataFrame({"x": [1]})})


# -- the pure functions over generated input -----------------------------------------------

any_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
markup_text = st.text(st.sampled_from(list("\\`*_[]()<>|#~&!:/.@-+=0123456789 \n\r\t\"'{}wWhtpsaZ")), min_size=1, max_size=30)


@settings(max_examples=400, deadline=None)
@given(st.one_of(any_text, markup_text, st.sampled_from(HOSTILE_CODES + HOSTILE_NAME_TAILS)))
def test_markdown_text_renders_as_plain_text_in_a_table_and_a_paragraph(text):
    escaped = markdown_text(text)
    assert "\n" not in escaped and "\r" not in escaped
    expected = shown_name(text)
    parser = markdown_parser()
    tokens = parser.parse(f"| a | b |\n|---|---|\n| {escaped} | x |\n")
    types = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
    assert not types & FORBIDDEN_MARKDOWN
    assert markdown_tables(tokens) == [[["a", "b"], [expected, "x"]]]
    tokens = parser.parse(f"{escaped}\n")
    if expected:
        assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
        assert inline_text(tokens[1]) == expected
        assert not {c.type for c in tokens[1].children} - {"text", "text_special"}
    for autolink in ("http://", "https://", "www."):  # GFM links these without markup
        assert autolink not in escaped.lower()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(any_text, markup_text, st.sampled_from(HOSTILE_CODES)), min_size=1, max_size=8))
def test_csv_safe_leaves_no_formula_start_and_changes_nothing_else(texts):
    # Several text columns: each cell is judged alone, a formula in one leaves its row's others be.
    frame = pl.DataFrame({
        "code": texts, "other": list(reversed(texts)), "month": ["1.2.2022"] * len(texts), "n": list(range(-len(texts), 0)),
    })
    safe = csv_safe(frame)
    assert safe["n"].to_list() == frame["n"].to_list()  # numbers stay numbers
    assert safe["month"].to_list() == frame["month"].to_list()
    for column in ("code", "other"):
        for before, after in zip(frame[column].to_list(), safe[column].to_list()):
            assert after == ("'" + before if before.startswith(FORMULA_STARTS) else before)
            assert not after.startswith(FORMULA_STARTS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(markup_text, st.sampled_from(HOSTILE_CODES)), min_size=1, max_size=6))
def test_workbook_holds_every_text_as_a_string_never_a_formula(tmp_path_factory, texts):
    path = tmp_path_factory.mktemp("book") / "book.xlsx"
    frame = pl.DataFrame({"tukimuoto": texts, "n": list(range(len(texts))), "value": [-1.5] * len(texts)})
    exports._write_workbook(path, {"kpi.backlog": frame})
    cells = workbook_cells(path)  # asserts no formula cell
    strings = [value for _, _, kind, value in cells if kind in ("s", "inlineStr")]
    numbers = [value for _, _, kind, value in cells if isinstance(value, float)]
    assert strings == ["Tukimuoto", "Lukumäärä", "Toteuma", *texts]  # header row, then each text as written
    assert numbers.count(-1.5) == len(texts)  # numbers stay numbers


satisfaction_rows = st.lists(
    st.tuples(st.sampled_from([SATISFACTION, "maksatus_kasittelyaika_pv"]), st.integers(0, 12), st.floats(1, 5), st.integers(0, 12), st.floats(1, 5)),
    min_size=1, max_size=10, unique_by=lambda r: r[0] + str(r[1]) + str(r[3]),
)


@settings(max_examples=200, deadline=None)
@given(satisfaction_rows)
def test_for_people_withholds_every_figure_under_five_responses(rows):
    labels = [f"p{i}" for i in range(len(rows))]
    quality = pl.DataFrame({
        "indicator": [r[0] for r in rows], "period_label": labels, "n": [r[1] for r in rows],
        "value": [r[2] for r in rows], "met": [r[2] > 4 for r in rows],
    })
    details = pl.DataFrame({
        "indicator": [r[0] for r in rows], "period_label": labels, "ci_low": [r[2] - 0.5 for r in rows],
        "ci_high": [r[2] + 0.5 for r in rows], "campaign_n": [r[3] for r in rows], "campaign_value": [r[4] for r in rows],
    })
    monthly = pl.DataFrame({
        "n": [r[1] for r in rows], "mean_score": [r[2] for r in rows], "ci_low": [r[2] - 0.5 for r in rows],
        "ci_high": [r[2] + 0.5 for r in rows], "share_4_5": [0.5] * len(rows), "suppressed": [False] * len(rows),
    })
    people = for_people({"kpi.quality_section": quality, "kpi.quality_section_details": details, "kpi.satisfaction_monthly": monthly})
    for row, q, d, m in zip(rows, people["kpi.quality_section"].iter_rows(named=True),
                            people["kpi.quality_section_details"].iter_rows(named=True),
                            people["kpi.satisfaction_monthly"].iter_rows(named=True)):
        satisfaction, n, value, campaign_n, campaign_value = row
        hidden = satisfaction == SATISFACTION and n < MIN_CELL_RESPONSES
        assert q["suppressed"] == hidden and d["suppressed"] == hidden and q["n"] == n == d["n"]
        assert (q["value"], q["met"], d["ci_low"], d["ci_high"]) == ((None,) * 4 if hidden else (value, value > 4, value - 0.5, value + 0.5))
        campaign_hidden = satisfaction == SATISFACTION and campaign_n < MIN_CELL_RESPONSES
        assert d["campaign_suppressed"] == campaign_hidden
        assert d["campaign_value"] == (None if campaign_hidden else campaign_value)
        assert m["suppressed"] == (n < MIN_CELL_RESPONSES)
        if n < MIN_CELL_RESPONSES:
            assert (m["mean_score"], m["ci_low"], m["ci_high"], m["share_4_5"]) == (None,) * 4
        else:
            assert m["mean_score"] == value


def test_plotly_text_is_shown_as_written():
    for code in HOSTILE_CODES:
        assert "<" not in plotly_text(code) and html.unescape(plotly_text(code)) == code


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_hostile_text_shows_as_written_in_a_browser(hostile):
    """Real Chromium: no script from the input runs, no link or bold comes of it in the
    charts, and the codes and file names read exactly as written (SVG shows a line break
    as a space)."""
    from playwright.sync_api import sync_playwright

    codes = {c for c in codes_of(hostile.published)}
    names = logged_names(hostile.published)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            texts = set()
            for spec in PAGES:
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                errors, dialogs = [], []
                page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
                page.goto((hostile.dashboards / spec.file_name).as_uri())
                page.wait_for_function(
                    "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n", arg=len(spec.figures), timeout=20000
                )
                assert page.locator(".main-svg a").count() == 0, spec.file_name
                assert page.locator(".main-svg [style*='bold']").count() == 0, spec.file_name
                texts |= set(page.locator(".main-svg text").all_text_contents())
                assert errors == [] and dialogs == [], (spec.file_name, errors, dialogs)
                page.close()
            for code in codes:  # every instrument a legend entry of the backlog, every office a bar
                assert " ".join(code.split()) in {" ".join(t.split()) for t in texts}, code
            for name in names:
                assert any(t.startswith(name + " (") for t in texts), name

            page = browser.new_page()
            dialogs = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto((hostile.report / f"{REPORT_NAME}.html").as_uri())
            cells = page.locator("td").all_text_contents()
            assert [n for n in names if n not in cells] == [] and dialogs == []
            assert page.locator("img, script, a, b").count() == 0
            page.close()
        finally:
            browser.close()


def test_dagster_metadata_tables_show_codes_as_text():
    from pipelines.metadata import markdown_table

    codes = HOSTILE_CODES + HOSTILE_NAME_TAILS
    text = markdown_table(pl.DataFrame({"tukimuoto": codes, "n": list(range(len(codes)))}), max_rows=len(codes)).value
    tokens = markdown_parser().parse(text)
    assert not ({t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}) & FORBIDDEN_MARKDOWN
    assert markdown_tables(tokens) == [[["tukimuoto", "n"], *[[shown_name(c), str(i)] for i, c in enumerate(codes)]]]
