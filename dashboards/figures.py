"""The dashboards' plotly figures, each built from what people may see of the published
warehouse (disclosure.open_for_people): satisfaction figures under 5 responses arrive
withheld, and free text is never there.

Plotly renders some HTML in titles, labels, legends and hover text, so every text from
the input (codes, file names, rules) goes in through plotly_text.
"""

from __future__ import annotations

import duckdb
import plotly.graph_objects as go
import polars as pl

from keha_maksatus.outputs import finnish as fi
from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.outputs.disclosure import SUPPRESSED_FI
from keha_maksatus.kpi import MIN_CELL_RESPONSES
from keha_maksatus.outputs.rendering import plotly_text

BLUE, ORANGE, GREY, RED = "#003580", "#e07b00", "#8c8c8c", "#b00020"


def _layout(fig: go.Figure, title: str, y_title: str = "", height: int = 380, months_on_x: bool = False) -> go.Figure:
    fig.update_layout(
        title=title, height=height, separators=", ", template="plotly_white",
        margin=dict(l=60, r=20, t=60, b=50), legend=dict(orientation="h", y=-0.18), yaxis_title=y_title,
    )
    if months_on_x:
        fig.update_xaxes(tickformat="%m/%Y")  # month numbers, not English month names
    return fig


def _targets(con: duckdb.DuckDBPyConnection, indicator: str) -> pl.DataFrame:
    return con.sql(
        "SELECT DISTINCT year(period_start) AS year, target FROM kpi.quality_section WHERE indicator = ? AND target IS NOT NULL ORDER BY 1",
        params=[indicator],
    ).pl()


def _add_target_lines(fig: go.Figure, targets: pl.DataFrame) -> None:
    import datetime as dt

    for year, target in targets.iter_rows():
        fig.add_trace(go.Scatter(
            x=[dt.date(year, 1, 1), dt.date(year, 12, 31)], y=[target, target], mode="lines",
            line=dict(color=RED, dash="dash"), name=f"Tavoite {year}", hoverinfo="skip",
        ))


def headline_indicators(con: duckdb.DuckDBPyConnection) -> go.Figure:
    latest = con.sql(
        """
        SELECT indicator, period_label, complete, target_op, target, value, n, suppressed FROM kpi.quality_section
        QUALIFY row_number() OVER (PARTITION BY indicator ORDER BY period_end DESC, period_start) = 1
        ORDER BY indicator
        """
    ).pl()
    fig = go.Figure()
    for i, row in enumerate(latest.iter_rows(named=True)):
        indicator = row["indicator"]
        decimals = fi.DECIMALS[indicator]
        suffix = "" if row["complete"] else " (kesken)"
        target_text = fi.target(row["target_op"], row["target"], indicator)
        if row["suppressed"]:
            suffix += f", {SUPPRESSED_FI}"
        fig.add_trace(go.Indicator(
            mode="number+delta" if row["target"] is not None and not row["suppressed"] else "number",
            value=row["value"],
            number=dict(valueformat=f".{decimals}f"),
            delta=dict(reference=row["target"], valueformat=f".{decimals}f",
                       increasing=dict(color="green" if indicator == SATISFACTION else RED),
                       decreasing=dict(color=RED if indicator == SATISFACTION else "green")) if row["target"] is not None else None,
            title=dict(text=f"{plotly_text(fi.SHORT_NAMES[indicator])}<br><span style='font-size:0.7em'>"
                            + plotly_text(f"{row['period_label']}{suffix}, tavoite {target_text}, n = {fi.number(row['n'])}")
                            + "</span>"),
            domain=dict(row=0, column=i),
        ))
    fig.update_layout(grid=dict(rows=1, columns=max(1, latest.height)), height=230, separators=", ", margin=dict(l=20, r=20, t=40, b=10))
    return fig


def monthly_kpi(con: duckdb.DuckDBPyConnection, indicator: str) -> go.Figure:
    trend = con.sql("SELECT * FROM kpi.monthly_trend WHERE indicator = ? ORDER BY month", params=[indicator]).pl()
    fig = go.Figure()
    if indicator == SATISFACTION:
        band = trend.filter(pl.col("ci_low").is_not_null())
        fig.add_trace(go.Scatter(x=band["month"], y=band["ci_high"], mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=band["month"], y=band["ci_low"], mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor="rgba(0,53,128,0.15)", name="95 %:n luottamusväli", hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=trend["month"], y=trend["value"], mode="lines+markers", line=dict(color=BLUE), name="Kuukauden keskiarvo",
        customdata=trend["n"], hovertemplate="%{x|%m/%Y}: %{y:.2f} (n = %{customdata})<extra></extra>",
    ))
    _add_target_lines(fig, _targets(con, indicator))
    title = "Asiakastyytyväisyys kuukausittain (kohtaamis- ja jälkikyselyt)" if indicator == SATISFACTION else "Käsittelyaika kuukausittain"
    return _layout(fig, title, "keskiarvo (1–5)" if indicator == SATISFACTION else "päivää", months_on_x=True)


