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
import polars as pl

from keha_maksatus.config import INDICATORS, PROCESSING_TIME, SATISFACTION
from keha_maksatus.forecast import history, nowcast
from keha_maksatus.history.changes import PART_LABELS_FI, PART_ORDER, QUARANTINED_PART
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
    nowrap: set[int] = field(default_factory=set)  # columns kept on one line (short codes such as 1-12/2022)


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

    blocks += changes_blocks(con)
    blocks += forecast_blocks(con)
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


CHANGES_HEADING = "Muutokset edelliseen raporttiin"
NO_CHANGES_FI = "Suljettujen kausien luvut eivät ole muuttuneet edellisestä raportista (julkaistu {date})."


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(con.execute(
        "SELECT count(*) FROM (SELECT schema_name, table_name FROM duckdb_tables() UNION ALL "
        "SELECT schema_name, view_name FROM duckdb_views()) WHERE schema_name = ? AND table_name = ?",
        [schema, name],
    ).fetchall()[0][0])


def _period_order(label: str) -> tuple[int, int]:
    """1-6/2022 before 1-12/2022 before 1-6/2023."""
    months, year = label.split("/")
    return int(year), int(months.split("-")[-1])


def changes_blocks(con: duckdb.DuckDBPyConnection) -> list[Block]:
    """The section "Muutokset edelliseen raporttiin": each closed period whose value changed
    between the previous publish and this one (history.changes of the newest publication),
    from what was reported to what it is now, and the parts of the change: what changed,
    in which extract, how many applications or responses, and by how much. Nothing when
    the file holds no earlier publish to compare with."""
    if not (_exists(con, "history.changes") and _exists(con, "history.publication")):
        return []
    published = dict(con.execute("SELECT publication_no, published_at FROM history.publication").fetchall())
    if len(published) < 2:
        return []
    newest, previous = sorted(published)[-1], sorted(published)[-2]
    changes = con.sql(
        "SELECT * FROM history.changes WHERE to_publication_no = ? AND complete AND value_changed", params=[newest]
    ).pl()
    blocks: list[Block] = [Heading(2, CHANGES_HEADING)]
    rejected = _rejected_paragraphs(con, newest)
    if changes.is_empty():
        return blocks + [Paragraph(NO_CHANGES_FI.format(date=fi.date(published[previous].date())))] + rejected
    reported = {
        (r["publication_no"], r["indicator"], r["period_label"]): r
        for r in con.sql("SELECT publication_no, indicator, period_label, value, n, suppressed FROM history.quality_section").pl().iter_rows(named=True)
    }
    order = {SATISFACTION: 0, PROCESSING_TIME: 1}
    periods = sorted(
        changes.select(*CHANGE_COLUMNS).unique().iter_rows(named=True),
        key=lambda r: (_period_order(r["period_label"]), order.get(r["indicator"], 2)),
    )
    blocks.append(Paragraph(
        f"Suljettujen kausien luvut, jotka ovat muuttuneet edellisestä raportista (julkaistu "
        f"{fi.date(published[periods[0]['from_publication_no']].date())}), ja muutoksen osat: mikä muuttui, missä poiminnassa, "
        "kuinka monessa hakemuksessa tai vastauksessa ja paljonko se muutti lukua. Osien vaikutukset summautuvat "
        "muutokseen (pyöristys voi näkyä viimeisessä desimaalissa)."
    ))
    parts = Table(["Mittari", "Jakso", "Muutoksen osa", "Poiminta", "Lukumäärä", "Vaikutus"], [], numeric={4, 5}, nowrap={1})
    for period in periods:
        rows = changes.filter(*[pl.col(c) == period[c] for c in CHANGE_COLUMNS]).sort(
            pl.col("part").replace_strict(PART_ORDER, default=len(PART_ORDER)), "file_id", nulls_last=True)
        first = rows.row(0, named=True)
        blocks.append(Paragraph(_change_sentence(first, reported.get((period["from_publication_no"], period["indicator"], period["period_label"])),
                                                 published[period["from_publication_no"]].date())))
        for row in rows.iter_rows(named=True):
            parts.rows.append([
                fi.SHORT_NAMES.get(row["indicator"], row["indicator"]), row["period_label"],
                PART_LABELS_FI.get(row["part"], row["part"]), row["file_name"] or fi.DASH, fi.number(row["items"]),
                _contribution(row),
            ])
    return blocks + [parts] + rejected


