"""The dashboards' plotly figures, each built from what people may see of the published
warehouse (disclosure.open_for_people): satisfaction figures under 5 responses arrive
withheld, and free text is never there.

Every bar and point shows the count it rests on (n), as text and in its hover; thin cells
(under THIN_DECISIONS decisions, or withheld satisfaction) are drawn lighter, hatched or
open, with a legend entry saying so; a first month whose data starts after its 1st day is
marked partial; a chart with nothing to draw says so in Finnish.

Plotly renders some HTML in titles, labels, legends and hover text, so every text from
the input (codes, file names, rules) and every text with < or > goes in through
plotly_text. Layout numbers (positions, widths) are whole or stay off quarters and
thirds, where a withheld mean or share could lie: no number in a figure may look like one.

A figure is a plain dict (`data`: traces, `layout`), written as plotly's graph objects would
write it: columns as typed arrays, titles as {"text": ...}, a template always set. Building
through graph objects validated every property at each step, most of a page's build time.
"""

from __future__ import annotations

import datetime as dt
import functools
import weakref
from dataclasses import dataclass

import duckdb
import plotly.io as pio
import polars as pl
from _plotly_utils.utils import to_typed_array_spec

from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.kpi import MIN_CELL_RESPONSES
from keha_maksatus.outputs import finnish as fi
from keha_maksatus.outputs.disclosure import SUPPRESSED_FI
from keha_maksatus.outputs.rendering import plotly_text
from keha_maksatus.outputs.report import Table, what_if_table

BLUE, ORANGE, GREY, RED, GREEN = "#003580", "#e07b00", "#8c8c8c", "#b00020", "#1b7f3b"
LIGHT_BLUE, LIGHT_ORANGE = "#a9bbd9", "#f3c58f"
THIN_DECISIONS = 20  # a processing-time cell on fewer decisions is drawn as uncertain
NO_DATA_FI = "Ei tietoja tältä ajalta"
THIN_FI = f"alle {THIN_DECISIONS} päätöstä: epävarma"
HIDDEN_FI = f"piilotettu: {SUPPRESSED_FI}"
PARTIAL_FI = "osittainen kuukausi"
MINUS = "\u2212"
Figure = dict  # {"data": [trace, ...], "layout": {...}}, as plotly.io.to_html takes it


@functools.cache
def template(name: str) -> dict:
    """A registered plotly template as a figure carries it (shared: never changed)."""
    return pio.templates[name].to_plotly_json()


@functools.cache
def charts_template() -> dict:
    """plotly_white for the trace types drawn here: the whole template carries defaults for
    two dozen trace types, copied into every figure (most of a page's size)."""
    white = template("plotly_white")
    return {"data": {kind: white["data"][kind] for kind in ("scatter", "bar")}, "layout": white["layout"]}


def figure(*traces: dict, **layout) -> Figure:
    """A figure of traces, with plotly's default template until set otherwise."""
    return {"data": list(traces), "layout": {"template": template("plotly"), **layout}}


def trace(kind: str, **props) -> dict:
    """A trace of kind (scatter, bar, indicator); polars columns as a graph object's to_dict
    writes them (numbers as base64 typed arrays)."""
    return {"type": kind, **{key: to_typed_array_spec(value.to_numpy()) if isinstance(value, pl.Series) else value
                             for key, value in props.items()}}


def update(target: dict, **props) -> None:
    """Set props in target as plotly's update does: dicts merged into dicts, anything else
    replaced (a template is set whole, not through here)."""
    for key, value in props.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            update(target[key], **value)
        else:
            target[key] = value


def add_trace(fig: Figure, kind: str, **props) -> None:
    fig["data"].append(trace(kind, **props))


def add_annotations(fig: Figure, *annotations: dict) -> None:
    fig["layout"].setdefault("annotations", []).extend(annotations)


def add_shape(fig: Figure, shape: dict) -> None:
    fig["layout"].setdefault("shapes", []).append(shape)


def _layout(fig: Figure, title: str, y_title: str = "", height: int = 400, months_on_x: bool = False) -> Figure:
    update(
        fig["layout"], title={"text": title}, height=height, separators=", ",
        margin=dict(l=60, r=20, t=60, b=40), yaxis={"title": {"text": y_title}},
        legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0),
    )
    fig["layout"]["template"] = charts_template()
    update(fig["layout"], xaxis={"automargin": True}, yaxis={"automargin": True})
    if months_on_x:
        update(fig["layout"], xaxis={"tickformat": "%m/%Y"})  # month numbers, not English month names
    return fig


def no_data(title: str, message: str = NO_DATA_FI) -> Figure:
    """A chart with nothing to draw: its title and the message, no empty grid."""
    fig = figure(xaxis={"visible": False}, yaxis={"visible": False})
    add_annotations(fig, dict(text=message, x=0, y=1, xref="paper", yref="paper", xanchor="left", yanchor="top", showarrow=False,
                              font=dict(size=18, color=GREY)))
    return _layout(fig, title, height=240)


def _integer_axis(fig: Figure, largest: int | None, axis: str = "y") -> None:
    """Whole-number ticks (1, 2, 5, 10, 20, 50, ... apart, at most about 8) on a count axis."""
    step = 1
    while (largest or 0) / step > 8:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2
    update(fig["layout"], **{f"{axis}axis": dict(tick0=0, dtick=step, tickformat=",d", rangemode="tozero")})


def _n_text(n: int | None) -> str:
    return f"n={fi.number(n)}"


def _signed(value: float, decimals: int) -> str:
    text = fi.number(abs(value), decimals)
    if text.strip("0,") == "":
        return f"±{text}"
    return ("+" if value > 0 else MINUS) + text


def _targets(con: duckdb.DuckDBPyConnection, indicator: str) -> pl.DataFrame:
    return con.sql(
        "SELECT DISTINCT year(period_start) AS year, target_op, target FROM kpi.quality_section "
        "WHERE indicator = ? AND target IS NOT NULL ORDER BY 1",
        params=[indicator],
    ).pl()


def _add_target_lines(fig: Figure, targets: pl.DataFrame, indicator: str) -> None:
    for year, op, target in targets.iter_rows():
        add_trace(
            fig, "scatter",
            x=[dt.date(year, 1, 1), dt.date(year, 12, 31)], y=[target, target], mode="lines",
            line=dict(color=RED, dash="dash"), name=plotly_text(f"Tavoite {year}: {fi.target(op, target, indicator)}"), hoverinfo="skip",
        )