def processing_time_mean_median(con: duckdb.DuckDBPyConnection) -> go.Figure:
    months = con.sql(
        "SELECT * FROM kpi.processing_time_monthly WHERE tukimuoto IS NULL AND yksikko IS NULL ORDER BY month"
    ).pl()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=months["month"], y=months["mean_days"], name="Keskiarvo", line=dict(color=BLUE)))
    fig.add_trace(go.Scatter(x=months["month"], y=months["median_days"], name="Mediaani", line=dict(color=ORANGE)))
    fig.add_trace(go.Scatter(x=months["month"], y=months["p90_days"], name="90 % persentiili", line=dict(color=GREY, dash="dot")))
    _add_target_lines(fig, _targets(con, PROCESSING_TIME))
    return _layout(fig, "Käsittelyaika kuukausittain: keskiarvo, mediaani ja 90 % persentiili", "päivää", months_on_x=True)


def share_within_30_days(con: duckdb.DuckDBPyConnection) -> go.Figure:
    months = con.sql(
        "SELECT month, share_within_30_days FROM kpi.processing_time_monthly WHERE tukimuoto IS NULL AND yksikko IS NULL ORDER BY month"
    ).pl()
    fig = go.Figure(go.Bar(x=months["month"], y=months["share_within_30_days"], marker_color=BLUE, name="Osuus"))
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    return _layout(fig, "30 päivässä tehtyjen päätösten osuus", "osuus päätöksistä", months_on_x=True)