CHANGE_COLUMNS = ("indicator", "period_label", "from_publication_no", "to_publication_no")
REJECTED_FI = "Uusissa poiminnoissa hylättyjä rivejä (karanteeni): {files}. Hylätty rivi ei muuta lukuja: rivin aiempi versio jää voimaan."


def _rejected_paragraphs(con: duckdb.DuckDBPyConnection, publication_no: int) -> list[Block]:
    """One sentence naming the extracts that brought rows newly rejected since the
    previous publish, once (their periods are not known), or nothing."""
    rejected = con.execute(
        "SELECT file_name, sum(items) FROM history.changes WHERE to_publication_no = ? AND part = ? AND period_label IS NULL "
        "GROUP BY file_name ORDER BY file_name",
        [publication_no, QUARANTINED_PART],
    ).fetchall()
    if not rejected:
        return []
    files = ", ".join(f"{name} {fi.number(n)} {'rivi' if n == 1 else 'riviä'}" for name, n in rejected)
    return [Paragraph(REJECTED_FI.format(files=files))]


def _change_number(value: float | None, indicator: str, extra: int = 0) -> str:
    return fi.signed(value, fi.DECIMALS.get(indicator, 2) + extra) + _unit(indicator)


def _contribution(row: dict) -> str:
    if row["part"] == QUARANTINED_PART:  # kept per period by an earlier version: the earlier version of a rejected row stands
        return "ei vaikutusta"
    if row["contribution_suppressed"]:
        return SUPPRESSED_FI
    return _change_number(row["contribution"], row["indicator"], extra=1)


def _change_sentence(row: dict, reported: dict | None, published_on) -> str:
    """Käsittelyaika (pv), jakso 1-6/2022: raportoitu 15.7.2022: 30,1 pv (n = 120), nyt 29,8 pv (n = 125); muutos −0,3 pv.
    The earlier value as that publish reported it (history.quality_section)."""
    indicator, unit = row["indicator"], _unit(row["indicator"])
    decimals = fi.DECIMALS.get(indicator, 2)
    if reported is not None:
        before_hidden, before, before_n = reported["suppressed"], reported["value"], reported["n"]
    else:
        before_hidden, before, before_n = row["suppressed_from"], row["value_from"], row["n_from"]
    now_hidden = row["suppressed_to"]

    def shown(value: float | None, hidden: bool) -> str:
        return SUPPRESSED_FI if hidden else fi.DASH if value is None else f"{fi.number(value, decimals)}{unit}"

    before_text, now_text = shown(before, before_hidden), shown(row["value_to"], now_hidden)
    change = fi.DASH
    if not (before_hidden or now_hidden) and before is not None and row["value_to"] is not None:
        change = _change_number(row["value_to"] - before, indicator)
    elif before_hidden or now_hidden:
        change = SUPPRESSED_FI
    return (
        f"{fi.SHORT_NAMES.get(indicator, indicator)}, jakso {row['period_label']}: raportoitu {fi.date(published_on)}: "
        f"{before_text} (n = {fi.number(before_n)}), nyt {now_text} (n = {fi.number(row['n_to'])}); muutos {change}."
    )


