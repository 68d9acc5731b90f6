"""The forecast tables in the warehouse: kpi.forecast, kpi.forecast_fan,
kpi.pending_at_risk and kpi.forecast_what_if (see nowcast.py for the model)."""

from __future__ import annotations

import datetime as dt
import zlib

import duckdb
import numpy as np
import polars as pl

from keha_maksatus.config import INDICATORS, PROCESSING_TIME, SATISFACTION, Settings
from keha_maksatus.forecast import history, nowcast
from keha_maksatus.forecast.nowcast import DRAWS, SEED, Outlook
from keha_maksatus.kpi import as_of_date, period_bounds

# What-if levers: the N oldest pending applications, decided by as_of + days (or the period end).
WHAT_IF_OLDEST = (10, 50, 100, 500, 1000, 5000)
WHAT_IF_DAYS = (14, 30, 60)
DAY_TARGET = 30  # a decision beyond this many days counts against the processing-time target
RISK_SPAN_DAYS = 730  # how far ahead a pending application's decision day is followed

TABLE_COMMENTS = {
    "kpi.forecast": "Year-end nowcast: for every indicator and reporting period still running at the data's as-of date, the forecast of the period's final value (median, 80 % and 95 % intervals) and the probability of meeting the target.",
    "kpi.forecast_fan": "The running year's cumulative value (1.1. to each month end): observed up to the as-of date, forecast (median, 80 % and 95 % intervals) after it.",
    "kpi.pending_at_risk": "Every application pending at the decisions' as-of date (by hakemus_id only) with the chance that it is decided after the running period ends or beyond 30 days, and its expected effect on the period's mean processing time.",
    "kpi.forecast_what_if": "What if the N oldest pending applications were decided by a date: the forecast of the running period's mean processing time.",
}
_INTERVAL = {
    "median": "Median of the forecast final value",
    "low_80": "Lower end of the 80 % forecast interval",
    "high_80": "Upper end of the 80 % forecast interval",
    "low_95": "Lower end of the 95 % forecast interval",
    "high_95": "Upper end of the 95 % forecast interval",
}
COLUMN_COMMENTS = {
    "kpi.forecast": {
        "indicator": "Indicator id, as in kpi.quality_section",
        "label_fi": "The indicator's name as in the agreement",
        "period_label": "Reporting period still running: 1-6/Y or 1-12/Y",
        "period_start": "First day of the period",
        "period_end": "Last day of the period",
        "as_of": "The data's as-of date for the indicator (newest extract of its own kind)",
        "days_left": "Days from as_of to the period's end",
        "seen_n": "Decisions or scored responses in the period so far",
        "seen_value": "The period's value so far (as in kpi.quality_section)",
        "expected_n": "Expected decisions or scored responses behind the final value",
        **_INTERVAL,
        "target_op": "> or <; null when no target for that year",
        "target": "The year's target; null when none",
        "probability_meets_target": "Share of the simulated final values that meet the target; null when no target",
        "pending_n": "Processing time: applications pending at as_of",
        "pending_expected_in_period": "Processing time: of the pending applications, how many are expected to be decided by the period's end",
        "expected_arrivals": "Applications (or scored responses) expected to arrive between as_of and the period's end",
        "arrivals_expected_in_period": "Of those, how many are expected in the final value (processing time: decided by the period's end)",
        "basis_n": "Processing time: decisions the time-to-decision curves were learned from (last 365 days); satisfaction: scored responses of the last 182 days, whose mean the responses to come are given",
        "drift_sigma": "Drift allowed over the months ahead: processing time, of the pace of work (relative, set by the backtest); satisfaction, of the mean score (points, from the history of monthly means)",
        "draws": "Simulated final values behind the figures",
        "seed": "Seed of the simulation: the same data and seed give the same forecast",
    },
    "kpi.forecast_fan": {
        "indicator": "Indicator id",
        "year": "The running year",
        "date": "A month end of the year (and the as-of date)",
        "observed": "True up to the as-of date: the value is what the data shows",
        "value": "Observed cumulative value, or the forecast median",
        **{k: v.replace("final value", "cumulative value") for k, v in _INTERVAL.items() if k != "median"},
        "n": "Observed n, or the expected n at that date",
    },
    "kpi.pending_at_risk": {
        "as_of": "The decisions' as-of date",
        "period_label": "The running reporting period whose mean the application affects",
        "period_end": "Last day of that period",
        "hakemus_id": "Payment application id (no customer data)",
        "tukimuoto": "Instrument",
        "yksikko": "Office",
        "saapunut": "Date received",
        "age_days": "Days pending at as_of",
        "probability_after_period_end": "Chance that the decision comes after the period's end (then it is outside the period's mean)",
        "probability_over_30_days": "Chance that the processing time ends up over 30 days (1 when already past)",
        "expected_days": "Expected processing time in days, given the application is still pending at its age",
        "expected_effect_days": "Expected change of the period's mean processing time this application brings (days; positive raises the mean)",
    },
    "kpi.forecast_what_if": {
        "as_of": "The decisions' as-of date",
        "period_label": "The running reporting period",
        "oldest_n": "How many of the oldest pending applications are decided",
        "decided_by": "The date they are decided on",
        "median": "Median of the period's final mean processing time under this lever",
        "low_80": "Lower end of the 80 % forecast interval",
        "high_80": "Upper end of the 80 % forecast interval",
        "probability_meets_target": "Chance of meeting the target under this lever",
        "change_days": "Median under the lever minus the forecast median without it",
    },
}