def _add_target_hline(fig: Figure, con: duckdb.DuckDBPyConnection, indicator: str, year: int) -> None:
    """The year's target as a dashed line across a bar chart, labelled with it."""
    target = _targets(con, indicator).filter(pl.col("year") == year)
    if target.height:
        _, op, value = target.row(0)
        unit = " pv" if indicator == PROCESSING_TIME else ""
        add_shape(fig, dict(type="line", line=dict(color=RED, dash="dash"), x0=0, x1=1, xref="x domain", y0=value, y1=value, yref="y"))
        add_annotations(fig, dict(text=plotly_text(f"tavoite {fi.target(op, value, indicator)}{unit}"), font=dict(color=RED),
                                  bgcolor="rgba(255,255,255,0.85)", showarrow=False, x=1, xanchor="right", xref="x domain",
                                  y=value, yanchor="bottom", yref="y"))


# history_start by connection: eight charts ask, each a scan of the whole table at scale.
_HISTORY_STARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def history_start(con: duckdb.DuckDBPyConnection, kind: str) -> dt.date | None:
    """The first decision day (kind `decisions`) or answer day (`feedback`) of the whole
    history: two dates, no rows, from the snapshot open_for_people attached (read once
    per connection)."""
    starts = _HISTORY_STARTS.setdefault(con, {})
    if kind not in starts:
        column, table = ("paatetty", "core.decisions") if kind == "decisions" else ("vastattu", "core.feedback")
        try:
            starts[kind] = con.execute(f"SELECT min({column})::DATE FROM published_file.{table}").fetchall()[0][0]
        except duckdb.Error:
            starts[kind] = None
    return starts[kind]


def _partial_month(con: duckdb.DuckDBPyConnection, kind: str, first_month: dt.date | None) -> dt.date | None:
    """The history's first month when its data starts after the month's 1st day, else None."""
    start = history_start(con, kind)
    if first_month is None or start is None or start.day == 1 or start.replace(day=1) != first_month:
        return None
    return start


def _mark_partial(fig: Figure, start: dt.date | None) -> None:
    if start is None:
        return
    month = start.replace(day=1)  # points and bars stand at the month's first day
    x0, x1 = month - dt.timedelta(days=15), month + dt.timedelta(days=15)
    add_shape(fig, dict(type="rect", fillcolor="rgba(140,140,140,0.2)", line=dict(width=0), x0=x0, x1=x1, xref="x", y0=0, y1=1,
                        yref="y domain"))
    add_annotations(fig, dict(text=f"{PARTIAL_FI} (alkaa {fi.date(start)})", font=dict(size=10, color=GREY), showarrow=False,
                              x=x0, xanchor="left", xref="x", y=1, yanchor="top", yref="y domain"))


def _legend_marker(fig: Figure, name: str, **marker) -> None:
    """A legend entry with no data: what a marker style means."""
    add_trace(fig, "scatter", x=[None], y=[None], mode="markers", name=name, marker=dict(size=11, **marker), hoverinfo="skip")


def headline_indicators(con: duckdb.DuckDBPyConnection) -> Figure:
    """Each indicator's newest period: the value, its difference to the target and its
    change from the previous period of the same kind (1-6 or 1-12 of the year before)."""
    periods = con.sql(
        "SELECT indicator, period_label, period_start, period_end, complete, target_op, target, value, n, met, suppressed "
        "FROM kpi.quality_section ORDER BY indicator, period_end DESC, period_start"
    ).pl()
    latest = periods.group_by("indicator", maintain_order=True).first()
    fig = figure()
    columns = max(1, latest.height)
    for i, row in enumerate(latest.iter_rows(named=True)):
        indicator, decimals = row["indicator"], fi.DECIMALS[row["indicator"]]
        unit = " pv" if indicator == PROCESSING_TIME else ""
        left, right = i / columns + 0.03, (i + 1) / columns - 0.01  # centre 0.24, 0.74: off the quarters
        center = round((left + right) / 2, 3)
        status = "" if row["complete"] else " (kesken)"
        head = (f"{plotly_text(fi.SHORT_NAMES[indicator])}<br><span style='font-size:0.7em'>"
                + plotly_text(f"{row['period_label']}{status}, tavoite {fi.target(row['target_op'], row['target'], indicator)}, "
                              f"n = {fi.number(row['n'])}") + "</span>")
        lines: list[tuple[str, str]] = []
        if not row["n"] or row["suppressed"]:
            add_annotations(fig, dict(text=head, x=center, y=0.98, xref="paper", yref="paper", showarrow=False, yanchor="top",
                                      font=dict(size=17)))
            lines.append((NO_DATA_FI if not row["n"] else f"Arvo piilotettu ({SUPPRESSED_FI})", GREY))
        else:
            add_trace(
                fig, "indicator", mode="number", value=row["value"], number=dict(valueformat=f".{decimals}f"),
                title=dict(text=head), domain=dict(x=[left, right], y=[0.42, 1]),
            )
            lines += _target_difference(row, decimals, unit)
            lines += _previous_change(row, periods, decimals, unit)
        for line, (text, color) in enumerate(lines):
            add_annotations(fig, dict(text=plotly_text(text), x=center, y=0.3 - 0.16 * line, xref="paper", yref="paper",
                                      showarrow=False, font=dict(size=14 if line == 0 else 12, color=color)))
    update(fig["layout"], height=300, separators=", ", margin=dict(l=20, r=20, t=40, b=10))
    return fig


def _higher_is_better(indicator: str) -> bool:
    return indicator == SATISFACTION


def _target_difference(row: dict, decimals: int, unit: str) -> list[tuple[str, str]]:
    if row["target"] is None:
        return [("Vuodelle ei ole tavoitetta", GREY)]
    difference = row["value"] - row["target"]
    side = "yli tavoitteen" if difference > 0 else "alle tavoitteen" if difference < 0 else "tavoitteen tasalla"
    arrow = "▲ " if difference > 0 else "▼ " if difference < 0 else ""
    color = GREEN if row["met"] else RED
    return [(f"{arrow}{fi.number(abs(difference), decimals)}{unit} {side} ({fi.target(row['target_op'], row['target'], row['indicator'])}{unit})", color)]