NO_FORECAST_FI = "Aineistossa ei ole käynnissä olevaa raportointikautta; ennustettavaa ei ole."
TOO_LITTLE_DATA_FI = (
    "{name}, jakso {period}: ennustetta ei laskettu, koska aineistossa on liian vähän päätöksiä tai vastauksia "
    "ennusteen pohjaksi (käsittelyaika: alle 20 päätöstä viimeisten 365 päivän aikana)."
)
FORECAST_HEADING = "Ennuste vuoden lopun toteumasta"
OFFICES_SHOWN = 10
METHOD_FI = {
    PROCESSING_TIME: (
        "Menetelmä: päätökseen kuluva aika on arvioitu tukimuodoittain Kaplan–Meier-menetelmällä, jossa vireillä "
        "olevat hakemukset ovat keskeneräisiä (sensuroituja) havaintoja, ja käyriä on painotettu kalenterikuukauden "
        "työtahdilla (esimerkiksi heinäkuussa päätöksiä tehdään vähemmän). Vireillä olevien ja vielä saapuvien "
        "hakemusten päätöspäivät on simuloitu näistä käyristä; käyrien estimointivirhe (bootstrap) ja drift ovat "
        "mukana ennustevälissä."
    ),
    SATISFACTION: (
        "Menetelmä: vielä tulevien vastausten määrä ja keskiarvo on simuloitu vastausmäärien ja arvosanojen "
        "kuukausivaihtelun mukaan; ennusteväli sisältää sekä vastausmäärän että keskiarvon epävarmuuden ja mitatun driftin."
    ),
}


def forecast_blocks(con: duckdb.DuckDBPyConnection) -> list[Block]:
    """The section "Ennuste vuoden lopun toteumasta": each running period's forecast (what
    it rests on, in plain words), the what-if levers and the offices that weigh most."""
    forecasts = con.sql("SELECT * FROM kpi.forecast ORDER BY period_end, indicator").pl()
    blocks: list[Block] = [Heading(2, FORECAST_HEADING)]
    # Running periods the nowcast could not forecast (too little data) are named, not dropped.
    unforecast = [
        Paragraph(TOO_LITTLE_DATA_FI.format(name=fi.SHORT_NAMES[indicator], period=period))
        for indicator, period in con.execute(
            "SELECT indicator, period_label FROM kpi.quality_section q WHERE NOT complete AND NOT EXISTS "
            "(SELECT 1 FROM kpi.forecast f WHERE f.indicator = q.indicator AND f.period_label = q.period_label) "
            "ORDER BY period_end, indicator"
        ).fetchall()
    ]
    if forecasts.is_empty():
        return blocks + (unforecast or [Paragraph(NO_FORECAST_FI)])
    blocks.append(Paragraph(
        "Ennuste kertoo, mihin käynnissä olevan raportointikauden luku todennäköisesti päätyy kauden lopussa, kun "
        "tähänastinen toteuma, vireillä olevat hakemukset sekä vielä saapuvat hakemukset ja vastaukset otetaan huomioon. "
        "Mediaani on simuloitujen lopputulosten keskimmäinen; 80 %:n ennusteväliin osuu 80 % ja 95 %:n ennusteväliin "
        "95 % simuloiduista lopputuloksista. Todennäköisyys on niiden simulointien osuus, joissa tavoite saavutetaan."
    ))
    summary = Table(
        ["Mittari", "Jakso", "Toteuma tähän mennessä", "Ennuste jakson lopussa (mediaani)", "80 %:n ennusteväli",
         "95 %:n ennusteväli", "Tavoite", "Tavoite saavutetaan (todennäköisyys)"],
        [], numeric={2, 3, 4, 5, 6, 7}, nowrap={1},
    )
    details: list[Block] = []
    for row in forecasts.iter_rows(named=True):
        indicator, hidden = row["indicator"], bool(row.get("suppressed"))
        figure = (lambda v: SUPPRESSED_FI) if hidden else (lambda v: _forecast_number(v, indicator))  # noqa: E731
        summary.rows.append([
            fi.SHORT_NAMES[indicator], row["period_label"],
            f"{figure(row['seen_value'])} (n = {fi.number(row['seen_n'])}, {fi.date(row['as_of'])})",
            figure(row["median"]),
            SUPPRESSED_FI if hidden else _interval(row, "80", indicator),
            SUPPRESSED_FI if hidden else _interval(row, "95", indicator),
            fi.target(row["target_op"], row["target"], indicator),
            SUPPRESSED_FI if hidden else fi.probability(row["probability_meets_target"]),
        ])
        details += [Heading(3, f"{fi.SHORT_NAMES[indicator]}, jakso {row['period_label']}"),
                    Paragraph(_forecast_sentence(row)), Paragraph(_basis_sentence(row)), Paragraph(METHOD_FI[indicator])]
    blocks += [summary, *details, *unforecast]
    blocks += _what_if_blocks(con, forecasts)
    blocks += _office_blocks(con)
    return blocks


