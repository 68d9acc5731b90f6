"""The nowcast's backtest: forecasts as of past month ends, compared with the final values.

For each as-of date A and each indicator, every reporting period running at A whose end
the data covers is forecast from the data as it stood at A (tables.Nowcaster reads the
warehouse "as of" A) and compared with the period's final value, read the same way as of
the data's own as-of date. The summary gives, by indicator and months before the period's
end: how often the 80 % and 95 % intervals held the final value, the mean absolute error
of the median and the Brier score of "meets the target". The PIT (the share of simulated
values below the final value) gives the coverage of any central interval.

`run` is what `keha-maksatus backtest` does: generated landing folders (several seeds of
keha_maksatus.sample) and the bundled sample, each ingested into a warehouse of its own.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from keha_maksatus import kpi, warehouse
from keha_maksatus.config import INDICATORS, PROCESSING_TIME, SATISFACTION, Settings
from keha_maksatus.forecast import history
from keha_maksatus.forecast.nowcast import DRAWS, SEED
from keha_maksatus.forecast.tables import Nowcaster, month_ends, running_periods, target_of
from keha_maksatus.ingest.store import ingest_landing

# Generated years without a target of their own are judged against this year's targets.
STAND_IN_YEAR = 2022
# Central intervals whose coverage the calibration plot shows (from the PIT).
NOMINAL = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# The goal (issue 11): the share of final values inside each interval.
GOALS = {0.80: (0.72, 0.88), 0.95: (0.90, 0.98)}
# Pseudonym key of the backtest's own warehouses (never published; any key would do).
BACKTEST_KEY = b"keha-maksatus-backtest"
SAMPLE_SOURCE = "sample"
SHORT_NAMES = {PROCESSING_TIME: "processing time (days)", SATISFACTION: "satisfaction (1-5)"}

ROW_SCHEMA = {
    "source": pl.String, "as_of": pl.Date, "indicator": pl.String, "period_label": pl.String, "period_end": pl.Date,
    "months_before_end": pl.Int64, "actual": pl.Float64, "median": pl.Float64, "low_80": pl.Float64,
    "high_80": pl.Float64, "low_95": pl.Float64, "high_95": pl.Float64, "target_op": pl.String, "target": pl.Float64,
    "target_stand_in": pl.Boolean, "probability_meets_target": pl.Float64, "actual_meets_target": pl.Boolean,
    "pit": pl.Float64,
}
SUMMARY_SCHEMA = {
    "sources": pl.String, "indicator": pl.String, "months_before_end": pl.Int64, "forecasts": pl.Int64,
    "periods": pl.Int64, "coverage_80": pl.Float64, "coverage_95": pl.Float64, "mae": pl.Float64,
    "brier": pl.Float64, "mean_width_80": pl.Float64, "mean_width_95": pl.Float64,
}


# ---------------------------------------------------------------- forecasts against final values


def months_between(as_of: dt.date, end: dt.date) -> int:
    """Whole calendar months from as_of's month to end's month (31.1. to 30.6.: 5)."""
    return (end.year - as_of.year) * 12 + end.month - as_of.month


def month_ends_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """The month ends d with first <= d <= last."""
    return [d for year in range(first.year, last.year + 1) for d in month_ends(year) if first <= d <= last]


def data_as_of(con: duckdb.DuckDBPyConnection) -> dict[str, dt.date | None]:
    """Each indicator's as-of date: the newest extract of its own kind."""
    return {PROCESSING_TIME: kpi.as_of_date(con, "decisions"), SATISFACTION: kpi.as_of_date(con, "feedback")}


def final_value(con: duckdb.DuckDBPyConnection, indicator: str, start: dt.date, end: dt.date, as_of: dt.date) -> float | None:
    """The period's value as the data stands at as_of (its final value when end <= as_of)."""
    series = history.read_decided_months(con, as_of) if indicator == PROCESSING_TIME else history.read_score_months(con, as_of)
    n, s = series.total(start, end)
    return s / n if n else None


def target_for(settings: Settings, year: int, indicator: str) -> tuple[str | None, float | None, bool]:
    """(op, value, stand_in): the year's target, else STAND_IN_YEAR's."""
    op, value = target_of(settings, year, indicator)
    if op is not None:
        return op, value, False
    op, value = target_of(settings, STAND_IN_YEAR, indicator)
    return op, value, op is not None


def meets(value: float, op: str | None, target: float | None) -> bool | None:
    if op is None or target is None:
        return None
    return value > target if op == ">" else value < target


