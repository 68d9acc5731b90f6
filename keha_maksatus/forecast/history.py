"""What the past tells about the future: the state of the data as of a date, arrival
rates with their monthly pattern, and how far the monthly means have drifted.

Every figure here is read as of a date A: an application counts as received when
`saapunut <= A` and as decided when `paatetty <= A` (else it was pending at A); a response
counts when answered by A. The nowcast and the backtest use the same reading, so a
backtest "as of" a past date sees what the nowcast would have seen then.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from keha_maksatus.kpi import OFFICIAL_SQL

# The survival curve is learned from decisions made in the last WINDOW_DAYS days.
WINDOW_DAYS = 365
# An instrument needs this many decisions in the window for a curve of its own.
MIN_INSTRUMENT_EVENTS = 100
POOLED = ""  # key of the curve over every instrument


@dataclass(frozen=True)
class MonthlySeries:
    """A monthly series up to the as-of date: month starts, count, sum, sum of squares,
    and the days of each month the data covers (the as-of month may be partial)."""

    months: list[dt.date]
    n: np.ndarray
    s: np.ndarray
    ss: np.ndarray
    days: np.ndarray

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, as_of: dt.date) -> "MonthlySeries":
        if frame.is_empty():
            return cls([], *(np.zeros(0) for _ in range(4)))
        first = frame["month"].min()
        months = _month_range(first, as_of.replace(day=1))
        full = pl.DataFrame({"month": months}).join(frame, on="month", how="left").fill_null(0)
        days = np.array([_days_covered(m, as_of) for m in months], dtype=np.float64)
        return cls(months, full["n"].to_numpy().astype(np.float64), full["s"].to_numpy().astype(np.float64),
                   full["ss"].to_numpy().astype(np.float64), days)

    def total(self, start: dt.date, through: dt.date) -> tuple[float, float]:
        """Count and sum over the months from start's month to through's month."""
        keep = np.array([start.replace(day=1) <= m <= through for m in self.months], dtype=bool)
        return float(self.n[keep].sum()), float(self.s[keep].sum())


def _month_range(first: dt.date, last: dt.date) -> list[dt.date]:
    months, month = [], first
    while month <= last:
        months.append(month)
        month = _next_month(month)
    return months


def _next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _days_covered(month: dt.date, as_of: dt.date) -> int:
    end = min(_next_month(month) - dt.timedelta(days=1), as_of)
    return max(0, (end - month).days + 1)


def read_decided_months(con: duckdb.DuckDBPyConnection, as_of: dt.date, counts: str | None = None) -> MonthlySeries:
    """Decisions made by as_of, by decision month: n, sum and sum of squares of days.
    `counts`: the name of decision_counts(con, as_of) when the caller holds it."""
    if counts is None:
        with decision_counts(con, as_of) as counts:
            return read_decided_months(con, as_of, counts)
    frame = con.sql(
        f"""
        SELECT date_trunc('month', paatetty)::DATE AS month, sum(c)::DOUBLE AS n,
               sum(c * kasittelyaika_pv)::DOUBLE AS s, sum(c * kasittelyaika_pv * kasittelyaika_pv)::DOUBLE AS ss
        FROM {counts} WHERE paatetty <= ?::DATE GROUP BY 1 ORDER BY 1
        """,
        params=[as_of],
    ).pl()
    return MonthlySeries.from_frame(frame, as_of)


@contextlib.contextmanager
def decision_counts(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> Iterator[str]:
    """core.decisions as counts of applications by (tukimuoto, saapunut, paatetty,
    kasittelyaika_pv), every application received or decided by as_of: one scan of the
    table, which the readings below sum instead of scanning it again (a few hundred
    thousand rows for ten million applications). Yields the name it is registered under."""
    name = "forecast_decision_counts"
    frame = con.sql(
        """
        SELECT tukimuoto, saapunut, paatetty, kasittelyaika_pv, count(*) AS c FROM core.decisions
        WHERE saapunut <= $as_of OR paatetty <= $as_of GROUP BY ALL
        """,
        params={"as_of": as_of},
    ).to_arrow_table()
    con.register(name, frame)
    try:
        yield name
    finally:
        con.unregister(name)


def read_score_months(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> MonthlySeries:
    """Scored official payment-service responses answered by as_of, by month."""
    # By day first: date_trunc on every response costs more than the sums (which stay exact).
    frame = con.sql(
        f"""
        SELECT date_trunc('month', day)::DATE AS month, sum(n)::DOUBLE AS n, sum(s)::DOUBLE AS s, sum(ss)::DOUBLE AS ss
        FROM (
            SELECT vastattu::DATE AS day, count(arvosana) AS n, sum(arvosana) AS s, sum(arvosana * arvosana) AS ss
            FROM core.feedback
            WHERE palvelu = 'maksatus' AND kysely IN ({OFFICIAL_SQL}) AND arvosana IS NOT NULL AND vastattu::DATE <= ?::DATE
            GROUP BY 1
        )
        GROUP BY 1 ORDER BY 1
        """,
        params=[as_of],
    ).pl()
    return MonthlySeries.from_frame(frame, as_of)


@dataclass(frozen=True)
class DecisionHistory:
    """What the processing-time nowcast needs to know as of a date."""

    as_of: dt.date
    survival_cells: pl.DataFrame  # tukimuoto, entry, exit, event, c
    pending: pl.DataFrame  # tukimuoto, age, c
    arrivals: dict[str, MonthlySeries]  # received applications by month, per instrument
    decided: MonthlySeries
    window: "PaceWindow"


def read_decision_history(con: duckdb.DuckDBPyConnection, as_of: dt.date, window_days: int | None = None) -> DecisionHistory:
    window_days = window_days or WINDOW_DAYS
    window_start = as_of - dt.timedelta(days=window_days - 1)
    with decision_counts(con, as_of) as counts:
        cells = con.sql(
            f"""
            WITH known AS (
                SELECT tukimuoto, saapunut,
                       CASE WHEN paatetty <= $as_of THEN kasittelyaika_pv END AS days,
                       ($as_of - saapunut)::BIGINT AS age, c
                FROM {counts} WHERE saapunut <= $as_of
            )
            SELECT tukimuoto, greatest(0, ($start - saapunut)::BIGINT) AS entry, coalesce(days, age) AS exit,
                   days IS NOT NULL AS event, sum(c)::DOUBLE AS c
            FROM known WHERE coalesce(days, age) >= ($start - saapunut)::BIGINT
            GROUP BY ALL
            """,
            params={"as_of": as_of, "start": window_start},
        ).pl()
        pending = cells.filter(~pl.col("event")).group_by("tukimuoto", pl.col("exit").alias("age")).agg(pl.col("c").sum()).sort("tukimuoto", "age")
        arrival_frame = con.sql(
            f"""
            SELECT tukimuoto, date_trunc('month', saapunut)::DATE AS month, sum(c)::DOUBLE AS n, 0.0::DOUBLE AS s, 0.0::DOUBLE AS ss
            FROM {counts} WHERE saapunut <= ?::DATE GROUP BY ALL ORDER BY ALL
            """,
            params=[as_of],
        ).pl()
        first = arrival_frame["month"].min() if arrival_frame.height else None
        arrivals = {}
        for (instrument,), frame in arrival_frame.group_by("tukimuoto", maintain_order=True):
            # Every instrument's series starts where the data starts, so its months line up.
            padded = pl.concat([pl.DataFrame({"month": [first], "n": [0.0], "s": [0.0], "ss": [0.0]}), frame.drop("tukimuoto")])
            arrivals[instrument] = MonthlySeries.from_frame(padded.group_by("month").agg(pl.all().sum()).sort("month"), as_of)
        return DecisionHistory(as_of, cells, pending, arrivals, read_decided_months(con, as_of, counts),
                               read_pace_window(con, as_of, window_days, counts))


@dataclass(frozen=True)
class PaceWindow:
    """The last `days` days before as_of, day by day, to learn the pace of work by calendar
    month: what was pending when the window opened, what arrived and what was decided each day."""

    start: dt.date  # the day before the window's first day
    days: int
    pending: pl.DataFrame  # tukimuoto, age (at start), c
    arrivals: pl.DataFrame  # tukimuoto, day (1..days), c
    decisions: np.ndarray  # decisions made on each day 1..days (every instrument)


def read_pace_window(con: duckdb.DuckDBPyConnection, as_of: dt.date, days: int, counts: str | None = None) -> PaceWindow:
    if counts is None:
        with decision_counts(con, as_of) as counts:
            return read_pace_window(con, as_of, days, counts)
    start = as_of - dt.timedelta(days=days)
    params = {"start": start, "as_of": as_of}
    pending = con.sql(
        f"""
        SELECT tukimuoto, ($start - saapunut)::BIGINT AS age, sum(c)::DOUBLE AS c FROM {counts}
        WHERE saapunut <= $start AND (paatetty IS NULL OR paatetty > $start) GROUP BY ALL ORDER BY ALL
        """,
        params={"start": start},
    ).pl()
    arrivals = con.sql(
        f"""
        SELECT tukimuoto, (saapunut - $start)::BIGINT AS day, sum(c)::DOUBLE AS c FROM {counts}
        WHERE saapunut > $start AND saapunut <= $as_of GROUP BY ALL ORDER BY ALL
        """,
        params=params,
    ).pl()
    decided = con.sql(
        f"""
        SELECT (paatetty - $start)::BIGINT AS day, sum(c)::DOUBLE AS c FROM {counts}
        WHERE paatetty > $start AND paatetty <= $as_of GROUP BY ALL
        """,
        params=params,
    ).pl()
    decisions = np.zeros(days)
    decisions[decided["day"].to_numpy() - 1] = decided["c"].to_numpy()
    return PaceWindow(start, days, pending, arrivals, decisions)


def seasonal_profile(series: list[MonthlySeries]) -> np.ndarray:
    """Relative daily rate of each calendar month (12 numbers, mean 1), from the summed
    counts of the series: each month's rate over the rate of the 12 months around it,
    averaged by calendar month. Months never seen in a full year around them count as 1."""
    if not series or not series[0].months:
        return np.ones(12)
    n = np.sum([s.n for s in series], axis=0)
    days = series[0].days
    rate = np.divide(n, days, out=np.zeros_like(n), where=days > 0)
    ratios = [[] for _ in range(12)]
    for i, month in enumerate(series[0].months):
        lo, hi = i - 6, i + 6  # 12 months around, centred as far as the data goes
        if lo < 0:
            lo, hi = 0, 12
        if hi > len(rate):
            lo, hi = len(rate) - 12, len(rate)
        if lo < 0 or days[i] < 28 or days[lo:hi].sum() < 330:
            continue
        level = n[lo:hi].sum() / days[lo:hi].sum()
        if level > 0:
            ratios[month.month - 1].append(rate[i] / level)
    profile = np.array([np.mean(r) if r else np.nan for r in ratios])
    if np.all(np.isnan(profile)):
        return np.ones(12)
    profile = np.where(np.isnan(profile), np.nanmean(profile), profile)
    return profile / profile.mean()


def daily_level(series: MonthlySeries, profile: np.ndarray, window_days: int = WINDOW_DAYS) -> float:
    """Deseasonalised count per day over the last window_days days of the series."""
    taken, count, weight = 0.0, 0.0, 0.0
    for i in range(len(series.months) - 1, -1, -1):
        if taken >= window_days:
            break
        days = min(series.days[i], window_days - taken)
        share = days / series.days[i] if series.days[i] else 0.0
        count += series.n[i] * share
        weight += days * profile[series.months[i].month - 1]
        taken += days
    return count / weight if weight else 0.0


def month_of_days(start: dt.date, days: int) -> np.ndarray:
    """The calendar month (0 = January) of each of the `days` days after `start`."""
    dates = np.datetime64(start, "D") + np.arange(1, days + 1)
    return dates.astype("datetime64[M]").astype(np.int64) % 12


def expected_daily(level: float, profile: np.ndarray, start: dt.date, days: int) -> np.ndarray:
    """Expected counts on each of `days` days after `start`."""
    return level * profile[month_of_days(start, days)] if days > 0 else np.zeros(0)


def drift_sigma(series: MonthlySeries, horizon_months: int, relative: bool, prior: float, prior_weight: float = 6.0) -> float:
    """How far the mean of the next `horizon_months` months strayed from the mean of the
    12 months before, over the history: a root mean square (log ratio when `relative`,
    else a difference), less what sampling noise alone explains, shrunk towards `prior`
    with the weight of `prior_weight` observations."""
    full = series.days >= 28
    n, s, ss = series.n, series.s, series.ss
    k = max(1, min(12, horizon_months))
    errors, noise = [], []
    for j in range(6, len(n) - k + 1):
        past, future = slice(max(0, j - 12), j), slice(j, j + k)
        if not full[future].all() or n[past].sum() < 2 or n[future].sum() < 2:
            continue
        mean_past, mean_future = s[past].sum() / n[past].sum(), s[future].sum() / n[future].sum()
        var_past = _sampling_variance(n[past].sum(), s[past].sum(), ss[past].sum())
        var_future = _sampling_variance(n[future].sum(), s[future].sum(), ss[future].sum())
        if relative:
            if mean_past <= 0 or mean_future <= 0:
                continue
            errors.append(math.log(mean_future / mean_past))
            noise.append(var_past / mean_past**2 + var_future / mean_future**2)
        else:
            errors.append(mean_future - mean_past)
            noise.append(var_past + var_future)
    m = len(errors)
    observed = max(0.0, float(np.mean(np.square(errors)) - np.mean(noise))) if m else 0.0
    return math.sqrt((m * observed + prior_weight * prior**2) / (m + prior_weight))


def _sampling_variance(n: float, s: float, ss: float) -> float:
    """Variance of a mean of n values with sum s and sum of squares ss."""
    if n < 2:
        return 0.0
    return max(0.0, (ss - s * s / n) / (n - 1)) / n
