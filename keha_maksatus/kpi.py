"""The KPI tables, computed in DuckDB from core.decisions and core.feedback.

All figures are built from monthly sums (n, sum, sum of squares), so each reporting
period is an exact roll-up of its months whatever the data size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import duckdb
import polars as pl

from keha_maksatus import failpoints
from keha_maksatus.config import INDICATORS, PROCESSING_TIME, SATISFACTION, Settings

MIN_CELL_RESPONSES = 5  # satisfaction cells with fewer responses are suppressed
OFFICIAL_SURVEYS = ("kohtaaminen", "jalkikysely")
OFFICIAL_SQL = ", ".join(f"'{s}'" for s in OFFICIAL_SURVEYS)  # constants, not input
CAMPAIGN_SURVEY = "kampanja"
AGE_BANDS = ((None, 14, "0-14 pv"), (15, 30, "15-30 pv"), (31, 60, "31-60 pv"), (61, 90, "61-90 pv"), (91, None, "yli 90 pv"))

# 97.5 % quantile of Student's t with df degrees of freedom (Cornish-Fisher expansion
# around z = 1.959964; within 0.01 of the exact value from df = 4 up).
T95_MACRO = """
CREATE OR REPLACE TEMP MACRO t95(df) AS (
    1.959964 + (1.959964^3 + 1.959964) / (4 * df)
    + (5 * 1.959964^5 + 16 * 1.959964^3 + 3 * 1.959964) / (96 * df^2)
    + (3 * 1.959964^7 + 19 * 1.959964^5 + 17 * 1.959964^3 - 15 * 1.959964) / (384 * df^3)
);
CREATE OR REPLACE TEMP MACRO ci_half(n, s, ss) AS (
    CASE WHEN n > 1 THEN t95(n - 1) * sqrt(greatest(0, (ss - s * s / n) / (n - 1)) / n) END
);
"""

# Columns shared by the satisfaction breakdowns.
SATISFACTION_CELL_COMMENTS = {
    "responses": "Responses, scored or not (EOS and empty included)",
    "n": "Scored responses (1-5)",
    "mean_score": "Mean score; null when suppressed",
    "ci_low": "Lower end of the 95 % confidence interval; null when suppressed",
    "ci_high": "Upper end of the 95 % confidence interval; null when suppressed",
    "share_4_5": "Share of scores 4 or 5; null when suppressed",
    "suppressed": "True when n < 5: the cell's figures are withheld",
}

TABLE_COMMENTS = {
    "kpi.quality_section": "The performance agreement's quality-section figures: one row per indicator and reporting period (1-6/Y and 1-12/Y, cumulative).",
    "kpi.quality_section_details": "Supplementary figures for kpi.quality_section: 95 % confidence interval of satisfaction, net processing time, campaign surveys (not in the official figure).",
    "kpi.processing_time_monthly": "Processing time of payment decisions by decision month, instrument and office, with roll-ups: a null tukimuoto or yksikko means all of them.",
    "kpi.processing_time_distribution": "How many decisions took 0-4, 5-9, ... days (120 = 120 or more), by decision year.",
    "kpi.satisfaction_monthly": "Satisfaction with payment services by answer month, survey type and instrument (null tukimuoto = all instruments). Cells with fewer than 5 scored responses are suppressed.",
    "kpi.satisfaction_by_instrument": "Satisfaction with payment services by year and instrument, official surveys (kohtaaminen, jalkikysely) only. Cells with fewer than 5 scored responses are suppressed.",
    "kpi.monthly_trend": "Both headline KPIs month by month (official definitions); satisfaction months under 5 responses suppressed.",
    "kpi.backlog": "Pending payment applications at the data's as-of date by age band, instrument and office.",
}
COLUMN_COMMENTS = {
    "kpi.quality_section": {
        "indicator": "maksatus_asiakastyytyvaisyys or maksatus_kasittelyaika_pv",
        "label_fi": "The indicator's name as in the agreement",
        "period_label": "Reporting period: 1-6/Y or 1-12/Y",
        "period_start": "First day of the period",
        "period_end": "Last day of the period",
        "complete": "False while the period is still running in the data: its end is after the newest extract of the indicator's own kind (decisions for processing time, feedback for satisfaction)",
        "target_op": "> or <; null when no target for that year",
        "target": "The year's target; null when none",
        "value": "Unrounded value: mean score (1-5) or mean processing time in days",
        "n": "Decisions or scored responses behind the value",
        "met": "value compared with the target strictly as written; null when no target",
    },
    "kpi.quality_section_details": {
        "indicator": "Indicator id, as in kpi.quality_section",
        "period_label": "Reporting period (1-6/Y or 1-12/Y), as in kpi.quality_section",
        "ci_low": "Satisfaction: lower end of the 95 % confidence interval (t distribution)",
        "ci_high": "Satisfaction: upper end of the 95 % confidence interval",
        "net_value": "Processing time: mean of max(0, days - taydennys_pv)",
        "campaign_n": "Satisfaction: scored responses in campaign surveys (not in the official figure)",
        "campaign_value": "Satisfaction: mean score in campaign surveys",
    },
    "kpi.processing_time_monthly": {
        "month": "Month of the decision (first day)",
        "tukimuoto": "Instrument; null = all instruments",
        "yksikko": "Office; null = all offices",
        "n": "Decisions",
        "mean_days": "Mean processing time, days",
        "median_days": "Median processing time, days",
        "p90_days": "90th percentile of processing time, days",
        "share_within_30_days": "Share of decisions made within 30 days of receipt",
        "net_mean_days": "Mean of max(0, days - taydennys_pv)",
    },
    "kpi.processing_time_distribution": {
        "year": "Year of the decision",
        "days_from": "Lower end of a 5-day band of processing time (120 = 120 days or more)",
        "n": "Decisions",
    },
    "kpi.satisfaction_by_instrument": {
        "year": "Year of the answer",
        "tukimuoto": "Instrument; '(ei tiedossa)' when the response is not linked to one",
        **SATISFACTION_CELL_COMMENTS,
    },
    "kpi.satisfaction_monthly": {
        "month": "Month of the answer (first day)",
        "kysely": "Survey type",
        "tukimuoto": "Instrument; '(ei tiedossa)' when not linked to one; null = all instruments",
        **SATISFACTION_CELL_COMMENTS,
    },
    "kpi.monthly_trend": {
        "month": "Month (first day)",
        "indicator": "Indicator id",
        "n": "Decisions or scored responses",
        "value": "Mean for the month; null when suppressed",
        "ci_low": "Satisfaction: lower end of the 95 % confidence interval",
        "ci_high": "Satisfaction: upper end of the 95 % confidence interval",
        "suppressed": "True for a satisfaction month with fewer than 5 responses",
    },
    "kpi.backlog": {
        "as_of": "The date the backlog is counted at: the newest decisions extract",
        "age_band": "Age of the pending application at as_of",
        "band_order": "Sort order of the age band",
        "over_30_days": "True for bands already past 30 days",
        "tukimuoto": "Instrument",
        "yksikko": "Office",
        "n": "Pending applications",
        "haettu_eur": "Amount applied for, EUR",
    },
}


UNLINKED = "(ei tiedossa)"
# Mean, CI and share of 4-5 of a satisfaction cell, withheld under MIN_CELL_RESPONSES.
SUPPRESSED_CELLS = f"""
        SELECT {{keys}}, responses, n,
               CASE WHEN n >= {MIN_CELL_RESPONSES} THEN s / n END AS mean_score,
               CASE WHEN n >= {MIN_CELL_RESPONSES} THEN s / n - ci_half(n, s, ss) END AS ci_low,
               CASE WHEN n >= {MIN_CELL_RESPONSES} THEN s / n + ci_half(n, s, ss) END AS ci_high,
               CASE WHEN n >= {MIN_CELL_RESPONSES} THEN high / n END AS share_4_5,
               n < {MIN_CELL_RESPONSES} AS suppressed
        FROM cells"""


def as_of_date(con: duckdb.DuckDBPyConnection, kind: str | None = None) -> dt.date | None:
    """The newest extract date among the files whose rows are used (of one kind: the
    `decisions` or `feedback` extracts alone)."""
    return con.execute(
        "SELECT max(extract_date) FROM quality.ingest_log WHERE status = 'ingested' AND (kind = ? OR ? IS NULL)", [kind, kind]
    ).fetchall()[0][0]


def period_bounds(year: int) -> list[tuple[str, dt.date, dt.date]]:
    """The agreement's reporting periods of a year, cumulative: (1-6/Y, 1.1., 30.6.) and (1-12/Y, 1.1., 31.12.)."""
    return [(f"1-{month}/{year}", dt.date(year, 1, 1), dt.date(year, month, day)) for month, day in ((6, 30), (12, 31))]