def pit(values: np.ndarray, actual: float) -> float:
    """Probability integral transform: share of the simulated values below the actual
    one (ties count half), so a calibrated forecast gives a uniform PIT."""
    values = values[np.isfinite(values)]
    return float(np.mean(values < actual) + 0.5 * np.mean(values == actual))


def backtest_rows(con: duckdb.DuckDBPyConnection, as_of_dates: Iterable[dt.date], settings: Settings, source: str,
                  seed: int = SEED, draws: int = DRAWS) -> pl.DataFrame:
    """One row per as-of date, indicator and period running then whose end the data covers."""
    covered = data_as_of(con)
    finals: dict[tuple, float | None] = {}
    rows = []
    for as_of in sorted(as_of_dates):
        periods = {
            indicator: [p for p in running_periods(as_of) if covered[indicator] is not None and p[2] <= covered[indicator]]
            for indicator in INDICATORS
        }
        if not any(periods.values()):
            continue
        nowcaster = Nowcaster(con, as_of, as_of, seed, draws)
        for indicator in INDICATORS:
            for label, start, end in periods[indicator]:
                key = (indicator, start, end)
                if key not in finals:
                    finals[key] = final_value(con, indicator, start, end, covered[indicator])
                actual = finals[key]
                outlook = nowcaster.outlook(indicator, start, end)
                if actual is None or outlook is None or not np.isfinite(outlook.values).any():
                    continue
                q = outlook.quantiles()
                op, target, stand_in = target_for(settings, end.year, indicator)
                rows.append({
                    "source": source, "as_of": as_of, "indicator": indicator, "period_label": label, "period_end": end,
                    "months_before_end": months_between(as_of, end), "actual": actual, "median": q[0.5],
                    "low_80": q[0.10], "high_80": q[0.90], "low_95": q[0.025], "high_95": q[0.975],
                    "target_op": op, "target": target, "target_stand_in": stand_in,
                    "probability_meets_target": outlook.probability(op, target),
                    "actual_meets_target": meets(actual, op, target), "pit": pit(outlook.values, actual),
                })
    return pl.DataFrame(rows, schema=ROW_SCHEMA)


# ---------------------------------------------------------------- scores


def _scores(rows: pl.DataFrame) -> list[pl.Expr]:
    inside_80 = (pl.col("low_80") <= pl.col("actual")) & (pl.col("actual") <= pl.col("high_80"))
    inside_95 = (pl.col("low_95") <= pl.col("actual")) & (pl.col("actual") <= pl.col("high_95"))
    outcome = pl.col("actual_meets_target").cast(pl.Float64)
    return [
        pl.len().cast(pl.Int64).alias("forecasts"),
        pl.struct("source", "period_end").n_unique().cast(pl.Int64).alias("periods"),
        inside_80.cast(pl.Float64).mean().alias("coverage_80"),
        inside_95.cast(pl.Float64).mean().alias("coverage_95"),
        (pl.col("median") - pl.col("actual")).abs().mean().alias("mae"),
        ((pl.col("probability_meets_target") - outcome) ** 2).mean().alias("brier"),
        (pl.col("high_80") - pl.col("low_80")).mean().alias("mean_width_80"),
        (pl.col("high_95") - pl.col("low_95")).mean().alias("mean_width_95"),
    ]


def summarise(rows: pl.DataFrame, sources: str = "all") -> pl.DataFrame:
    """Scores by indicator x months before the period's end, and per indicator over every
    horizon (months_before_end null). The Brier score counts the rows with a target."""
    by_horizon = rows.group_by("indicator", "months_before_end").agg(_scores(rows))
    overall = rows.group_by("indicator").agg(_scores(rows)).with_columns(pl.lit(None, pl.Int64).alias("months_before_end"))
    order = {indicator: i for i, indicator in enumerate(INDICATORS)}
    summary = pl.concat([by_horizon, overall.select(by_horizon.columns)])
    return (
        summary.with_columns(pl.lit(sources).alias("sources"), pl.col("indicator").replace_strict(order, default=len(order)).alias("_order"))
        .sort("_order", pl.col("months_before_end").fill_null(1000))
        .select(list(SUMMARY_SCHEMA))
        .cast(SUMMARY_SCHEMA)
    )


def calibration(rows: pl.DataFrame, nominal: Iterable[float] = NOMINAL) -> pl.DataFrame:
    """Observed coverage of the central intervals of each nominal size, per indicator:
    a final value lies in the central c-interval when its PIT is within c/2 of 1/2."""
    out = []
    for (indicator,), frame in rows.sort("indicator").group_by("indicator", maintain_order=True):
        distance = (frame["pit"] - 0.5).abs()
        for c in nominal:
            out.append({"indicator": indicator, "nominal": c, "observed": float((distance <= c / 2 + 1e-12).mean()),
                        "forecasts": frame.height})
    return pl.DataFrame(out, schema={"indicator": pl.String, "nominal": pl.Float64, "observed": pl.Float64, "forecasts": pl.Int64})