def _unit(indicator: str) -> str:
    return " pv" if indicator == PROCESSING_TIME else ""


def _forecast_number(value: float | None, indicator: str) -> str:
    return fi.number(value, fi.DECIMALS[indicator])


def _interval(row: dict, level: str, indicator: str) -> str:
    low, high = row[f"low_{level}"], row[f"high_{level}"]
    if low is None or high is None:
        return fi.DASH
    return f"{_forecast_number(low, indicator)}–{_forecast_number(high, indicator)}"


def _forecast_sentence(row: dict) -> str:
    """The value so far, the forecast, its intervals and the chance of meeting the target."""
    indicator, unit = row["indicator"], _unit(row["indicator"])
    what = "keskimääräinen käsittelyaika" if indicator == PROCESSING_TIME else "asiakastyytyväisyyden keskiarvo (1–5)"
    counted = "päätöstä" if indicator == PROCESSING_TIME else "vastausta"
    head = f"Tilanne {fi.date(row['as_of'])}, jakson loppuun {fi.number(row['days_left'])} päivää. "
    if row.get("suppressed"):
        return head + (
            f"Jakson {row['period_label']} {what} perustuu tähän mennessä {fi.number(row['seen_n'])} vastaukseen: "
            f"luku ja sen ennuste jätetään näyttämättä ({SUPPRESSED_FI})."
        )
    text = head + (
        f"Jakson {row['period_label']} {what} on tähän mennessä {_forecast_number(row['seen_value'], indicator)}{unit} "
        f"({fi.number(row['seen_n'])} {counted}). Ennuste jakson lopun toteumaksi on "
        f"{_forecast_number(row['median'], indicator)}{unit} (mediaani); 80 %:n ennusteväli on "
        f"{_interval(row, '80', indicator)}{unit} ja 95 %:n ennusteväli {_interval(row, '95', indicator)}{unit}."
    )
    if row["target_op"] is None:
        return text + f" Vuodelle {row['period_end'].year} ei ole asetettu tavoitetta."
    if row["probability_meets_target"] is None:
        return text + " Tavoitteen saavuttamisen todennäköisyyttä ei voitu arvioida."
    return text + (
        f" Tavoite ({fi.target(row['target_op'], row['target'], indicator)}{unit}) saavutetaan ennusteen mukaan "
        f"{fi.probability(row['probability_meets_target'])}:n todennäköisyydellä."
    )


def _basis_sentence(row: dict) -> str:
    """What the forecast rests on: counts still to come, the basis, the drift, the simulation."""
    end, n = fi.date(row["period_end"]), fi.number
    if row["indicator"] == PROCESSING_TIME:
        parts = [
            f"Ennuste perustuu seuraaviin. {fi.date(row['as_of'])} vireillä on {n(row['pending_n'])} hakemusta, joista "
            f"arviolta {n(row['pending_expected_in_period'])} päätetään {end} mennessä ja tulee jakson lukuun.",
            f"Jakson loppuun mennessä saapuu arviolta {n(row['expected_arrivals'])} uutta hakemusta, joista noin "
            f"{n(row['arrivals_expected_in_period'])} ehditään päättää jakson aikana.",
            f"Jakson luku perustuu lopulta arviolta {n(row['expected_n'])} päätökseen.",
            f"Päätösaikojen jakaumat on opittu viimeisten {n(history.WINDOW_DAYS)} päivän {n(row['basis_n'])} päätöksestä.",
            f"Työtahdin vaihtelu tulevina kuukausina (drift) on mukana ennustevälissä: keskihajonta "
            f"{n(row['drift_sigma'] * 100, 1)} %, mitoitettu takautuvalla testauksella (ennusteet menneinä päivinä "
            "verrattuina toteutuneisiin).",
        ]
    else:
        parts = [
            f"Ennuste perustuu seuraaviin. Jakson loppuun mennessä odotetaan vielä noin {n(row['expected_arrivals'])} "
            f"arvosanan sisältävää vastausta, jolloin jakson luku perustuu arviolta {n(row['expected_n'])} vastaukseen.",
            f"Tulevien vastausten taso on arvioitu viimeisten {n(nowcast.SCORE_WINDOW_DAYS)} päivän "
            f"{n(row['basis_n'])} vastauksesta.",
            f"Kuukausikeskiarvojen historiasta mitattu drift on noin {n(row['drift_sigma'], 2)} pistettä (keskihajonta), "
            "ja se on mukana ennustevälissä.",
        ]
    parts.append(
        f"Simulointeja {n(row['draws'])}, siemenluku {row['seed']}: sama aineisto ja siemenluku antavat saman ennusteen."
    )
    return " ".join(parts)