def reporting_periods(con: duckdb.DuckDBPyConnection, as_of: dt.date, as_of_by_kind: dict[str, dt.date | None]) -> pl.DataFrame:
    """1-6/Y and 1-12/Y for every year with decisions or responses, up to as_of
    (from the cell tables of _build_cells). A period is complete for an indicator when
    it ends by the newest extract of that indicator's own kind (decisions_complete,
    feedback_complete)."""
    years = sorted(
        y
        for (y,) in con.execute(
            "SELECT DISTINCT year(month) FROM decision_cells UNION SELECT DISTINCT year(month) FROM feedback_cells"
        ).fetchall()
        if y <= as_of.year
    )
    rows = []
    for year in years:
        for label, start, end in period_bounds(year):
            if start <= as_of:
                complete = [as_of_by_kind[kind] is not None and end <= as_of_by_kind[kind] for kind in ("decisions", "feedback")]
                rows.append((label, year, start, end, *complete))
    return pl.DataFrame(
        rows,
        schema={"period_label": pl.String, "year": pl.Int32, "period_start": pl.Date, "period_end": pl.Date,
                "decisions_complete": pl.Boolean, "feedback_complete": pl.Boolean},
        orient="row",
    )


def build_kpis(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, int]:
    """(Re)build every kpi.* table; returns their row counts."""
    con.execute(T95_MACRO)
    _build_cells(con)
    as_of = as_of_date(con) or dt.date.today()
    as_of_by_kind = {kind: as_of_date(con, kind) for kind in ("decisions", "feedback")}
    periods = reporting_periods(con, as_of, as_of_by_kind)
    targets = pl.DataFrame(
        [(t.year, t.indicator, t.op, t.value) for t in settings.targets],
        schema={"year": pl.Int32, "indicator": pl.String, "target_op": pl.String, "target": pl.Float64},
        orient="row",
    )
    labels = pl.DataFrame({"indicator": list(INDICATORS), "label_fi": list(INDICATORS.values())})
    con.register("periods_frame", periods)
    con.register("targets_frame", targets)
    con.register("labels_frame", labels)
    try:
        _build_monthly_sums(con)
        _build_quality_section(con)
    finally:
        for name in ("periods_frame", "targets_frame", "labels_frame"):
            con.unregister(name)
    failpoints.reach("kpi")  # quality section rebuilt, breakdowns not yet
    _build_breakdowns(con, as_of_by_kind["decisions"] or as_of)
    return {
        table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        for table in TABLE_COMMENTS
    }