def _latest_year(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int | None:
    return con.execute(f"SELECT max(year({column})) FROM {table}").fetchall()[0][0]


def processing_time_by(con: duckdb.DuckDBPyConnection, dimension: str) -> go.Figure:
    """Mean days and share within 30 days by instrument or office, latest year."""
    assert dimension in ("tukimuoto", "yksikko")
    other = "yksikko" if dimension == "tukimuoto" else "tukimuoto"
    year = _latest_year(con, "kpi.processing_time_monthly", "month")
    rows = con.sql(
        f"""
        SELECT {dimension} AS key, sum(n) AS n, sum(mean_days * n) / sum(n) AS mean_days,
               sum(share_within_30_days * n) / sum(n) AS share
        FROM kpi.processing_time_monthly
        WHERE {dimension} IS NOT NULL AND {other} IS NULL AND year(month) = ?
        GROUP BY 1 ORDER BY mean_days DESC
        """,
        params=[year],
    ).pl()
    fig = go.Figure(go.Bar(
        x=[plotly_text(key) for key in rows["key"]], y=rows["mean_days"], marker_color=BLUE, name="Keskiarvo",
        customdata=list(zip(rows["n"], rows["share"])),
        hovertemplate="%{x}: %{y:.1f} pv (n = %{customdata[0]}, 30 päivässä %{customdata[1]:.0%})<extra></extra>",
    ))
    fig.add_hline(y=30, line=dict(color=RED, dash="dash"), annotation_text="30 pv")
    name = "tukimuodoittain" if dimension == "tukimuoto" else "yksiköittäin"
    return _layout(fig, f"Käsittelyaika {name} {year}", "päivää (keskiarvo)")


def processing_time_distribution(con: duckdb.DuckDBPyConnection) -> go.Figure:
    year = _latest_year(con, "kpi.processing_time_monthly", "month")
    bins = con.sql("SELECT days_from, n FROM kpi.processing_time_distribution WHERE year = ? ORDER BY days_from", params=[year]).pl()
    labels = [f"{d}–{d + 4}" if d < 120 else "120+" for d in bins["days_from"]]
    colors = [BLUE if d < 30 else ORANGE for d in bins["days_from"]]
    fig = go.Figure(go.Bar(x=labels, y=bins["n"], marker_color=colors, name="Päätöksiä"))
    return _layout(fig, f"Käsittelyaikojen jakauma {year} (oranssi: yli 30 päivää)", "päätöksiä")


def satisfaction_by_survey(con: duckdb.DuckDBPyConnection) -> go.Figure:
    rows = con.sql("SELECT month, kysely, mean_score, n FROM kpi.satisfaction_monthly WHERE tukimuoto IS NULL ORDER BY month").pl()
    fig = go.Figure()
    for survey, color in (("kohtaaminen", BLUE), ("jalkikysely", ORANGE), ("kampanja", GREY)):
        part = rows.filter(pl.col("kysely") == survey)
        if part.height:
            fig.add_trace(go.Scatter(x=part["month"], y=part["mean_score"], mode="lines+markers", name=survey,
                                     line=dict(color=color), customdata=part["n"],
                                     hovertemplate="%{x|%m/%Y}: %{y:.2f} (n = %{customdata})<extra>" + survey + "</extra>"))
    return _layout(fig, f"Asiakastyytyväisyys kyselytyypeittäin (solut alle {MIN_CELL_RESPONSES} vastausta piilotettu)", "keskiarvo (1–5)", months_on_x=True)


def satisfaction_by_instrument(con: duckdb.DuckDBPyConnection) -> go.Figure:
    year = _latest_year(con, "kpi.satisfaction_by_instrument", "make_date(year, 1, 1)")
    rows = con.sql(
        "SELECT tukimuoto, mean_score, ci_low, ci_high, n, suppressed FROM kpi.satisfaction_by_instrument WHERE year = ? ORDER BY tukimuoto",
        params=[year],
    ).pl()
    shown = rows.filter(~pl.col("suppressed"))
    fig = go.Figure(go.Bar(
        x=[plotly_text(code) for code in shown["tukimuoto"]], y=shown["mean_score"], marker_color=BLUE, name="Keskiarvo",
        error_y=dict(type="data", symmetric=False, array=(shown["ci_high"] - shown["mean_score"]).to_list(),
                     arrayminus=(shown["mean_score"] - shown["ci_low"]).to_list()),
        customdata=shown["n"], hovertemplate="%{x}: %{y:.2f} (n = %{customdata})<extra></extra>",
    ))
    hidden = [plotly_text(code) for code in rows.filter(pl.col("suppressed"))["tukimuoto"]]
    note = f"; piilotettu (alle {MIN_CELL_RESPONSES}): {', '.join(hidden)}" if hidden else ""
    fig.update_yaxes(range=[1, 5])
    return _layout(fig, f"Asiakastyytyväisyys tukimuodoittain {year}, 95 %:n luottamusväli{note}", "keskiarvo (1–5)")


def backlog_by_age(con: duckdb.DuckDBPyConnection) -> go.Figure:
    rows = con.sql(
        "SELECT band_order, age_band, tukimuoto, sum(n) AS n FROM kpi.backlog GROUP BY ALL ORDER BY band_order, tukimuoto"
    ).pl()
    as_of = con.execute("SELECT max(as_of) FROM kpi.backlog").fetchall()[0][0]
    fig = go.Figure()
    bands = rows.select("band_order", "age_band").unique().sort("band_order")["age_band"].to_list()
    for instrument in rows["tukimuoto"].unique().sort().to_list():
        part = rows.filter(pl.col("tukimuoto") == instrument)
        fig.add_trace(go.Bar(x=part["age_band"], y=part["n"], name=plotly_text(instrument)))
    fig.update_layout(barmode="stack", xaxis=dict(categoryorder="array", categoryarray=bands))
    return _layout(fig, f"Vireillä olevat hakemukset iän mukaan {fi.date(as_of)}", "hakemuksia")


def backlog_indicators(con: duckdb.DuckDBPyConnection) -> go.Figure:
    total, over = con.execute("SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (over_30_days), 0) FROM kpi.backlog").fetchall()[0]
    fig = go.Figure()
    fig.add_trace(go.Indicator(mode="number", value=total, title=dict(text="Vireillä yhteensä"), domain=dict(row=0, column=0)))
    fig.add_trace(go.Indicator(mode="number", value=over, title=dict(text="Yli 30 päivää vireillä"), number=dict(font=dict(color=RED)), domain=dict(row=0, column=1)))
    fig.update_layout(grid=dict(rows=1, columns=2), height=200, separators=", ", margin=dict(l=20, r=20, t=30, b=10))
    return fig


def rejections_by_rule(con: duckdb.DuckDBPyConnection) -> go.Figure:
    rows = con.sql("SELECT rule, count(DISTINCT (file_id, line)) AS n FROM quality.quarantine GROUP BY 1 ORDER BY n").pl()
    labels = [plotly_text(fi.RULES_FI.get(rule, rule)) for rule in rows["rule"]]
    fig = go.Figure(go.Bar(x=rows["n"], y=labels, orientation="h", marker_color=ORANGE, name="Hylättyjä rivejä"))
    fig.update_xaxes(tickformat="d")
    return _layout(fig, "Hylätyt rivit säännöittäin", "", height=max(300, 60 + 35 * rows.height))


def rows_by_file(con: duckdb.DuckDBPyConnection) -> go.Figure:
    rows = con.sql("SELECT file_name, status, rows_valid, rows_rejected FROM quality.ingest_log ORDER BY file_name").pl()
    labels = [plotly_text(f"{name} ({fi.STATUS_FI.get(status, status)})") for name, status in zip(rows["file_name"], rows["status"])]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=labels, x=rows["rows_valid"], orientation="h", name="Hyväksytty", marker_color=BLUE))
    fig.add_trace(go.Bar(y=labels, x=rows["rows_rejected"], orientation="h", name="Hylätty", marker_color=ORANGE))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(tickformat="d")
    return _layout(fig, "Rivit tiedostoittain", "", height=max(300, 80 + 35 * rows.height))