FORECAST_SCHEMA = {
    "indicator": pl.String, "label_fi": pl.String, "period_label": pl.String, "period_start": pl.Date,
    "period_end": pl.Date, "as_of": pl.Date, "days_left": pl.Int64, "seen_n": pl.Int64, "seen_value": pl.Float64,
    "expected_n": pl.Float64, "median": pl.Float64, "low_80": pl.Float64, "high_80": pl.Float64, "low_95": pl.Float64,
    "high_95": pl.Float64, "target_op": pl.String, "target": pl.Float64, "probability_meets_target": pl.Float64,
    "pending_n": pl.Int64, "pending_expected_in_period": pl.Float64, "expected_arrivals": pl.Float64,
    "arrivals_expected_in_period": pl.Float64, "basis_n": pl.Float64, "drift_sigma": pl.Float64, "draws": pl.Int64,
    "seed": pl.Int64,
}
FAN_SCHEMA = {
    "indicator": pl.String, "year": pl.Int32, "date": pl.Date, "observed": pl.Boolean, "value": pl.Float64,
    "low_80": pl.Float64, "high_80": pl.Float64, "low_95": pl.Float64, "high_95": pl.Float64, "n": pl.Float64,
}
PENDING_SCHEMA = {
    "as_of": pl.Date, "period_label": pl.String, "period_end": pl.Date, "hakemus_id": pl.String, "tukimuoto": pl.String,
    "yksikko": pl.String, "saapunut": pl.Date, "age_days": pl.Int64, "probability_after_period_end": pl.Float64,
    "probability_over_30_days": pl.Float64, "expected_days": pl.Float64, "expected_effect_days": pl.Float64,
}
WHAT_IF_SCHEMA = {
    "as_of": pl.Date, "period_label": pl.String, "oldest_n": pl.Int64, "decided_by": pl.Date, "median": pl.Float64,
    "low_80": pl.Float64, "high_80": pl.Float64, "probability_meets_target": pl.Float64, "change_days": pl.Float64,
}