@dataclass(frozen=True)
class MeanRows:
    """Which rows of a core table one quality-section mean counts, and where and with what
    value, as SQL over a row alias: the rule _build_cells, _build_monthly_sums and
    _build_quality_section apply to cells, and history.changes to single rows. A change of
    one is a change of the other (test_changes' property compares with fresh KPI runs)."""

    kind: str
    counted: Callable[[str], str]  # the row is in the mean
    month: Callable[[str], str]  # the month that places it in a period
    value: Callable[[str], str]


MEAN_ROWS = {
    # decided applications, by the month of the decision
    PROCESSING_TIME: MeanRows(
        "decisions", lambda r: f"{r}.paatetty IS NOT NULL", lambda r: f"date_trunc('month', {r}.paatetty)::DATE",
        lambda r: f"{r}.kasittelyaika_pv",
    ),
    # scored payment-service responses of the official surveys, by the month of the response
    SATISFACTION: MeanRows(
        "feedback", lambda r: f"{r}.palvelu = 'maksatus' AND {r}.kysely IN ({OFFICIAL_SQL}) AND {r}.arvosana IS NOT NULL",
        lambda r: f"date_trunc('month', {r}.vastattu)::DATE", lambda r: f"{r}.arvosana",
    ),
}


def _build_cells(con: duckdb.DuckDBPyConnection) -> None:
    """One pass over each core table into its finest cells; every KPI table is summed
    from these (sums of counts, so the results are the same as from the rows).

    decision_cells: decided applications by month, instrument, office and processing days.
    feedback_cells: responses by month, service, survey and instrument (null when unlinked)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE decision_cells AS
        SELECT date_trunc('month', paatetty)::DATE AS month, tukimuoto, yksikko, kasittelyaika_pv AS days,
               count(*) AS c, sum(netto_kasittelyaika_pv) AS net
        FROM core.decisions WHERE paatetty IS NOT NULL GROUP BY ALL;

        CREATE OR REPLACE TEMP TABLE feedback_cells AS
        SELECT date_trunc('month', vastattu)::DATE AS month, palvelu, kysely, tukimuoto,
               count(*) AS responses, count(arvosana) AS n,
               sum(arvosana)::DOUBLE AS s, sum(arvosana * arvosana)::DOUBLE AS ss,
               count(*) FILTER (arvosana >= 4) AS high
        FROM core.feedback GROUP BY ALL;
        """
    )