def _previous_change(row: dict, periods: pl.DataFrame, decimals: int, unit: str) -> list[tuple[str, str]]:
    kind = row["period_label"].split("/")[0]
    previous_label = f"{kind}/{row['period_start'].year - 1}"
    previous = periods.filter((pl.col("indicator") == row["indicator"]) & (pl.col("period_label") == previous_label))
    if previous.height == 0 or not previous["n"][0]:
        return [("Muutos edellisestä vastaavasta jaksosta: ei edellistä jaksoa", GREY)]
    if previous["suppressed"][0]:
        return [(f"Muutos jaksosta {previous_label}: ei laskettu ({SUPPRESSED_FI})", GREY)]
    before = previous["value"][0]
    change = row["value"] - before
    better = change > 0 if _higher_is_better(row["indicator"]) else change < 0
    color = GREY if fi.number(abs(change), decimals).strip("0,") == "" else (GREEN if better else RED)
    return [(f"Muutos jaksosta {previous_label} ({fi.number(before, decimals)}{unit}): {_signed(change, decimals)}{unit}", color)]


def _point_style(thin: list[bool], color: str) -> dict:
    return dict(color=[LIGHT_BLUE if t else color for t in thin], size=8,
                symbol=["circle-open" if t else "circle" for t in thin], line=dict(color=color, width=2))


def monthly_kpi(con: duckdb.DuckDBPyConnection, indicator: str) -> Figure:
    trend = con.sql("SELECT * FROM kpi.monthly_trend WHERE indicator = ? ORDER BY month", params=[indicator]).pl()
    satisfaction = indicator == SATISFACTION
    title = "Asiakastyytyväisyys kuukausittain (kohtaamis- ja jälkikyselyt)" if satisfaction else "Käsittelyaika kuukausittain"
    if trend.height == 0:
        return no_data(title)
    fig = figure()
    what = "vastausta" if satisfaction else "päätöstä"
    shown = trend.filter(~pl.col("suppressed"))
    if satisfaction:
        band = shown.filter(pl.col("ci_low").is_not_null())
        add_trace(fig, "scatter", x=band["month"], y=band["ci_high"], mode="lines", line=dict(width=0), showlegend=False,
                  hoverinfo="skip")
        add_trace(fig, "scatter", x=band["month"], y=band["ci_low"], mode="lines", line=dict(width=0), fill="tonexty",
                  fillcolor="rgba(0,53,128,0.15)", name="95 %:n luottamusväli", hoverinfo="skip")
    thin = [False] * shown.height if satisfaction else [n < THIN_DECISIONS for n in shown["n"]]
    add_trace(
        fig, "scatter",
        x=shown["month"], y=shown["value"], mode="lines+markers+text", line=dict(color=BLUE),
        name=f"Kuukauden keskiarvo (luku pisteen yllä: {what})", marker=_point_style(thin, BLUE),
        text=[fi.number(n) for n in shown["n"]], textposition="top center", textfont=dict(size=9, color=GREY),
        customdata=shown["n"], hovertemplate=f"%{{x|%m/%Y}}: %{{y:.{fi.DECIMALS[indicator]}f}} (n = %{{customdata}})<extra></extra>",
    )
    if any(thin):
        _legend_marker(fig, THIN_FI, symbol="circle-open", color=LIGHT_BLUE, line=dict(color=BLUE, width=2))
    _add_hidden_months(fig, trend.filter(pl.col("suppressed")), "")
    _add_target_lines(fig, _targets(con, indicator), indicator)
    _mark_partial(fig, _partial_month(con, "feedback" if satisfaction else "decisions", trend["month"].min()))
    return _layout(fig, title, "keskiarvo (1–5)" if satisfaction else "päivää", months_on_x=True)


def _add_hidden_months(fig: Figure, hidden: pl.DataFrame, survey: str) -> None:
    """Withheld satisfaction cells: a grey cross at the foot of the 1-5 scale, with n."""
    if hidden.height == 0:
        return
    label = f"{survey}: " if survey else ""
    add_trace(
        fig, "scatter",
        x=hidden["month"], y=[1] * hidden.height, mode="markers+text", name=HIDDEN_FI + (f" ({survey})" if survey else ""),
        marker=dict(symbol="x-open", size=10, color=GREY), cliponaxis=False,
        text=[fi.number(n) for n in hidden["n"]], textposition="top center", textfont=dict(size=9, color=GREY),
        customdata=hidden["n"], hovertemplate=f"%{{x|%m/%Y}}: {label}piilotettu (n = %{{customdata}})<extra></extra>",
    )


def processing_time_mean_median(con: duckdb.DuckDBPyConnection) -> Figure:
    months = con.sql(
        "SELECT * FROM kpi.processing_time_monthly WHERE tukimuoto IS NULL AND yksikko IS NULL ORDER BY month"
    ).pl()
    title = "Käsittelyaika kuukausittain: keskiarvo, mediaani ja 90 % persentiili"
    if months.height == 0:
        return no_data(title)
    thin = [n < THIN_DECISIONS for n in months["n"]]
    fig = figure()
    hover = "%{x|%m/%Y}: %{y:.1f} pv (n = %{customdata})<extra>%{fullData.name}</extra>"
    add_trace(fig, "scatter", x=months["month"], y=months["mean_days"], name="Keskiarvo (luku pisteen yllä: päätöstä)",
              mode="lines+markers+text", line=dict(color=BLUE), marker=_point_style(thin, BLUE),
              text=[fi.number(n) for n in months["n"]], textposition="top center", textfont=dict(size=9, color=GREY),
              customdata=months["n"], hovertemplate=hover)
    add_trace(fig, "scatter", x=months["month"], y=months["median_days"], name="Mediaani", mode="lines+markers",
              line=dict(color=ORANGE), marker=_point_style(thin, ORANGE), customdata=months["n"], hovertemplate=hover)
    add_trace(fig, "scatter", x=months["month"], y=months["p90_days"], name="90 % persentiili", mode="lines+markers",
              line=dict(color=GREY, dash="dot"), marker=_point_style(thin, GREY), customdata=months["n"], hovertemplate=hover)
    if any(thin):
        _legend_marker(fig, THIN_FI, symbol="circle-open", color=LIGHT_BLUE, line=dict(color=BLUE, width=2))
    _add_target_lines(fig, _targets(con, PROCESSING_TIME), PROCESSING_TIME)
    _mark_partial(fig, _partial_month(con, "decisions", months["month"].min()))
    return _layout(fig, title, "päivää", months_on_x=True)