# ---------------------------------------------------------------- Markdown


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def _num(value: float | None, decimals: int) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{decimals}f}"


def _goal_mark(value: float | None, level: float) -> str:
    low, high = GOALS[level]
    return "" if value is None else (" ✓" if low <= value <= high else " ✗")


def markdown_summary(summary: pl.DataFrame) -> str:
    """The summary as Markdown: one table per source group and indicator."""
    parts = []
    for (sources,), by_sources in summary.group_by("sources", maintain_order=True):
        for (indicator,), frame in by_sources.group_by("indicator", maintain_order=True):
            decimals = 1 if indicator == PROCESSING_TIME else 3
            parts.append(f"**{sources}: {SHORT_NAMES.get(indicator, indicator)}**\n")
            parts.append("| months before end | forecasts | periods | 80 % covered | 95 % covered | MAE of median | Brier | mean 80 % width | mean 95 % width |")
            parts.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for row in frame.iter_rows(named=True):
                months = "all" if row["months_before_end"] is None else str(row["months_before_end"])
                bold = "**" if months == "all" else ""
                marks = (_goal_mark(row["coverage_80"], 0.80), _goal_mark(row["coverage_95"], 0.95)) if months == "all" else ("", "")
                parts.append(
                    f"| {bold}{months}{bold} | {row['forecasts']} | {row['periods']} | {_pct(row['coverage_80'])}{marks[0]} | "
                    f"{_pct(row['coverage_95'])}{marks[1]} | {_num(row['mae'], decimals)} | {_num(row['brier'], 3)} | "
                    f"{_num(row['mean_width_80'], decimals)} | {_num(row['mean_width_95'], decimals)} |"
                )
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def markdown_calibration(table: pl.DataFrame) -> str:
    """Nominal against observed coverage of central intervals, one column per indicator."""
    indicators = [i for i in INDICATORS if i in set(table["indicator"])]
    lines = ["| central interval | " + " | ".join(SHORT_NAMES[i] for i in indicators) + " |",
             "|---:|" + "---:|" * len(indicators)]
    for c in sorted(set(table["nominal"])):
        cells = [table.filter((pl.col("indicator") == i) & (pl.col("nominal") == c))["observed"] for i in indicators]
        lines.append(f"| {c:.0%} | " + " | ".join(_pct(cell[0] if len(cell) else None) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- calibration plot


def calibration_figure(rows: pl.DataFrame, title: str):
    """Nominal against observed coverage (PIT) per indicator, and the 80 % / 95 % coverage
    by months before the period's end per indicator, with the goal bands."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    indicators = [i for i in INDICATORS if i in set(rows["indicator"])]
    colours = {PROCESSING_TIME: "#1f5fa8", SATISFACTION: "#c0392b"}
    fig = make_subplots(
        rows=1, cols=1 + len(indicators), horizontal_spacing=0.07,
        subplot_titles=["Central intervals: nominal vs observed (PIT)",
                        *(f"Coverage by horizon: {SHORT_NAMES[i]}" for i in indicators)],
    )
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#888", dash="dot"), name="ideal",
                             showlegend=False), row=1, col=1)
    table = calibration(rows)
    for level, (low, high) in GOALS.items():
        fig.add_shape(type="rect", x0=level - 0.012, x1=level + 0.012, y0=low, y1=high, fillcolor="#2e8b57", opacity=0.25,
                      line_width=0, row=1, col=1)
    for indicator in indicators:
        part = table.filter(pl.col("indicator") == indicator).sort("nominal")
        fig.add_trace(go.Scatter(x=part["nominal"].to_list(), y=part["observed"].to_list(), mode="lines+markers",
                                 line=dict(color=colours[indicator]), name=SHORT_NAMES[indicator]), row=1, col=1)
    horizon = summarise(rows).filter(pl.col("months_before_end").is_not_null())
    for col, indicator in enumerate(indicators, start=2):
        part = horizon.filter(pl.col("indicator") == indicator).sort("months_before_end")
        months = part["months_before_end"].to_list()
        for level, dash in ((0.80, "dash"), (0.95, "solid")):
            fig.add_trace(go.Scatter(
                x=months, y=part[f"coverage_{round(level * 100)}"].to_list(), mode="lines+markers",
                line=dict(color=colours[indicator], dash=dash), name=f"{SHORT_NAMES[indicator]}: {level:.0%} interval",
                text=[f"{n} forecasts" for n in part["forecasts"]], hovertemplate="%{x} months: %{y:.0%} (%{text})",
            ), row=1, col=col)
        for level, (low, high) in GOALS.items():  # after the traces: plotly leaves shapes off empty subplots
            fig.add_hrect(y0=low, y1=high, fillcolor="#2e8b57", opacity=0.12, line_width=0, row=1, col=col,
                          annotation_text=f"goal of the {level:.0%} interval", annotation_position="bottom left",
                          annotation_font=dict(size=10, color="#2e8b57"))
        fig.update_xaxes(title_text="months before the period's end", dtick=1, row=1, col=col)
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=col)
    fig.update_xaxes(title_text="nominal coverage", range=[0, 1], tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text="observed coverage", range=[0, 1.02], tickformat=".0%", row=1, col=1)
    fig.update_layout(
        title=dict(text=title, x=0.01), width=1500, height=520, template="plotly_white",
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0), margin=dict(l=60, r=20, t=80, b=130),
    )
    return fig


def write_figure(fig, path: Path) -> Path:
    """Write the figure as PNG through Debian's headless chromium (plotly.js inline, no
    network); without chromium, as HTML beside it. Returns the file written."""
    path = path.absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium")
    html = path.with_suffix(".html")
    fig.write_html(html, include_plotlyjs=True, full_html=True, config={"staticPlot": True})
    if chromium is None:
        return html
    with tempfile.TemporaryDirectory(prefix="backtest-chromium-") as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
             f"--window-size={fig.layout.width},{fig.layout.height}", "--virtual-time-budget=10000",
             f"--screenshot={path}", html.as_uri()],
            check=True, capture_output=True, timeout=120,
        )
    html.unlink()
    return path


# ---------------------------------------------------------------- the whole backtest


def build_warehouse(landing: Path, work_dir: Path, settings: Settings, key: bytes = BACKTEST_KEY) -> duckdb.DuckDBPyConnection:
    """Ingest a landing folder and build the KPIs in a fresh working warehouse (the
    library's pipeline without publishing); the open connection."""
    shutil.rmtree(work_dir, ignore_errors=True)
    con = warehouse.connect(work_dir)
    try:
        ingest_landing(con, landing, key, settings)
        kpi.build_kpis(con, settings)
    except BaseException:
        con.close()
        raise
    return con


def source_as_of_dates(con: duckdb.DuckDBPyConnection, skip_first_year: bool) -> list[dt.date]:
    """Month ends from the data's start (or from its second year) to its as-of date."""
    first = con.execute("SELECT min(saapunut) FROM core.decisions").fetchall()[0][0]
    last = max(d for d in data_as_of(con).values() if d is not None)
    if first is None:
        return []
    start = dt.date(first.year + 1, 1, 1) if skip_first_year else first
    return month_ends_between(start, last)


@dataclass
class BacktestResult:
    rows: pl.DataFrame
    summary: pl.DataFrame
    calibration: pl.DataFrame
    markdown: str
    files: list[Path]
    seconds: float


def run(out: Path, settings: Settings, seeds: Iterable[int] = (1, 2, 3, 4, 5), decisions: int = 60_000,
        feedback: int = 30_000, first_year: int = 2020, last_year: int = 2022, sample: Path | None = None,
        nowcast_seed: int = SEED, draws: int = DRAWS, log: Callable[[str], None] = lambda _: None) -> BacktestResult:
    """Generate a landing folder per seed, build its warehouse, backtest every month end
    after the first (warm-up) year; the same for the bundled `sample` at every month end
    it has; write rows, summary, calibration and the plot under `out`."""
    from keha_maksatus.sample import write_sample

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for seed in seeds:
        folder = out / f"seed_{seed}"
        shutil.rmtree(folder, ignore_errors=True)
        write_sample(folder / "landing", decisions=decisions, feedback=feedback, seed=seed, csv_only=True,
                     first_year=first_year, last_year=last_year)
        con = build_warehouse(folder / "landing", folder / "state", settings)
        try:
            dates = month_ends_between(dt.date(first_year + 1, 1, 1), dt.date(last_year, 12, 31))
            frames.append(backtest_rows(con, dates, settings, f"seed {seed}", nowcast_seed, draws))
        finally:
            con.close()
        log(f"seed {seed}: {frames[-1].height} forecasts ({time.perf_counter() - started:.0f} s)")
    if sample is not None:
        con = build_warehouse(sample, out / "sample" / "state", settings)
        try:
            frames.append(backtest_rows(con, source_as_of_dates(con, skip_first_year=False), settings, SAMPLE_SOURCE,
                                        nowcast_seed, draws))
        finally:
            con.close()
        log(f"bundled sample: {frames[-1].height} forecasts ({time.perf_counter() - started:.0f} s)")
    rows = pl.concat(frames) if frames else pl.DataFrame(schema=ROW_SCHEMA)
    generated = rows.filter(pl.col("source") != SAMPLE_SOURCE)
    seed_list = list(seeds)
    generated_name = f"generated, seeds {_seed_range(seed_list)}" if seed_list else "generated"
    summaries, calibrations = [], []
    for name, part in ((generated_name, generated), ("bundled sample", rows.filter(pl.col("source") == SAMPLE_SOURCE))):
        if part.height:
            summaries.append(summarise(part, name))
            calibrations.append(calibration(part).with_columns(pl.lit(name).alias("sources")))
    summary = pl.concat(summaries) if summaries else pl.DataFrame(schema=SUMMARY_SCHEMA)
    calibrated = pl.concat(calibrations) if calibrations else pl.DataFrame()
    rows.write_csv(out / "backtest_rows.csv")
    summary.write_csv(out / "backtest_summary.csv")
    calibrated.write_csv(out / "backtest_calibration.csv")
    text = markdown_report(rows, summary, seed_list, decisions, feedback, first_year, last_year, nowcast_seed, draws)
    (out / "backtest.md").write_text(text, encoding="utf-8")
    files = [out / "backtest_rows.csv", out / "backtest_summary.csv", out / "backtest_calibration.csv", out / "backtest.md"]
    if generated.height:
        title = f"Backtest of the year-end nowcast: {generated_name} ({generated.height} forecasts)"
        files.append(write_figure(calibration_figure(generated, title), out / "forecast_calibration.png"))
    return BacktestResult(rows, summary, calibrated, text, files, time.perf_counter() - started)


def _seed_range(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def markdown_report(rows: pl.DataFrame, summary: pl.DataFrame, seeds: list[int], decisions: int, feedback: int,
                    first_year: int, last_year: int, nowcast_seed: int, draws: int) -> str:
    """The backtest's figures as Markdown to paste into docs/forecast.md (no dates or
    timings: the same settings give the same text)."""
    generated = rows.filter(pl.col("source") != SAMPLE_SOURCE)
    sample = rows.filter(pl.col("source") == SAMPLE_SOURCE)
    lines = [
        f"Generated by `keha-maksatus backtest` (nowcast seed {nowcast_seed}, {draws} draws). Generated data: seeds "
        f"{_seed_range(seeds) if seeds else '-'}, {decisions} decisions and {feedback} responses each over "
        f"{first_year}–{last_year}, forecast as of every month end of {first_year + 1}–{last_year} "
        f"({generated.height} forecasts of {_distinct_finals(generated)} final values). "
        + (f"Bundled sample: every month end with a running period the data covers ({sample.height} forecasts of "
           f"{_distinct_finals(sample)} final values)." if sample.height else "Bundled sample: not included."),
        "",
        "*periods*: distinct final values behind the row (forecasts of one period from several dates share one outcome). "
        "✓/✗: inside/outside the goal (80 % intervals cover 72–88 %, 95 % intervals 90–98 %).",
        "",
        markdown_summary(summary),
    ]
    if generated.height:
        lines += ["Central intervals of every size, from the PIT (generated data):", "", markdown_calibration(calibration(generated))]
    return "\n".join(lines).rstrip() + "\n"


def _distinct_finals(rows: pl.DataFrame) -> int:
    return rows.select(pl.struct("source", "indicator", "period_end").n_unique()).item() if rows.height else 0


# The generated block of docs/forecast.md.
DOC_BEGIN = "<!-- backtest:begin (generated by keha-maksatus backtest --doc; edits inside are overwritten) -->"
DOC_END = "<!-- backtest:end -->"


def update_doc(doc: Path, text: str, figure: Path | None) -> None:
    """Replace the generated block of `doc` with `text`; copy the figure beside the doc."""
    content = doc.read_text(encoding="utf-8")
    begin, end = content.index(DOC_BEGIN), content.index(DOC_END)
    doc.write_text(content[: begin + len(DOC_BEGIN)] + "\n" + text + "\n" + content[end:], encoding="utf-8")
    if figure is not None and figure.suffix == ".png":
        shutil.copyfile(figure, doc.parent / figure.name)