def running_periods(as_of: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """The reporting periods (label, start, end) that have started but not ended by as_of."""
    return [p for p in period_bounds(as_of.year) if p[1] <= as_of < p[2]]


def month_ends(year: int) -> list[dt.date]:
    return [dt.date(year + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1) for m in range(1, 13)]


def target_of(settings: Settings, year: int, indicator: str) -> tuple[str | None, float | None]:
    for target in settings.targets:
        if target.year == year and target.indicator == indicator:
            return target.op, target.value
    return None, None


class Nowcaster:
    """The nowcast of both indicators as of given dates (each kind's own), for any period end.

    `decisions_as_of` / `feedback_as_of` may be any past dates: the data is read as it
    stood then (history.py), which is what the backtest does."""

    def __init__(self, con: duckdb.DuckDBPyConnection, decisions_as_of: dt.date | None, feedback_as_of: dt.date | None,
                 seed: int = SEED, draws: int = DRAWS):
        self.seed, self.draws = seed, draws
        self.decisions_as_of, self.feedback_as_of = decisions_as_of, feedback_as_of
        self.model, self.decided, self._outlooks, self._pending = None, None, {}, None
        if decisions_as_of is not None:
            past = history.read_decision_history(con, decisions_as_of)
            self.decided = past.decided
            # None when the last 365 days hold too few decisions to learn from: no forecast.
            self.model = nowcast.fit_decision_model(past, self._rng("curves"))
        self.scores = history.read_score_months(con, feedback_as_of) if feedback_as_of is not None else None

    def _rng(self, *keys) -> np.random.Generator:
        # One stream per question, so that asking another question changes no answer; a
        # what-if asks the same question as its baseline (common random numbers).
        return np.random.default_rng([self.seed, zlib.crc32("|".join(map(str, keys)).encode())])

    def pending_applications(self, con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
        """The applications pending at decisions_as_of (hakemus_id, tukimuoto, yksikko, saapunut),
        oldest first (by saapunut, then hakemus_id); read once for pending_at_risk and what_if_rows."""
        if self._pending is None:
            self._pending = con.sql(
                """
                SELECT hakemus_id, tukimuoto, yksikko, saapunut FROM core.decisions
                WHERE saapunut <= $as_of::DATE AND (paatetty IS NULL OR paatetty > $as_of::DATE)
                ORDER BY saapunut, hakemus_id
                """,
                params={"as_of": self.decisions_as_of},
            ).pl()
        return self._pending

    def as_of(self, indicator: str) -> dt.date | None:
        return self.decisions_as_of if indicator == PROCESSING_TIME else self.feedback_as_of

    def outlook(self, indicator: str, start: dt.date, end: dt.date, **what_if) -> Outlook | None:
        """The period [start, end]'s final value; what_if: pending= and decided_extra= (processing time)."""
        key = (indicator, start, end)
        if not what_if and key in self._outlooks:
            return self._outlooks[key]
        rng = self._rng(*key)
        if indicator == PROCESSING_TIME:
            if self.model is None:
                return None
            outlook = nowcast.simulate_processing_time(self.model, start, end, rng, self.draws, **what_if)
        elif self.scores is None or not self.scores.months:
            return None
        else:
            outlook = nowcast.simulate_satisfaction(self.scores, self.feedback_as_of, start, end, rng, self.draws)
        if outlook.quantiles()[0.5] is None:  # nothing seen and nothing to come
            return None
        if not what_if:
            self._outlooks[key] = outlook
        return outlook


def forecast_rows(nowcaster: Nowcaster, settings: Settings) -> list[dict]:
    """One row per indicator and running period (kpi.forecast)."""
    rows = []
    for indicator in (SATISFACTION, PROCESSING_TIME):
        as_of = nowcaster.as_of(indicator)
        if as_of is None:
            continue
        for label, start, end in running_periods(as_of):
            outlook = nowcaster.outlook(indicator, start, end)
            if outlook is None:
                continue
            op, target = target_of(settings, end.year, indicator)
            q = outlook.quantiles()
            rows.append({
                "indicator": indicator, "label_fi": INDICATORS[indicator], "period_label": label,
                "period_start": start, "period_end": end, "as_of": as_of, "days_left": (end - as_of).days,
                "seen_n": int(outlook.seen_n), "seen_value": outlook.seen_value, "expected_n": outlook.expected_n,
                "median": q[0.5], "low_80": q[0.10], "high_80": q[0.90], "low_95": q[0.025], "high_95": q[0.975],
                "target_op": op, "target": target, "probability_meets_target": outlook.probability(op, target),
                "pending_n": int(outlook.pending_n) if indicator == PROCESSING_TIME else None,
                "pending_expected_in_period": outlook.pending_expected_in_period if indicator == PROCESSING_TIME else None,
                "expected_arrivals": outlook.expected_arrivals, "arrivals_expected_in_period": outlook.expected_future_in_period,
                "basis_n": outlook.curve_events, "drift_sigma": outlook.drift_sigma, "draws": nowcaster.draws,
                "seed": nowcaster.seed,
            })
    return rows


def fan_rows(nowcaster: Nowcaster) -> list[dict]:
    """Cumulative value at each month end of the running year (kpi.forecast_fan)."""
    rows = []
    for indicator in (SATISFACTION, PROCESSING_TIME):
        as_of = nowcaster.as_of(indicator)
        if as_of is None or not running_periods(as_of):
            continue
        series = nowcaster.decided if indicator == PROCESSING_TIME else nowcaster.scores
        if series is None:
            continue
        start = dt.date(as_of.year, 1, 1)
        for date in sorted({d for d in month_ends(as_of.year) if d < as_of} | {as_of}):
            n, s = series.total(start, date)
            value = s / n if n else None
            rows.append({"indicator": indicator, "year": as_of.year, "date": date, "observed": True, "value": value,
                         "low_80": value, "high_80": value, "low_95": value, "high_95": value, "n": n})
        for date in (d for d in month_ends(as_of.year) if d > as_of):
            outlook = nowcaster.outlook(indicator, start, date)
            if outlook is None:
                continue
            q = outlook.quantiles()
            rows.append({"indicator": indicator, "year": as_of.year, "date": date, "observed": False, "value": q[0.5],
                         "low_80": q[0.10], "high_80": q[0.90], "low_95": q[0.025], "high_95": q[0.975], "n": outlook.expected_n})
    return rows


def pending_at_risk(con: duckdb.DuckDBPyConnection, nowcaster: Nowcaster) -> pl.DataFrame:
    """Every pending application at the decisions' as-of date with its risks (kpi.pending_at_risk)."""
    as_of, model = nowcaster.decisions_as_of, nowcaster.model
    if model is None or not running_periods(as_of):
        return pl.DataFrame(schema=PENDING_SCHEMA)
    label, start, end = running_periods(as_of)[0]
    baseline = nowcaster.outlook(PROCESSING_TIME, start, end)
    if baseline is None:
        return pl.DataFrame(schema=PENDING_SCHEMA)
    centre, horizon = baseline.quantiles()[0.5], (end - as_of).days
    # Each application's decision day over the next two years at the monthly pace of work;
    # what is left after them counts as decided at the end of that span.
    span = max(RISK_SPAN_DAYS, horizon)
    pace_days = nowcast.pace_of_days(model, span)
    risks = []
    for (instrument,), group in model.pending.group_by("tukimuoto", maintain_order=True):
        ages = group["age"].to_numpy().astype(np.int64)
        density, days = nowcast.pending_paths(nowcast.hazard_for(model, instrument), ages, pace_days)
        in_period = density[:, :horizon]
        p_in, m1 = in_period.sum(axis=1), (in_period * days[:, :horizon]).sum(axis=1)
        within_30 = np.where(days <= DAY_TARGET, density, 0.0).sum(axis=1)
        left = np.maximum(0.0, 1.0 - density.sum(axis=1))
        risks.append(pl.DataFrame({
            "tukimuoto": instrument, "age_days": ages,
            "probability_after_period_end": 1 - p_in,
            "probability_over_30_days": np.where(ages >= DAY_TARGET, 1.0, 1 - within_30),
            "expected_days": (density * days).sum(axis=1) + left * (ages + span),
            "expected_effect_days": (m1 - p_in * centre) / baseline.expected_n,
        }))
    if not risks:
        return pl.DataFrame(schema=PENDING_SCHEMA)
    # The applications come oldest first (saapunut, hakemus_id): a stable sort by the effect
    # alone orders them by effect (largest first), saapunut and hakemus_id.
    applications = nowcaster.pending_applications(con).with_columns(age_days=(pl.lit(as_of) - pl.col("saapunut")).dt.total_days())
    return (
        applications.join(pl.concat(risks), on=["tukimuoto", "age_days"], maintain_order="left")
        .sort("expected_effect_days", descending=True, maintain_order=True)
        .select(pl.lit(as_of).alias("as_of"), pl.lit(label).alias("period_label"), pl.lit(end).alias("period_end"),
                *(pl.col(c) for c in list(PENDING_SCHEMA)[3:]))
        .cast(PENDING_SCHEMA)
    )


def what_if_rows(con: duckdb.DuckDBPyConnection, nowcaster: Nowcaster, settings: Settings) -> list[dict]:
    """The running period's mean if the N oldest pending applications were decided by D."""
    as_of, model = nowcaster.decisions_as_of, nowcaster.model
    if model is None or not running_periods(as_of):
        return []
    label, start, end = running_periods(as_of)[0]
    op, target = target_of(settings, end.year, PROCESSING_TIME)
    outlook = nowcaster.outlook(PROCESSING_TIME, start, end)
    if outlook is None:
        return []
    baseline = outlook.quantiles()[0.5]
    oldest = nowcaster.pending_applications(con).head(WHAT_IF_OLDEST[-1]).select(
        "tukimuoto", age=(pl.lit(as_of) - pl.col("saapunut")).dt.total_days())
    counts = sorted({n for n in WHAT_IF_OLDEST if n <= oldest.height} | ({oldest.height} if 0 < oldest.height < WHAT_IF_OLDEST[-1] else set()))
    # A week before the period's end or later, "by then" is as good as "by the end".
    dates = sorted({as_of + dt.timedelta(days=d) for d in WHAT_IF_DAYS if as_of + dt.timedelta(days=d) < end - dt.timedelta(days=7)} | {end})
    rows = []
    for n in counts:
        moved = oldest.head(n)
        left = model.pending.join(moved.group_by("tukimuoto", "age").agg(pl.len().alias("moved")), on=["tukimuoto", "age"], how="left")
        left = left.with_columns((pl.col("c") - pl.col("moved").fill_null(0)).alias("c")).filter(pl.col("c") > 0).drop("moved")
        for date in dates:
            extra_days = expected_days_if_decided_by(model, moved, (date - as_of).days)
            lever = nowcaster.outlook(PROCESSING_TIME, start, end, pending=left, decided_extra=(float(n), extra_days))
            q = lever.quantiles()
            rows.append({"as_of": as_of, "period_label": label, "oldest_n": n, "decided_by": date, "median": q[0.5],
                         "low_80": q[0.10], "high_80": q[0.90], "probability_meets_target": lever.probability(op, target),
                         "change_days": None if q[0.5] is None or baseline is None else q[0.5] - baseline})
    return rows


def expected_days_if_decided_by(model: nowcast.DecisionModel, moved: pl.DataFrame, days_left: int) -> float:
    """Expected processing days, summed, of the applications in `moved` (tukimuoto, age) if
    each is decided at the latest `days_left` days after as_of: its own decision day when
    that comes sooner (at the monthly pace of work), else that day."""
    total = 0.0
    pace_days = nowcast.pace_of_days(model, days_left)
    for (instrument,), group in moved.group_by("tukimuoto", maintain_order=True):
        ages = group["age"].to_numpy().astype(np.int64)
        if days_left <= 0:
            total += float(ages.sum())
            continue
        # Each application's paths depend on its age alone: computed once per age.
        distinct, index = np.unique(ages, return_inverse=True)
        density, days = nowcast.pending_paths(nowcast.hazard_for(model, instrument), distinct, pace_days)
        sooner = (density * days).sum(axis=1)
        total += float((sooner + (1 - density.sum(axis=1)) * (distinct + days_left))[index].sum())
    return total


def build_forecast_tables(con: duckdb.DuckDBPyConnection, settings: Settings, seed: int = SEED, draws: int = DRAWS) -> dict[str, int]:
    """(Re)build the kpi.forecast* tables and kpi.pending_at_risk as of the data's dates."""
    nowcaster = Nowcaster(con, as_of_date(con, "decisions"), as_of_date(con, "feedback"), seed, draws)
    frames = {
        "kpi.forecast": pl.DataFrame(forecast_rows(nowcaster, settings), schema=FORECAST_SCHEMA),
        "kpi.forecast_fan": pl.DataFrame(fan_rows(nowcaster), schema=FAN_SCHEMA),
        "kpi.pending_at_risk": pending_at_risk(con, nowcaster),
        "kpi.forecast_what_if": pl.DataFrame(what_if_rows(con, nowcaster, settings), schema=WHAT_IF_SCHEMA),
    }
    for table, frame in frames.items():
        con.register("forecast_frame", frame)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM forecast_frame")
        finally:
            con.unregister("forecast_frame")
    return {table: frame.height for table, frame in frames.items()}