def _bars(x: list, y: list, n: list[int], thin: list[bool], color: str, light: str, name: str, hover: str,
          customdata: list | None = None, orientation: str = "v") -> list[dict]:
    """Bars with their n as text; thin ones as a second, lighter and hatched trace of their own."""
    traces = []
    for is_thin in (False, True):
        keep = [i for i, t in enumerate(thin) if t == is_thin]
        if not keep:
            continue
        pick = lambda values: [values[i] for i in keep]  # noqa: E731
        values = dict(x=pick(x), y=pick(y)) if orientation == "v" else dict(x=pick(y), y=pick(x))
        traces.append(trace(
            "bar",
            **values, orientation=orientation, name=THIN_FI if is_thin else name,
            marker=dict(color=light if is_thin else color, pattern=dict(shape="/" if is_thin else "", fgcolor=color)),
            text=[_n_text(v) for v in pick(n)], textposition="outside", cliponaxis=False, textfont=dict(size=10),
            customdata=pick(customdata) if customdata is not None else pick(n), hovertemplate=hover,
        ))
    return traces


def share_within_30_days(con: duckdb.DuckDBPyConnection) -> Figure:
    months = con.sql(
        "SELECT month, n, share_within_30_days FROM kpi.processing_time_monthly WHERE tukimuoto IS NULL AND yksikko IS NULL ORDER BY month"
    ).pl()
    title = "30 päivässä tehtyjen päätösten osuus"
    if months.height == 0:
        return no_data(title)
    fig = figure(*_bars(
        months["month"].to_list(), months["share_within_30_days"].to_list(), months["n"].to_list(),
        [n < THIN_DECISIONS for n in months["n"]], BLUE, LIGHT_BLUE, "Osuus (pylvään yllä: päätöksiä)",
        "%{x|%m/%Y}: %{y:.0%} (n = %{customdata})<extra></extra>",
    ))
    for bars in fig["data"]:
        update(bars, textangle=-90, textfont=dict(size=9))
    update(fig["layout"], barmode="overlay", yaxis=dict(tickformat=".0%", range=[0, 1.15], tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1]))
    _mark_partial(fig, _partial_month(con, "decisions", months["month"].min()))
    return _layout(fig, title, "osuus päätöksistä", months_on_x=True)