def what_if_table(con: duckdb.DuckDBPyConnection) -> Table | None:
    """The what-if levers as a table: rows the N oldest pending applications, columns the
    date they are decided by; a cell the forecast median and the chance of meeting the target."""
    levers = con.sql("SELECT * FROM kpi.forecast_what_if ORDER BY oldest_n, decided_by").pl()
    if levers.is_empty():
        return None
    pending = con.sql(
        "SELECT pending_n FROM kpi.forecast WHERE indicator = ? AND period_label = ?",
        params=[PROCESSING_TIME, levers["period_label"][0]],
    ).pl()
    everything = pending["pending_n"][0] if pending.height else None
    dates = sorted(set(levers["decided_by"]))
    table = Table(
        ["Vanhimmat vireillä olevat hakemukset päätetään", *[f"{fi.date(d)} mennessä" for d in dates]],
        [], numeric=set(range(1, 1 + len(dates))),
    )
    for (oldest,), group in levers.group_by("oldest_n", maintain_order=True):
        cells = {r["decided_by"]: r for r in group.iter_rows(named=True)}
        label = f"kaikki {fi.number(oldest)}" if oldest == everything else f"{fi.number(oldest)} vanhinta"
        table.rows.append([label, *[_lever_cell(cells.get(d)) for d in dates]])
    return table


def _lever_cell(row: dict | None) -> str:
    if row is None:
        return fi.DASH
    chance = "" if row["probability_meets_target"] is None else f" ({fi.probability(row['probability_meets_target'])})"
    return f"{fi.number(row['median'], 1)} pv{chance}"


def _what_if_blocks(con: duckdb.DuckDBPyConnection, forecasts) -> list[Block]:
    table = what_if_table(con)
    if table is None:
        return []
    levers = con.sql("SELECT * FROM kpi.forecast_what_if ORDER BY oldest_n, decided_by").pl()
    base = next((r for r in forecasts.iter_rows(named=True)
                 if r["indicator"] == PROCESSING_TIME and r["period_label"] == levers["period_label"][0]), None)
    as_of = levers["as_of"][0]
    # The example: 100 oldest (or the nearest count), decided about a month after the as-of date.
    count = min(set(levers["oldest_n"]), key=lambda c: (abs(c - 100), c))
    day = min(set(levers["decided_by"]), key=lambda d: (abs((d - as_of).days - 30), d))
    example = levers.filter((levers["oldest_n"] == count) & (levers["decided_by"] == day)).row(0, named=True)
    chance = "" if example["probability_meets_target"] is None else (
        f"; tavoitteen todennäköisyys {fi.probability(example['probability_meets_target'])}"
    )
    now = "" if base is None else (
        f" Ilman tällaista muutosta ennuste on {fi.number(base['median'], 1)} pv"
        + ("" if base["probability_meets_target"] is None else f" ({fi.probability(base['probability_meets_target'])})")
        + "."
    )
    text = (
        f"Esimerkki: jos {fi.number(count)} vanhinta vireillä olevaa hakemusta päätetään {fi.date(day)} mennessä, "
        f"jakson {example['period_label']} käsittelyajan ennuste on {fi.number(example['median'], 1)} pv "
        f"(muutos {fi.signed(example['change_days'], 1)} pv{chance}).{now}"
    )
    if (levers["change_days"].drop_nulls() > 0).any():
        text += (
            " Vanhojen hakemusten päättäminen jakson aikana nostaa jakson keskiarvoa, koska niiden koko odotusaika tulee "
            "mukaan lukuun; jakson jälkeen päätettyinä ne nostavat seuraavan jakson lukua."
        )
    return [
        Heading(3, "Mitä jos vanhimmat vireillä olevat hakemukset päätetään?"),
        Paragraph(text),
        Paragraph("Taulukossa ennusteen mediaani ja suluissa tavoitteen saavuttamisen todennäköisyys."),
        table,
    ]