def _build_monthly_sums(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE decision_months AS
        SELECT month, sum(c)::BIGINT AS n, sum(days * c)::DOUBLE AS s, sum(net)::DOUBLE AS s_net
        FROM decision_cells GROUP BY 1;

        CREATE OR REPLACE TEMP TABLE score_months AS
        SELECT month, kysely IN ({OFFICIAL_SQL}) AS official, kysely = '{CAMPAIGN_SURVEY}' AS campaign,
               sum(n)::BIGINT AS n, sum(s) AS s, sum(ss) AS ss
        FROM feedback_cells WHERE palvelu = 'maksatus' AND n > 0 GROUP BY 1, 2, 3;
        """
    )


def _build_quality_section(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE period_figures AS
        SELECT '{PROCESSING_TIME}' AS indicator, p.period_label, p.year, p.period_start, p.period_end,
               p.decisions_complete AS complete,
               coalesce(sum(m.n), 0)::BIGINT AS n, sum(m.s) / sum(m.n) AS value,
               NULL::DOUBLE AS ci_low, NULL::DOUBLE AS ci_high, sum(m.s_net) / sum(m.n) AS net_value,
               NULL::BIGINT AS campaign_n, NULL::DOUBLE AS campaign_value
        FROM periods_frame p LEFT JOIN decision_months m ON m.month BETWEEN p.period_start AND p.period_end
        GROUP BY ALL
        UNION ALL
        SELECT '{SATISFACTION}', p.period_label, p.year, p.period_start, p.period_end, p.feedback_complete,
               coalesce(sum(m.n) FILTER (m.official), 0)::BIGINT,
               sum(m.s) FILTER (m.official) / sum(m.n) FILTER (m.official),
               sum(m.s) FILTER (m.official) / sum(m.n) FILTER (m.official)
                 - ci_half(sum(m.n) FILTER (m.official), sum(m.s) FILTER (m.official), sum(m.ss) FILTER (m.official)),
               sum(m.s) FILTER (m.official) / sum(m.n) FILTER (m.official)
                 + ci_half(sum(m.n) FILTER (m.official), sum(m.s) FILTER (m.official), sum(m.ss) FILTER (m.official)),
               NULL,
               coalesce(sum(m.n) FILTER (m.campaign), 0)::BIGINT,
               sum(m.s) FILTER (m.campaign) / sum(m.n) FILTER (m.campaign)
        FROM periods_frame p LEFT JOIN score_months m ON m.month BETWEEN p.period_start AND p.period_end
        GROUP BY ALL;

        CREATE OR REPLACE TABLE kpi.quality_section AS
        SELECT f.indicator, l.label_fi, f.period_label, f.period_start, f.period_end, f.complete,
               t.target_op, t.target, f.value, f.n,
               CASE WHEN t.target IS NULL OR f.value IS NULL THEN NULL
                    WHEN t.target_op = '>' THEN f.value > t.target
                    ELSE f.value < t.target END AS met
        FROM period_figures f
        JOIN labels_frame l USING (indicator)
        LEFT JOIN targets_frame t ON t.year = f.year AND t.indicator = f.indicator
        ORDER BY f.period_start, f.period_end, f.indicator;

        CREATE OR REPLACE TABLE kpi.quality_section_details AS
        SELECT indicator, period_label, ci_low, ci_high, net_value, campaign_n, campaign_value
        FROM period_figures ORDER BY period_start, period_end, indicator;
        """
    )


def _quantile_from_histogram(q: float) -> str:
    """quantile_cont(days, q) of a cell from its day counts (columns days, c, n and the
    running count `through`): exact, and far cheaper than sorting every decision. The
    value at 0-based rank k is the least `days` whose running count exceeds k."""
    rank = f"floor((n - 1) * {q})"
    low = f"min(days) FILTER (through > {rank})"
    high = f"coalesce(min(days) FILTER (through > {rank} + 1), {low})"
    return f"({low} + ((n - 1) * {q} - {rank}) * ({high} - {low}))::DOUBLE"