def _latest_year(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int | None:
    return con.execute(f"SELECT max(year({column})) FROM {table}").fetchall()[0][0]


def processing_time_by(con: duckdb.DuckDBPyConnection, dimension: str) -> Figure:
    """Mean days and share within 30 days by instrument or office, latest year."""
    assert dimension in ("tukimuoto", "yksikko")
    other = "yksikko" if dimension == "tukimuoto" else "tukimuoto"
    name = "tukimuodoittain" if dimension == "tukimuoto" else "yksiköittäin"
    year = _latest_year(con, "kpi.processing_time_monthly", "month")
    if year is None:
        return no_data(f"Käsittelyaika {name}")
    rows = con.sql(
        f"""
        SELECT {dimension} AS key, sum(n)::BIGINT AS n, sum(mean_days * n) / sum(n) AS mean_days,
               sum(share_within_30_days * n) / sum(n) AS share
        FROM kpi.processing_time_monthly
        WHERE {dimension} IS NOT NULL AND {other} IS NULL AND year(month) = ?
        GROUP BY 1 ORDER BY mean_days DESC
        """,
        params=[year],
    ).pl()
    title = f"Käsittelyaika {name} {year}"
    if rows.height == 0:
        return no_data(title)
    keys = [plotly_text(key) for key in rows["key"]]
    fig = figure(*_bars(
        keys, rows["mean_days"].to_list(), rows["n"].to_list(), [n < THIN_DECISIONS for n in rows["n"]],
        BLUE, LIGHT_BLUE, "Keskiarvo (pylvään yllä: päätöksiä)",
        "%{x}: %{y:.1f} pv (n = %{customdata[0]}, 30 päivässä %{customdata[1]:.0%})<extra></extra>",
        customdata=list(zip(rows["n"], rows["share"])),
    ))
    update(fig["layout"], barmode="overlay", xaxis=dict(categoryorder="array", categoryarray=keys, tickangle=-40))
    _add_target_hline(fig, con, PROCESSING_TIME, year)
    return _layout(fig, title, "päivää (keskiarvo)", height=440)


def processing_time_distribution(con: duckdb.DuckDBPyConnection) -> Figure:
    """Decisions by 5-day band; the target is under 30 days, so the 30-34 band on misses it."""
    year = _latest_year(con, "kpi.processing_time_monthly", "month")
    title = "Käsittelyaikojen jakauma"
    bins = con.sql("SELECT days_from, n FROM kpi.processing_time_distribution WHERE year = ? ORDER BY days_from", params=[year]).pl()
    if year is None or bins.height == 0:
        return no_data(title)
    labels = [f"{d}–{d + 4}" if d < 120 else "120+" for d in bins["days_from"]]
    fig = figure()
    for missed, color, name in ((False, BLUE, "alle 30 päivää (tavoitteessa)"), (True, ORANGE, "30 päivää tai yli (tavoite ei täyty)")):
        keep = [i for i, d in enumerate(bins["days_from"]) if (d >= 30) == missed]
        if keep:
            add_trace(
                fig, "bar",
                x=[labels[i] for i in keep], y=[bins["n"][i] for i in keep], marker=dict(color=color), name=name,
                text=[fi.number(bins["n"][i]) for i in keep], textposition="outside", cliponaxis=False, textfont=dict(size=9),
                hovertemplate="%{x} pv: %{y} päätöstä<extra></extra>",
            )
    update(fig["layout"], barmode="overlay", xaxis=dict(categoryorder="array", categoryarray=labels, tickangle=-45))
    _integer_axis(fig, int(bins["n"].max()))
    return _layout(fig, f"Käsittelyaikojen jakauma {year}, käsittelyaika päivinä (oranssi: 30 päivää tai yli, tavoite alle 30)", "päätöksiä")


SURVEYS_FI = {"kohtaaminen": "kohtaamiskysely", "jalkikysely": "jälkikysely", "kampanja": "kampanjakysely"}
SURVEY_COLORS = {"kohtaaminen": BLUE, "jalkikysely": ORANGE, "kampanja": GREY}


def satisfaction_by_survey(con: duckdb.DuckDBPyConnection, survey: str) -> Figure:
    """One survey type's months (a chart of its own, so that the counts over the points of
    the three lines never collide)."""
    rows = con.sql(
        "SELECT month, mean_score, n, suppressed FROM kpi.satisfaction_monthly WHERE tukimuoto IS NULL AND kysely = ? ORDER BY month",
        params=[survey],
    ).pl()
    title = f"Asiakastyytyväisyys: {SURVEYS_FI[survey]} (solut alle {MIN_CELL_RESPONSES} vastausta piilotettu)"
    if rows.height == 0:
        return no_data(title)
    fig = figure()
    color = SURVEY_COLORS[survey]
    part = rows.filter(~pl.col("suppressed"))
    if part.height:
        add_trace(fig, "scatter", x=part["month"], y=part["mean_score"], mode="lines+markers+text", name=f"{survey} (luku: vastauksia)",
                  line=dict(color=color), marker=dict(color=color, size=7),
                  text=[fi.number(n) for n in part["n"]], textposition="top center",
                  textfont=dict(size=9, color=color), customdata=part["n"],
                  hovertemplate="%{x|%m/%Y}: %{y:.2f} (n = %{customdata})<extra>" + survey + "</extra>")
    _add_hidden_months(fig, rows.filter(pl.col("suppressed")), survey)
    _mark_partial(fig, _partial_month(con, "feedback", rows["month"].min()))
    return _layout(fig, title, "keskiarvo (1–5)", months_on_x=True, height=360)


def satisfaction_by_instrument(con: duckdb.DuckDBPyConnection) -> Figure:
    year = _latest_year(con, "kpi.satisfaction_by_instrument", "make_date(year, 1, 1)")
    title = "Asiakastyytyväisyys tukimuodoittain"
    if year is None:
        return no_data(title)
    rows = con.sql(
        "SELECT tukimuoto, mean_score, ci_low, ci_high, n, suppressed FROM kpi.satisfaction_by_instrument WHERE year = ? ORDER BY tukimuoto",
        params=[year],
    ).pl()
    keys = [plotly_text(code) for code in rows["tukimuoto"]]
    shown = rows.filter(~pl.col("suppressed"))
    fig = figure()
    if shown.height:
        add_trace(
            fig, "bar",
            x=[plotly_text(code) for code in shown["tukimuoto"]], y=shown["mean_score"], marker=dict(color=BLUE),
            name="Keskiarvo ja 95 %:n luottamusväli (n = vastauksia)",
            error_y=dict(type="data", symmetric=False, array=(shown["ci_high"] - shown["mean_score"]).to_list(),
                         arrayminus=(shown["mean_score"] - shown["ci_low"]).to_list(), color=GREY),
            customdata=shown["n"],
            hovertemplate="%{x}: %{y:.2f} (n = %{customdata})<extra></extra>",
        )
    hidden = rows.filter(pl.col("suppressed"))
    if hidden.height:
        add_trace(
            fig, "scatter",
            x=[plotly_text(code) for code in hidden["tukimuoto"]], y=[1] * hidden.height, mode="markers", name=HIDDEN_FI,
            marker=dict(symbol="x-open", size=12, color=GREY), cliponaxis=False,
            customdata=hidden["n"], hovertemplate="%{x}: piilotettu (n = %{customdata})<extra></extra>",
        )
    _add_target_hline(fig, con, SATISFACTION, year)
    update(fig["layout"], yaxis=dict(range=[1, 5], dtick=1, tickformat=".1f"))
    counts = {plotly_text(code): (n, hidden_cell) for code, n, hidden_cell in rows.select("tukimuoto", "n", "suppressed").iter_rows()}
    labels = [f"{key}<br>{_n_text(counts[key][0])}" + (" piilotettu" if counts[key][1] else "") for key in keys]
    update(fig["layout"], showlegend=True, xaxis=dict(categoryorder="array", categoryarray=keys, tickvals=keys, ticktext=labels, tickangle=0))
    note = f"; piilotettu (alle {MIN_CELL_RESPONSES}): {', '.join(plotly_text(c) for c in hidden['tukimuoto'])}" if hidden.height else ""
    return _layout(fig, f"{title} {year}{note}", "keskiarvo (1–5)", height=440)


def backlog_by_age(con: duckdb.DuckDBPyConnection) -> Figure:
    rows = con.sql(
        "SELECT band_order, age_band, tukimuoto, sum(n)::BIGINT AS n FROM kpi.backlog GROUP BY ALL ORDER BY band_order, tukimuoto"
    ).pl()
    as_of = con.execute("SELECT max(as_of) FROM kpi.backlog").fetchall()[0][0]
    title = "Vireillä olevat hakemukset iän mukaan"
    if rows.height == 0:
        return no_data(title, "Ei vireillä olevia hakemuksia")
    fig = figure()
    bands = rows.select("band_order", "age_band").unique().sort("band_order")["age_band"].to_list()
    for instrument in rows["tukimuoto"].unique().sort().to_list():
        part = rows.filter(pl.col("tukimuoto") == instrument)
        add_trace(fig, "bar", x=part["age_band"], y=part["n"], name=plotly_text(instrument), text=[fi.number(n) for n in part["n"]],
                  textposition="inside", insidetextanchor="middle", textfont=dict(size=9),
                  hovertemplate="%{x}: %{y} hakemusta<extra>%{fullData.name}</extra>")
    totals = rows.group_by("age_band", maintain_order=True).agg(pl.col("n").sum())
    add_annotations(fig, *[
        dict(x=band, y=total, text=f"yhteensä {fi.number(total)}", showarrow=False, yanchor="bottom", font=dict(size=11))
        for band, total in totals.iter_rows()
    ])
    update(fig["layout"], barmode="stack", xaxis=dict(categoryorder="array", categoryarray=bands), uniformtext=dict(minsize=8, mode="hide"))
    _integer_axis(fig, int(totals["n"].max() * 1.1) + 1)
    return _layout(fig, f"{title} {fi.date(as_of)}", "hakemuksia", height=440)


def backlog_indicators(con: duckdb.DuckDBPyConnection) -> Figure:
    total, over = con.execute("SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (over_30_days), 0) FROM kpi.backlog").fetchall()[0]
    fig = figure()
    add_trace(fig, "indicator", mode="number", value=total, title=dict(text="Vireillä yhteensä"), domain=dict(row=0, column=0))
    add_trace(fig, "indicator", mode="number", value=over, title=dict(text="Yli 30 päivää vireillä"), number=dict(font=dict(color=RED)),
              domain=dict(row=0, column=1))
    update(fig["layout"], grid=dict(rows=1, columns=2), height=200, separators=", ", margin=dict(l=20, r=20, t=30, b=10))
    return fig


def rejections_by_rule(con: duckdb.DuckDBPyConnection) -> Figure:
    rows = con.sql("SELECT rule, count(DISTINCT (file_id, line)) AS n FROM quality.quarantine GROUP BY 1 ORDER BY n, rule").pl()
    title = "Hylätyt rivit säännöittäin"
    if rows.height == 0:
        return no_data(title, "Ei hylättyjä rivejä")
    labels = [plotly_text(fi.RULES_FI.get(rule, rule)) for rule in rows["rule"]]
    fig = figure(trace("bar", x=rows["n"], y=labels, orientation="h", marker=dict(color=ORANGE), name="Hylättyjä rivejä",
                       text=[fi.number(n) for n in rows["n"]], textposition="outside", cliponaxis=False,
                       hovertemplate="%{y}: %{x} riviä<extra></extra>"))
    _integer_axis(fig, int(rows["n"].max() * 1.15) + 1, axis="x")
    return _layout(fig, title, "", height=max(300, 80 + 35 * rows.height))


def rows_by_file(con: duckdb.DuckDBPyConnection) -> Figure:
    rows = con.sql("SELECT file_name, status, rows_valid, rows_rejected FROM quality.ingest_log ORDER BY file_name").pl()
    title = "Rivit tiedostoittain"
    if rows.height == 0:
        return no_data(title, "Ei luettuja tiedostoja")
    labels = [plotly_text(f"{name} ({fi.STATUS_FI.get(status, status)})") for name, status in zip(rows["file_name"], rows["status"])]
    fig = figure()
    for column, name, color in (("rows_valid", "Hyväksytty", BLUE), ("rows_rejected", "Hylätty", ORANGE)):
        add_trace(fig, "bar", y=labels, x=rows[column], orientation="h", name=name, marker=dict(color=color),
                  text=[fi.number(n) for n in rows[column]], textposition="auto",
                  hovertemplate="%{y}: %{x} riviä<extra>" + name + "</extra>")
    update(fig["layout"], barmode="stack", uniformtext=dict(minsize=8, mode="hide"))
    _integer_axis(fig, int((rows["rows_valid"] + rows["rows_rejected"]).max()), axis="x")
    return _layout(fig, title, "", height=max(300, 100 + 35 * rows.height))


# -- the forecast page ---------------------------------------------------------------------

NO_FORECAST_FI = "Ei ennustetta: ei käynnissä olevaa raportointikautta tai liian vähän aineistoa ennusteen pohjaksi"
FORECAST_HIDDEN_FI = f"Ennuste piilotettu ({SUPPRESSED_FI})"
BAND_95, BAND_80 = "rgba(0,53,128,0.12)", "rgba(0,53,128,0.28)"
TOP_APPLICATIONS = 25


def _chance_text(probability: float | None) -> str:
    return fi.probability(probability) + ":n todennäköisyydellä"


def forecast_cards(con: duckdb.DuckDBPyConnection) -> Figure:
    """Each running period's forecast (a row of cards per period, satisfaction left and
    processing time right): the median, its 80 % interval and the chance of meeting the
    target, beside the value so far."""
    rows = con.sql("SELECT * FROM kpi.forecast ORDER BY period_end, indicator").pl()
    title = "Ennuste käynnissä olevien jaksojen lopun toteumasta"
    if rows.is_empty():
        return no_data(title, NO_FORECAST_FI)
    fig = figure()
    periods = rows["period_end"].unique().sort().to_list()
    height = 1 / len(periods)
    for row in rows.iter_rows(named=True):
        indicator, decimals = row["indicator"], fi.DECIMALS[row["indicator"]]
        unit = " pv" if indicator == PROCESSING_TIME else ""
        column = 0 if indicator == SATISFACTION else 1
        left, right = column / 2 + 0.03, (column + 1) / 2 - 0.01  # centres off the quarters
        center = round((left + right) / 2, 3)
        top = 1 - periods.index(row["period_end"]) * height
        at = lambda y: round(top - height + y * height, 3)  # noqa: E731  (y within the period's row of cards)
        head = (f"{plotly_text(fi.SHORT_NAMES[indicator])} {plotly_text(row['period_label'])}<br><span style='font-size:0.7em'>"
                + plotly_text(f"ennuste jakson lopussa {fi.date(row['period_end'])} (mediaani)") + "</span>")
        if row["suppressed"]:
            add_annotations(fig, dict(text=head, x=center, y=at(0.9), xref="paper", yref="paper", showarrow=False, xanchor="center",
                                      yanchor="top", font=dict(size=17)))
            lines = [(FORECAST_HIDDEN_FI, GREY), (f"tähän mennessä n = {fi.number(row['seen_n'])}", GREY)]
        else:
            add_trace(
                fig, "indicator", mode="number", value=row["median"], number=dict(valueformat=f".{decimals}f", suffix=unit),
                title=dict(text=head), domain=dict(x=[left, right], y=[at(0.46), at(0.9)]),
            )
            low, high = fi.number(row["low_80"], decimals), fi.number(row["high_80"], decimals)
            lines = [(f"80 %:n ennusteväli {low}–{high}{unit}", BLUE)]
            if row["probability_meets_target"] is None:
                lines.append(("Vuodelle ei ole tavoitetta", GREY))
            else:
                meets = row["probability_meets_target"] >= 0.5
                lines.append((f"tavoite {fi.target(row['target_op'], row['target'], indicator)}{unit} toteutuu "
                              f"{_chance_text(row['probability_meets_target'])}", GREEN if meets else RED))
            lines.append((f"tähän mennessä {fi.number(row['seen_value'], decimals)}{unit} (n = {fi.number(row['seen_n'])}, "
                          f"tilanne {fi.date(row['as_of'])})", GREY))
        for line, (text, color) in enumerate(lines):
            add_annotations(fig, dict(text=plotly_text(text), x=center, y=at(0.36 - 0.14 * line), xref="paper", yref="paper",
                                      xanchor="center", showarrow=False, font=dict(size=14 if line < 2 else 12, color=color)))
    update(fig["layout"], height=40 + 300 * len(periods), separators=", ", margin=dict(l=20, r=20, t=40, b=10), title={"text": title})
    fig["layout"]["template"] = template("plotly_white")
    return fig


def forecast_fan(con: duckdb.DuckDBPyConnection, indicator: str) -> Figure:
    """The running year's cumulative value: observed up to the as-of date, then the median
    (dashed) in its 80 % and 95 % bands, against the target."""
    fan = con.sql("SELECT * FROM kpi.forecast_fan WHERE indicator = ? ORDER BY date", params=[indicator]).pl()
    name = fi.SHORT_NAMES[indicator]
    if fan.is_empty():
        return no_data(f"{name}: ennuste vuoden loppuun", NO_FORECAST_FI)
    year = int(fan["year"][0])
    title = f"{name} {year}: kertymä 1.1. alkaen, toteuma ja ennuste vuoden loppuun"
    shown = fan.filter(~pl.col("suppressed"))
    if shown.filter(~pl.col("observed")).is_empty():
        return no_data(title, FORECAST_HIDDEN_FI if fan["suppressed"].any() else NO_FORECAST_FI)
    decimals, unit = fi.DECIMALS[indicator], " pv" if indicator == PROCESSING_TIME else ""
    what = "päätöstä" if indicator == PROCESSING_TIME else "vastausta"
    observed = shown.filter(pl.col("observed"))
    forecast = shown.filter(~pl.col("observed"))
    as_of = observed["date"].max()
    ahead = pl.concat([observed.tail(1), forecast])  # the bands start from the as-of point, with no width
    fig = figure()
    for low, high, color, label in (("low_95", "high_95", BAND_95, "95 %:n ennusteväli"),
                                    ("low_80", "high_80", BAND_80, "80 %:n ennusteväli")):
        add_trace(
            fig, "scatter",
            x=ahead["date"].to_list() + ahead["date"].reverse().to_list(),
            y=ahead[high].to_list() + ahead[low].reverse().to_list(),
            fill="toself", fillcolor=color, line=dict(width=0), mode="lines", name=label, hoverinfo="skip",
        )
    add_trace(
        fig, "scatter",
        x=observed["date"], y=observed["value"], mode="lines+markers+text", line=dict(color=BLUE, width=3),
        marker=dict(color=BLUE, size=7), name=f"Toteuma (luku pisteen alla: {what})",
        text=[fi.number(n) for n in observed["n"]], textposition="bottom center", textfont=dict(size=9, color=GREY),
        customdata=[fi.number(n) for n in observed["n"]],
        hovertemplate=f"%{{x|%-d.%-m.%Y}}: %{{y:.{decimals}f}}{unit} (n = %{{customdata}})<extra>toteuma</extra>",
    )
    ranges = [
        [fi.number(r["low_80"], decimals), fi.number(r["high_80"], decimals), fi.number(r["low_95"], decimals),
         fi.number(r["high_95"], decimals), fi.number(r["n"])]
        for r in forecast.iter_rows(named=True)
    ]
    add_trace(
        fig, "scatter",
        x=ahead["date"], y=ahead["value"], mode="lines", line=dict(color=BLUE, width=2, dash="dash"),
        name="Ennuste (mediaani)", hoverinfo="skip", showlegend=True,
    )
    add_trace(
        fig, "scatter",
        x=forecast["date"], y=forecast["value"], mode="markers+text", showlegend=False,
        marker=dict(color="white", size=8, line=dict(color=BLUE, width=2)),
        text=[f"≈{fi.number(n)}" for n in forecast["n"]], textposition="bottom center", textfont=dict(size=9, color=GREY),
        customdata=ranges,
        hovertemplate=(f"%{{x|%-d.%-m.%Y}}: ennuste %{{y:.{decimals}f}}{unit}<br>80 %: %{{customdata[0]}}–%{{customdata[1]}}{unit}, "
                       f"95 %: %{{customdata[2]}}–%{{customdata[3]}}{unit}<br>odotettu n ≈ %{{customdata[4]}}<extra>ennuste</extra>"),
    )
    target = _targets(con, indicator).filter(pl.col("year") == year)
    if target.height:
        _, op, value = target.row(0)
        add_trace(
            fig, "scatter",
            x=[dt.date(year, 1, 1), dt.date(year, 12, 31)], y=[value, value], mode="lines", line=dict(color=RED, dash="dot", width=2),
            name=plotly_text(f"Tavoite {fi.target(op, value, indicator)}{unit}"), hoverinfo="skip",
        )
    add_shape(fig, dict(type="line", line=dict(color=GREY, width=1), x0=as_of, x1=as_of, xref="x", y0=0, y1=1, yref="y domain"))
    add_annotations(fig, dict(x=as_of, y=1, yref="paper", yanchor="bottom", showarrow=False, text=f"tilanne {fi.date(as_of)}",
                              font=dict(size=11, color=GREY)))
    end = forecast.tail(1).row(0, named=True)
    final = con.sql(
        "SELECT probability_meets_target, target_op, target FROM kpi.forecast WHERE indicator = ? AND period_end = ?",
        params=[indicator, end["date"]],
    ).pl()
    label = f"{fi.date(end['date'])}: {fi.number(end['value'], decimals)}{unit}<br>80 %: {fi.number(end['low_80'], decimals)}–{fi.number(end['high_80'], decimals)}"
    if final.height and final["probability_meets_target"][0] is not None:
        label += f"<br>tavoite toteutuu {plotly_text(fi.probability(final['probability_meets_target'][0]))}:n<br>todennäköisyydellä"
    add_annotations(fig, dict(x=end["date"], y=end["value"], xanchor="left", showarrow=False, text=label, align="left",
                              font=dict(size=12, color=BLUE), xshift=24))
    # a tick at every point (month ends and the as-of date): each value is the year's so far on that day
    days = fan["date"].to_list()
    update(fig["layout"], xaxis=dict(tickvals=days, ticktext=[f"{d.day}.{d.month}." for d in days],
                                     range=[dt.date(year, 1, 1), dt.date(year + 1, 3, 1)],
                                     title={"text": f"päivä {year} (kuukauden viimeinen päivä)"}))
    y_title = "keskiarvo 1.1. alkaen (pv)" if indicator == PROCESSING_TIME else "keskiarvo 1.1. alkaen (1–5)"
    return _layout(fig, title, y_title, height=460)


def at_risk_by_office(con: duckdb.DuckDBPyConnection) -> Figure:
    """Per office, the expected effect of its pending applications on the running period's
    mean processing time (the sum over them), the largest on top, with the counts behind it."""
    offices = con.sql(
        """
        SELECT yksikko, count(*) AS pending, sum(probability_over_30_days) AS over_30,
               sum(probability_after_period_end) AS after_end, sum(expected_effect_days) AS effect,
               any_value(period_label) AS period_label, any_value(as_of) AS as_of
        FROM kpi.pending_at_risk GROUP BY yksikko ORDER BY effect NULLS FIRST, pending, yksikko DESC
        """
    ).pl()
    title = "Vireillä olevien hakemusten odotettu vaikutus käsittelyajan keskiarvoon yksiköittäin"
    if offices.is_empty():
        return no_data(title, _nothing_pending(con))
    label, as_of = offices["period_label"][0], offices["as_of"][0]
    names = [plotly_text(code) for code in offices["yksikko"]]
    texts = [f"{fi.signed(e, 2)} pv · {fi.number(p)} vireillä, ≈{fi.number(o)} yli 30 pv"
             for e, p, o in offices.select("effect", "pending", "over_30").iter_rows()]
    details = [[fi.signed(e, 2), fi.number(p), fi.number(o), fi.number(a)]
               for e, p, o, a in offices.select("effect", "pending", "over_30", "after_end").iter_rows()]
    fig = figure()
    for raises, color, name in ((True, ORANGE, "nostaa keskiarvoa"), (False, BLUE, "laskee keskiarvoa")):
        keep = [i for i, e in enumerate(offices["effect"]) if (e is not None and e > 0) == raises]
        if not keep:
            continue
        add_trace(
            fig, "bar",
            y=[names[i] for i in keep], x=[offices["effect"][i] for i in keep], orientation="h", marker=dict(color=color), name=name,
            customdata=[details[i] for i in keep],
            hovertemplate=("%{y}: %{customdata[0]} pv<br>vireillä %{customdata[1]}, arviolta yli 30 päivää %{customdata[2]}, "
                           "arviolta jakson jälkeen %{customdata[3]}<extra></extra>"),
        )
    # the counts beside each bar, right of zero also for a bar that lowers the mean (left of zero)
    add_annotations(fig, *[
        dict(x=max(effect, 0), y=name_, text=text, xanchor="left", xshift=4, showarrow=False, font=dict(size=10))
        for name_, effect, text in zip(names, offices["effect"].fill_null(0), texts)
    ])
    largest = max(abs(e) for e in offices["effect"].fill_null(0)) or 1
    update(fig["layout"], barmode="relative", yaxis=dict(categoryorder="array", categoryarray=names),
           xaxis=dict(range=[min(0, offices["effect"].min() or 0) * 1.1 - largest * 0.02, largest * 1.9], zeroline=True,
                      title={"text": plotly_text(f"odotettu muutos jakson {label} keskiarvoon (pv)")}))
    return _layout(fig, f"{title} ({label}, vireillä {fi.date(as_of)})", "", height=max(320, 110 + 24 * offices.height))


@dataclass(frozen=True)
class TableView:
    """A table on a dashboard page (rendered by the autoescaping template): its title, a
    note on how to read it, and the message shown when there is nothing to list."""

    title: str
    table: Table | None
    note: str = ""
    empty: str = NO_FORECAST_FI


def what_if_view(con: duckdb.DuckDBPyConnection) -> TableView:
    table = what_if_table(con)
    note = ("Ennusteen mediaani, jos vanhimmat vireillä olevat hakemukset päätetään viimeistään sarakkeen päivänä; "
            "suluissa tavoitteen saavuttamisen todennäköisyys. Vanhan hakemuksen päättäminen jakson aikana tuo sen koko "
            "odotusajan jakson keskiarvoon.")
    period = con.sql("SELECT any_value(period_label) FROM kpi.forecast_what_if").fetchall()[0][0]
    title = "Mitä jos: vanhimpien hakemusten päättäminen" + (f" (käsittelyaika {period})" if period else "")
    return TableView(title, table, note, _nothing_pending(con))


def _nothing_pending(con: duckdb.DuckDBPyConnection) -> str:
    """Why a pending-application view is empty: no period running, or nothing pending."""
    running = con.sql("SELECT count(*) FROM kpi.forecast").fetchall()[0][0]
    return NO_FORECAST_FI if running == 0 else "Ei vireillä olevia hakemuksia"


def top_applications_view(con: duckdb.DuckDBPyConnection, limit: int = TOP_APPLICATIONS) -> TableView:
    """The pending applications with the largest expected effect on the period's mean."""
    rows = con.sql(
        f"SELECT * FROM kpi.pending_at_risk ORDER BY expected_effect_days DESC NULLS LAST, saapunut, hakemus_id LIMIT {int(limit)}"
    ).pl()
    title = f"{limit} vireillä olevaa hakemusta, joilla on suurin odotettu vaikutus käsittelyajan keskiarvoon"
    if rows.is_empty():
        return TableView(title, None, empty=_nothing_pending(con))
    columns = ("hakemus_id", "yksikko", "tukimuoto", "saapunut", "age_days", "probability_after_period_end",
               "probability_over_30_days", "expected_days", "expected_effect_days")
    table = Table([fi.HEADERS_FI[c] for c in columns], [], numeric=set(range(4, len(columns))))
    for r in rows.iter_rows(named=True):
        table.rows.append([
            r["hakemus_id"], r["yksikko"], r["tukimuoto"], fi.date(r["saapunut"]), fi.number(r["age_days"]),
            fi.percent(r["probability_after_period_end"]), fi.percent(r["probability_over_30_days"]),
            fi.number(r["expected_days"], 1), fi.signed(r["expected_effect_days"], 3),
        ])
    note = (f"Tilanne {fi.date(rows['as_of'][0])}, jakso {rows['period_label'][0]} (päättyy {fi.date(rows['period_end'][0])}). "
            "Todennäköisyydet hakemuksen tukimuodon päätösaikakäyrästä hakemuksen nykyisellä iällä; vaikutus on hakemuksen "
            "odotettu vaikutus jakson keskimääräiseen käsittelyaikaan päivinä (positiivinen nostaa).")
    return TableView(title, table, note)