def office_table(con: duckdb.DuckDBPyConnection, limit: int | None = OFFICES_SHOWN) -> Table | None:
    """Pending applications by office, the offices with the largest expected effect on the
    period's mean first: counts only, no application ids."""
    offices = con.sql(
        """
        SELECT yksikko, count(*) AS pending, sum(probability_over_30_days) AS over_30,
               sum(probability_after_period_end) AS after_end, sum(expected_effect_days) AS effect
        FROM kpi.pending_at_risk GROUP BY yksikko ORDER BY effect DESC NULLS LAST, pending DESC, yksikko
        """
    ).pl()
    if offices.is_empty():
        return None
    table = Table(
        ["Yksikkö", "Vireillä", "Arviolta yli 30 päivää", "Arviolta päätetään jakson jälkeen", "Odotettu vaikutus keskiarvoon (pv)"],
        [], numeric={1, 2, 3, 4},
    )
    shown = offices if limit is None else offices.head(limit)
    for row in shown.iter_rows(named=True):
        table.rows.append([row["yksikko"], fi.number(row["pending"]), fi.number(row["over_30"]), fi.number(row["after_end"]),
                           fi.signed(row["effect"], 2)])
    rest = offices.slice(shown.height)
    if rest.height:
        table.rows.append([f"muut {fi.number(rest.height)} yksikköä", fi.number(rest["pending"].sum()), fi.number(rest["over_30"].sum()),
                           fi.number(rest["after_end"].sum()), fi.signed(rest["effect"].sum(), 2)])
    table.rows.append(["yhteensä", fi.number(offices["pending"].sum()), fi.number(offices["over_30"].sum()),
                       fi.number(offices["after_end"].sum()), fi.signed(offices["effect"].sum(), 2)])
    return table


def _office_blocks(con: duckdb.DuckDBPyConnection) -> list[Block]:
    table = office_table(con)
    if table is None:
        return []
    as_of, label = con.sql("SELECT any_value(as_of), any_value(period_label) FROM kpi.pending_at_risk").fetchall()[0]
    return [
        Heading(3, "Vireillä olevat hakemukset yksiköittäin"),
        Paragraph(
            f"Yksiköt, joiden {fi.date(as_of)} vireillä olleilla hakemuksilla on suurin odotettu vaikutus jakson {label} "
            f"keskimääräiseen käsittelyaikaan. Arviot ovat hakemusten todennäköisyyksien summia; vaikutus on päivinä "
            f"(positiivinen nostaa keskiarvoa, kahden desimaalin tarkkuudella, koska yksittäisen yksikön vaikutus on pieni)."
        ),
        table,
    ]


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


def read_report(published_path: Path) -> list[Block]:
    """The report's blocks from the published warehouse, as people may see it."""
    con = open_for_people(published_path)
    try:
        return build_report(con)
    finally:
        con.close()


def write_report(published_path: Path, out_dir: Path) -> list[Path]:
    """Write laatuosio.md and laatuosio.html from the published warehouse."""
    blocks = read_report(published_path)
    build = new_build_directory(out_dir)
    for suffix, text in ((".md", render_markdown(blocks)), (".html", render_html(blocks))):
        (build / f"{REPORT_NAME}{suffix}").write_text(text, encoding="utf-8")
    replace_directory(build, out_dir)
    return [out_dir / f"{REPORT_NAME}.md", out_dir / f"{REPORT_NAME}.html"]