def _build_breakdowns(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    band_case = " ".join(
        f"WHEN age <= {high} THEN {i}" if high is not None else f"ELSE {i}" for i, (_, high, _) in enumerate(AGE_BANDS)
    )
    band_labels = "[" + ", ".join(f"'{label}'" for _, _, label in AGE_BANDS) + "]"
    con.execute(
        f"""
        CREATE OR REPLACE TABLE kpi.processing_time_monthly AS
        WITH histogram AS (
            SELECT month, tukimuoto, yksikko, GROUPING(tukimuoto, yksikko) AS rollup, days, sum(c) AS c, sum(net) AS net
            FROM decision_cells
            GROUP BY GROUPING SETS ((month, tukimuoto, yksikko, days), (month, tukimuoto, days), (month, yksikko, days), (month, days))
        ), ranked AS (
            SELECT *, sum(c) OVER cell AS n, sum(c) OVER (cell ORDER BY days) AS through
            FROM histogram WINDOW cell AS (PARTITION BY month, tukimuoto, yksikko, rollup)
        )
        SELECT month, tukimuoto, yksikko, n::BIGINT AS n,
               sum(days * c) / n AS mean_days,
               {_quantile_from_histogram(0.5)} AS median_days,
               {_quantile_from_histogram(0.9)} AS p90_days,
               coalesce(sum(c) FILTER (days <= 30), 0) / n AS share_within_30_days,
               sum(net) / n AS net_mean_days
        FROM ranked GROUP BY month, tukimuoto, yksikko, rollup, n
        ORDER BY month, tukimuoto NULLS FIRST, yksikko NULLS FIRST;

        CREATE OR REPLACE TABLE kpi.processing_time_distribution AS
        SELECT year(month) AS year, least(days // 5 * 5, 120) AS days_from, sum(c)::BIGINT AS n
        FROM decision_cells GROUP BY ALL ORDER BY ALL;

        CREATE OR REPLACE TABLE kpi.satisfaction_monthly AS
        WITH cells AS (
            SELECT month, kysely, coalesce(tukimuoto, '{UNLINKED}') AS tukimuoto,
                   sum(responses)::BIGINT AS responses, sum(n)::BIGINT AS n, sum(s) AS s, sum(ss) AS ss,
                   sum(high)::BIGINT AS high
            FROM feedback_cells WHERE palvelu = 'maksatus'
            GROUP BY GROUPING SETS ((1, 2, 3), (1, 2))
        )
        {SUPPRESSED_CELLS.format(keys="month, kysely, tukimuoto")}
        ORDER BY month, kysely, tukimuoto NULLS FIRST;

        CREATE OR REPLACE TABLE kpi.satisfaction_by_instrument AS
        WITH cells AS (
            SELECT year(month) AS year, coalesce(tukimuoto, '{UNLINKED}') AS tukimuoto,
                   sum(responses)::BIGINT AS responses, sum(n)::BIGINT AS n, sum(s) AS s, sum(ss) AS ss,
                   sum(high)::BIGINT AS high
            FROM feedback_cells WHERE palvelu = 'maksatus' AND kysely IN ({OFFICIAL_SQL})
            GROUP BY ALL
        )
        {SUPPRESSED_CELLS.format(keys="year, tukimuoto")}
        ORDER BY year, tukimuoto;

        CREATE OR REPLACE TABLE kpi.monthly_trend AS
        SELECT month, '{PROCESSING_TIME}' AS indicator, n, s / n AS value,
               NULL::DOUBLE AS ci_low, NULL::DOUBLE AS ci_high, false AS suppressed
        FROM decision_months
        UNION ALL
        SELECT month, '{SATISFACTION}', n,
               CASE WHEN n >= {MIN_CELL_RESPONSES} THEN s / n END,
               CASE WHEN n >= {MIN_CELL_RESPONSES} THEN s / n - ci_half(n, s, ss) END,
               CASE WHEN n >= {MIN_CELL_RESPONSES} THEN s / n + ci_half(n, s, ss) END,
               n < {MIN_CELL_RESPONSES}
        FROM (SELECT month, sum(n)::BIGINT AS n, sum(s) AS s, sum(ss) AS ss FROM score_months WHERE official GROUP BY month)
        ORDER BY month, indicator;
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE kpi.backlog AS
        WITH pending AS (
            SELECT tukimuoto, yksikko, haettu_eur, (?::DATE - saapunut) AS age
            FROM core.decisions WHERE paatetty IS NULL
        ), banded AS (
            SELECT *, CASE {band_case} END AS band_order FROM pending
        )
        SELECT ?::DATE AS as_of, {band_labels}[band_order + 1] AS age_band, band_order,
               band_order >= 2 AS over_30_days, tukimuoto, yksikko,
               count(*) AS n, sum(haettu_eur) AS haettu_eur
        FROM banded GROUP BY ALL ORDER BY band_order, tukimuoto, yksikko;
        """,
        [as_of, as_of],
    )
