"""The year-end nowcast: each running period's final value as a distribution.

Processing time. The final mean counts the applications decided by the period's end:
  final = (S_seen + S_future) / (N_seen + N_future)
where "seen" are the decisions made by the as-of date A and "future" those made between
A and the period end E. Future decisions come from two sources:
- the applications pending at A: each one, at age a, is decided at T with the
  distribution of T given T > a, from a Kaplan-Meier curve of its instrument
  (survival.py), and counts if T <= a + (E - A);
- the applications still to arrive, at the instrument's daily rate with its monthly
  pattern (history.py), each counting if decided by E.
The curve's hazard on each day ahead is multiplied by the pace of work of that calendar
month (monthly_pace: few decisions in July, many in August), learned from the last year.
Three sources of uncertainty are drawn: the curve's estimation error (a bootstrap of
its hazards), the chance in which applications are decided (the sums over many
applications, as normal draws with their exact means and variances), and the drift of
the pace of work and of the number of arrivals over the months ahead (PACE_SIGMA and
ARRIVAL_SIGMA, set by the backtest).

Satisfaction. The final mean over the responses still to come: their number from the
monthly pattern of response counts, their mean from the last six months with the drift
the history of monthly means shows (history.drift_sigma), plus sampling noise and the
estimation error of that mean.

Everything is drawn from one seeded generator: the same data and seed give the same
forecast.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, fields

import numpy as np
import polars as pl

from keha_maksatus.config import PROCESSING_TIME, SATISFACTION
from keha_maksatus.forecast import history
from keha_maksatus.forecast.history import DecisionHistory, MonthlySeries
from keha_maksatus.forecast.survival import Moments, bootstrap_hazards, hazard_counts, kaplan_meier

SEED = 2022
DRAWS = 4000
REPLICATES = 200  # bootstrap replicates of the survival curves
# Fewer decisions than this in the last 365 days are too few to learn a time to decision from.
MIN_DECISIONS = 20
# Relative drift of the pace of work over the months ahead (log scale). The monthly means of
# processing time swing with the seasons far more than the forecast errs (the curves, the
# monthly pace and the pending applications carry the season), so this is set by the
# backtest (docs/forecast.md: seeds 1-5, checked on seeds 6-15), not measured on the means.
PACE_SIGMA = 0.035
# Relative drift of the number of applications or responses to come.
ARRIVAL_SIGMA = 0.10
# Drift of the mean score over six months ahead (points), the prior that the history's own
# drift (history.drift_sigma) is shrunk towards; scaled with the square root of the horizon.
SCORE_PRIOR = 0.07
# The mean score of the responses to come is the mean of this many last days.
SCORE_WINDOW_DAYS = 182
QUANTILES = (0.025, 0.10, 0.50, 0.90, 0.975)


@dataclass(frozen=True)
class Outlook:
    """The simulated final values of one indicator's period, and what they rest on."""

    indicator: str
    period_end: dt.date
    as_of: dt.date
    seen_n: float
    seen_sum: float
    values: np.ndarray  # simulated final values (nan where no data at all)
    expected_n: float  # expected count behind the final value
    pending_n: float = 0.0  # applications pending at as_of
    pending_expected_in_period: float = 0.0
    expected_arrivals: float = 0.0  # applications or responses still to come before period_end
    expected_future_in_period: float = 0.0  # of those, expected in the final value
    curve_events: float = 0.0  # decisions the survival curves were learned from
    drift_sigma: float = 0.0

    @property
    def seen_value(self) -> float | None:
        return self.seen_sum / self.seen_n if self.seen_n else None

    def quantiles(self) -> dict[float, float | None]:
        values = self.values[np.isfinite(self.values)]
        if not values.size:
            return {q: None for q in QUANTILES}
        return dict(zip(QUANTILES, (float(v) for v in np.quantile(values, QUANTILES))))

    def probability(self, op: str | None, target: float | None) -> float | None:
        values = self.values[np.isfinite(self.values)]
        if op is None or target is None or not values.size:
            return None
        return float(np.mean(values > target) if op == ">" else np.mean(values < target))


# ---------------------------------------------------------------- processing time


@dataclass(frozen=True)
class DecisionModel:
    """Survival curves (as bootstrap replicates of their moments) and arrival rates of
    every instrument, as of a date."""

    as_of: dt.date
    moments: dict[str, Moments]  # instrument -> moments of REPLICATES curves (+ the estimate, row 0)
    events: dict[str, float]
    pending: pl.DataFrame  # tukimuoto, age, c
    arrival_level: dict[str, float]  # deseasonalised applications per day
    profile: np.ndarray  # monthly pattern of arrivals
    decided: MonthlySeries
    hazards: dict[str, np.ndarray]  # the estimated curve's hazards (no bootstrap), per key of `moments`
    pace: np.ndarray  # relative pace of work in each calendar month (12 multipliers of the hazard)
    # What future_decisions computed for this model, by horizon (a copy by dataclasses.replace starts empty).
    cache: dict = field(init=False, default_factory=dict, repr=False, compare=False)


def fit_decision_model(past: DecisionHistory, rng: np.random.Generator, horizon_days: int = 400,
                       replicates: int = REPLICATES, min_decisions: int | None = None) -> DecisionModel | None:
    """Curves per instrument (pooled where an instrument has too few decisions) and rates;
    None when the window holds fewer than MIN_DECISIONS decisions to learn from."""
    cells = past.survival_cells
    if cells.filter(pl.col("event"))["c"].sum() < (MIN_DECISIONS if min_decisions is None else min_decisions):
        return None
    max_age = int(cells["exit"].max()) if cells.height else 0
    length = max_age + horizon_days + 2
    curves, hazards = {}, {}
    events = {}
    groups = {history.POOLED: cells}
    for (instrument,), frame in cells.group_by("tukimuoto", maintain_order=True):
        groups[instrument] = frame
    for key in sorted(groups):
        frame = groups[key]
        counts = hazard_counts(frame["entry"].to_numpy(), frame["exit"].to_numpy(), frame["event"].to_numpy(),
                               frame["c"].to_numpy(), length)
        events[key] = float(counts[0].sum())
        if key != history.POOLED and events[key] < history.MIN_INSTRUMENT_EVENTS:
            continue
        curve = kaplan_meier(*counts)
        hazards_of_replicates = np.vstack([curve.hazard, bootstrap_hazards(curve, replicates, rng)]) if replicates else curve.hazard[None, :]
        curves[key] = Moments.of(hazards_of_replicates)
        hazards[key] = curve.hazard
    profile = history.seasonal_profile(list(past.arrivals.values()))
    levels = {k: history.daily_level(s, profile) for k, s in past.arrivals.items()}
    pace = monthly_pace(past.window, lambda instrument: hazards.get(instrument, hazards.get(history.POOLED)))
    return DecisionModel(past.as_of, curves, events, past.pending, levels, profile, past.decided, hazards, pace)


# ---------------------------------------------------------------- the pace of work by calendar month


def pending_paths(hazard: np.ndarray, ages: np.ndarray, pace_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For applications pending at the ages given, the chance of being decided on each of the
    next H days when day j's hazard is hazard[age + j] * pace_days[j - 1]: (densities, days),
    both ages x H, days being the processing time a decision that day gives."""
    horizon = len(pace_days)
    days = ages[:, None] + np.arange(1, horizon + 1)[None, :]
    daily = np.clip(hazard[np.minimum(days, len(hazard) - 1)] * pace_days[None, :], 0.0, 1.0)
    survival = np.cumprod(1.0 - daily, axis=1)
    before = np.concatenate([np.ones((len(ages), 1)), survival[:, :-1]], axis=1)
    return before * daily, days


def arrival_paths(hazard: np.ndarray, pace_days: np.ndarray) -> np.ndarray:
    """For an application arriving on day k (1..H), the chance of its decision on day k + u
    (u = 0.. H - k, processing time u): H x H, row k - 1, column u; zero past day H."""
    horizon = len(pace_days)
    ages = np.arange(horizon)
    day = np.arange(horizon)[:, None] + ages[None, :]
    padded = np.concatenate([pace_days, np.zeros(horizon)])
    daily = np.clip(hazard[np.minimum(ages, len(hazard) - 1)][None, :] * padded[day], 0.0, 1.0)
    survival = np.cumprod(1.0 - daily, axis=1)
    before = np.concatenate([np.ones((horizon, 1)), survival[:, :-1]], axis=1)
    return before * daily


def monthly_pace(window, hazard_for, rounds: int = 4, prior: float = 30.0) -> np.ndarray:
    """The pace of work in each calendar month, as a multiplier of the curves' hazards:
    decisions made in the window's days of that month over those the curves predict from
    what was pending when the window opened and what arrived since (refined a few rounds,
    shrunk towards 1 by `prior` decisions). Months the window does not hold stay at 1."""
    pace = np.ones(12)
    if window is None or window.days <= 0 or window.decisions.sum() == 0:
        return pace
    month_of_day = history.month_of_days(window.start, window.days)
    actual = np.bincount(month_of_day, weights=window.decisions, minlength=12)
    groups = set(window.pending["tukimuoto"].to_list()) | set(window.arrivals["tukimuoto"].to_list())
    pending_of = {key[0]: rows for key, rows in window.pending.partition_by("tukimuoto", as_dict=True).items()}
    arrivals_of = {key[0]: rows for key, rows in window.arrivals.partition_by("tukimuoto", as_dict=True).items()}
    for _ in range(rounds):
        pace_days = pace[month_of_day]
        expected = np.zeros(window.days)
        for instrument in sorted(groups):  # a fixed order of summation: the same data, the same bits
            hazard = hazard_for(instrument)
            rows = pending_of.get(instrument)
            if rows is not None and rows.height:
                density, _ = pending_paths(hazard, rows["age"].to_numpy().astype(np.int64), pace_days)
                expected += rows["c"].to_numpy() @ density
            arrived = arrivals_of.get(instrument)
            if arrived is not None and arrived.height:
                counts = np.zeros(window.days)
                counts[arrived["day"].to_numpy() - 1] = arrived["c"].to_numpy()
                paths = arrival_paths(hazard, pace_days)
                for k in np.flatnonzero(counts):  # decisions on day k + u
                    expected[k:] += counts[k] * paths[k, : window.days - k]
        predicted = np.bincount(month_of_day, weights=expected, minlength=12)
        seen = np.bincount(month_of_day, minlength=12) > 0
        pace = np.where(seen, pace * (actual + prior) / (predicted + prior), 1.0)
    return pace


def curve_for(model: DecisionModel, instrument: str) -> Moments:
    return model.moments.get(instrument, model.moments[history.POOLED])


@dataclass(frozen=True)
class FutureDecisions:
    """Per bootstrap replicate (arrays of length R): expected count and sum of the future
    decisions in the period, their variances and covariance, from pending and arriving."""

    n: np.ndarray
    s: np.ndarray
    var_n: np.ndarray
    var_s: np.ndarray
    cov: np.ndarray
    pending_n: np.ndarray
    arrivals_n: np.ndarray
    arrivals_expected: float

    def __add__(self, other: "FutureDecisions") -> "FutureDecisions":
        return FutureDecisions(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def future_decisions(model: DecisionModel, period_end: dt.date, pending: pl.DataFrame | None = None) -> FutureDecisions:
    """Moments of the decisions between as_of and period_end, summed over instruments."""
    horizon = max(0, (period_end - model.as_of).days)
    groups = _own_pending(model) if pending is None else _by_instrument(pending)
    zeros = np.zeros(_replicates(model))
    total = FutureDecisions(zeros, zeros, zeros, zeros, zeros, pending_n=zeros, arrivals_n=zeros, arrivals_expected=0.0)
    for instrument in sorted(set(groups) | set(model.arrival_level)):
        ages, counts = groups.get(instrument, (np.zeros(0, dtype=np.int64), np.zeros(0)))
        p, m1, m2 = _pending_part(model, instrument, horizon, ages)
        total = total + FutureDecisions(*_sums(p, m1, m2, counts, binomial=True), pending_n=(p * counts).sum(axis=1),
                                        arrivals_n=zeros, arrivals_expected=0.0)
        total = total + _arrivals_part(model, instrument, horizon)
    return total


def _by_instrument(pending: pl.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Ages and counts of each instrument's rows of `pending` (tukimuoto, age, c), in its order."""
    return {key[0]: (rows["age"].to_numpy().astype(np.int64), rows["c"].to_numpy().astype(np.float64))
            for key, rows in pending.partition_by("tukimuoto", as_dict=True).items()} if pending.height else {}


def _own_pending(model: DecisionModel) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return _cached(model, ("pending",), lambda: _by_instrument(model.pending))


def _cached(model: DecisionModel, key: tuple, compute):
    if key not in model.cache:
        model.cache[key] = compute()
    return model.cache[key]


def _replicates(model: DecisionModel) -> int:
    """The bootstrap replicates of the model's curves (row 0 the estimate)."""
    return next(iter(model.moments.values())).survival.shape[0]


def _pace_days(model: DecisionModel, horizon: int) -> np.ndarray:
    return _cached(model, ("pace", horizon), lambda: pace_of_days(model, horizon))


def _pending_part(model: DecisionModel, instrument: str, horizon: int, ages: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(decided by the horizon), E[T; in], E[T^2; in] (replicates x ages) of applications
    pending at `ages`. Each age's column depends on that age alone, so the model's own
    pending ages are computed once per horizon and a what-if's (some of the same) looked up."""
    def own_moments():
        own = _own_pending(model).get(instrument, (np.zeros(0, dtype=np.int64),))[0]
        return own, np.argsort(own, kind="stable"), *_pending_moments_at(model, instrument, horizon, own)

    own, order, p, m1, m2 = _cached(model, ("pending", instrument, horizon), own_moments)
    if len(own):
        at = order[np.minimum(np.searchsorted(own, ages, sorter=order), len(own) - 1)]
        if np.array_equal(own[at], ages):
            return p[:, at], m1[:, at], m2[:, at]
    return _pending_moments_at(model, instrument, horizon, ages)


def _pending_moments_at(model: DecisionModel, instrument: str, horizon: int, ages: np.ndarray):
    p, m1, m2, _ = _with_pace(curve_for(model, instrument).between(ages, ages + horizon),
                              *_pending_moments(hazard_for(model, instrument), ages, _pace_days(model, horizon)))
    return p, m1, m2


def _arrivals_part(model: DecisionModel, instrument: str, horizon: int) -> FutureDecisions:
    """The decisions of the applications still to arrive (they do not depend on what is pending)."""
    def compute():
        zeros = np.zeros(_replicates(model))
        rate = history.expected_daily(model.arrival_level.get(instrument, 0.0), model.profile, model.as_of, horizon)
        q, k1, k2, _ = _with_pace(_arrival_replicates(model, instrument, horizon),
                                  *_arrival_moments(hazard_for(model, instrument), _pace_days(model, horizon)))
        return FutureDecisions(*_sums(q, k1, k2, rate, binomial=False), pending_n=zeros,
                               arrivals_n=(q * rate).sum(axis=1), arrivals_expected=float(rate.sum()))

    return _cached(model, ("arrivals", instrument, horizon), compute)


def _arrival_replicates(model: DecisionModel, instrument: str, horizon: int):
    """The curve's moments for an application arriving on day j (1..H) after as_of, which
    counts if decided within H - j days. The columns for H are the last H of those for the
    longest span the curve covers, computed once."""
    moments = curve_for(model, instrument)
    longest = moments.survival.shape[1] - 1
    if horizon > longest:
        latest = np.arange(horizon - 1, -1, -1, dtype=np.int64)
        return moments.between(np.full_like(latest, -1), latest)

    def every_day():
        latest = np.arange(longest - 1, -1, -1, dtype=np.int64)
        return moments.between(np.full_like(latest, -1), latest)

    return tuple(m[:, longest - horizon:] for m in _cached(model, ("arrival replicates", instrument), every_day))


def pace_of_days(model: DecisionModel, days: int) -> np.ndarray:
    """The pace of work on each of the next `days` days after as_of."""
    return model.pace[history.month_of_days(model.as_of, days)] if days else np.zeros(0)


def hazard_for(model: DecisionModel, instrument: str) -> np.ndarray:
    return model.hazards.get(instrument, model.hazards[history.POOLED])


def _pending_moments(hazard, ages, pace_days):
    """P(decided by the horizon), E[T; in], E[T^2; in] of pending applications under the pace."""
    if not len(pace_days) or not len(ages):
        zeros = np.zeros(len(ages))
        return zeros, zeros, zeros
    density, days = pending_paths(hazard, ages, pace_days)
    return density.sum(axis=1), (density * days).sum(axis=1), (density * days * days).sum(axis=1)


def _arrival_moments(hazard, pace_days):
    """The same for an application arriving on each day 1..H."""
    if not len(pace_days):
        return np.zeros(0), np.zeros(0), np.zeros(0)
    density = arrival_paths(hazard, pace_days)
    ages = np.arange(len(pace_days), dtype=np.float64)
    return density.sum(axis=1), density @ ages, density @ (ages * ages)


def _with_pace(replicates, p, m1, m2):
    """The bootstrap replicates' moments (rows; row 0 the estimate without the monthly pace)
    moved by what the pace changes in the estimate."""
    rp, r1, r2, s_after = replicates
    return (np.clip(rp + (p - rp[0]), 0.0, 1.0), np.maximum(r1 + (m1 - r1[0]), 0.0),
            np.maximum(r2 + (m2 - r2[0]), 0.0), s_after)


def _sums(p, m1, m2, weights, binomial: bool):
    """Mean and (co)variance of the count and the sum of days in the period, over
    `weights` applications (fixed counts: binomial; expected arrivals: Poisson)."""
    n, s = (p * weights).sum(axis=1), (m1 * weights).sum(axis=1)
    if binomial:
        return n, s, (weights * p * (1 - p)).sum(axis=1), (weights * (m2 - m1 * m1)).sum(axis=1), (weights * m1 * (1 - p)).sum(axis=1)
    return n, s, n.copy(), (weights * m2).sum(axis=1), s.copy()


def simulate_processing_time(model: DecisionModel, period_start: dt.date, period_end: dt.date, rng: np.random.Generator,
                             draws: int = DRAWS, pending: pl.DataFrame | None = None,
                             decided_extra: tuple[float, float] = (0.0, 0.0)) -> Outlook:
    """The final mean processing time of [period_start, period_end] as `draws` values.
    `pending` and `decided_extra` (count, sum of days) let a what-if move applications
    from the pending ones to the decided."""
    seen_n, seen_sum = model.decided.total(period_start, model.as_of)
    seen_n, seen_sum = seen_n + decided_extra[0], seen_sum + decided_extra[1]
    future = future_decisions(model, period_end, pending)
    pace = PACE_SIGMA
    volume = ARRIVAL_SIGMA
    replicate = np.arange(draws) % len(future.n)
    n_mean, s_mean = future.n[replicate], future.s[replicate]
    # Arrivals scale with the drawn volume; the pace of work scales the days.
    scale = np.exp(volume * rng.standard_normal(draws) - volume**2 / 2)
    arrivals = future.arrivals_n[replicate]
    arrival_share = np.divide(arrivals, n_mean, out=np.zeros_like(n_mean), where=n_mean > 0)
    n_mean = n_mean + arrivals * (scale - 1)
    s_mean = s_mean * (1 + arrival_share * (scale - 1))
    z1, z2 = rng.standard_normal(draws), rng.standard_normal(draws)
    var_n, var_s, cov = future.var_n[replicate], future.var_s[replicate], future.cov[replicate]
    sd_n = np.sqrt(np.maximum(var_n, 0))
    rho = np.divide(cov, sd_n * np.sqrt(np.maximum(var_s, 0)), out=np.zeros_like(cov), where=(var_n > 0) & (var_s > 0))
    rho = np.clip(rho, -1, 1)
    n_future = np.maximum(n_mean + sd_n * z1, 0)
    s_future = np.maximum(s_mean + np.sqrt(np.maximum(var_s, 0)) * (rho * z1 + np.sqrt(1 - rho**2) * z2), 0)
    s_future = s_future * np.exp(pace * rng.standard_normal(draws) - pace**2 / 2)
    total_n = seen_n + n_future
    values = np.divide(seen_sum + s_future, total_n, out=np.full(draws, np.nan), where=total_n > 0)
    curve_events = model.events.get(history.POOLED, 0.0)
    return Outlook(
        PROCESSING_TIME, period_end, model.as_of, seen_n, seen_sum, values, float(seen_n + future.n[0]),
        pending_n=float(model.pending["c"].sum()) if pending is None else float(pending["c"].sum()),
        pending_expected_in_period=float(future.pending_n[0]), expected_arrivals=future.arrivals_expected,
        expected_future_in_period=float(future.arrivals_n[0]), curve_events=curve_events, drift_sigma=pace
    )


# ---------------------------------------------------------------- satisfaction


def simulate_satisfaction(scores: MonthlySeries, as_of: dt.date, period_start: dt.date, period_end: dt.date,
                          rng: np.random.Generator, draws: int = DRAWS) -> Outlook:
    """The final mean score of [period_start, period_end] as `draws` values."""
    seen_n, seen_sum = scores.total(period_start, as_of)
    horizon = max(0, (period_end - as_of).days)
    profile = history.seasonal_profile([scores])
    level = history.daily_level(scores, profile)
    expected = float(history.expected_daily(level, profile, as_of, horizon).sum())
    recent_n, recent_s, recent_ss = _recent(scores, SCORE_WINDOW_DAYS)
    months = max(1, round(horizon / 30.44))
    drift = history.drift_sigma(scores, months, relative=False, prior=SCORE_PRIOR * math.sqrt(months / 6))
    volume = ARRIVAL_SIGMA  # response counts vary with campaigns of asking, not with the scores
    if expected <= 0 or recent_n == 0:
        values = np.full(draws, seen_sum / seen_n if seen_n else np.nan)
    else:
        mean = recent_s / recent_n
        variance = max(0.0, (recent_ss - recent_s**2 / recent_n) / max(recent_n - 1, 1))
        counts = rng.poisson(expected * np.exp(volume * rng.standard_normal(draws) - volume**2 / 2)).astype(np.float64)
        future_mean = mean + drift * rng.standard_normal(draws) + math.sqrt(variance / recent_n) * rng.standard_normal(draws)
        future_sum = counts * future_mean + np.sqrt(counts * variance) * rng.standard_normal(draws)
        total = seen_n + counts
        values = np.divide(seen_sum + future_sum, total, out=np.full(draws, np.nan), where=total > 0)
        values = np.clip(values, 1.0, 5.0)
    return Outlook(SATISFACTION, period_end, as_of, seen_n, seen_sum, values, seen_n + expected,
                   expected_arrivals=expected, expected_future_in_period=expected, curve_events=recent_n, drift_sigma=drift)


def _recent(series: MonthlySeries, window_days: int) -> tuple[float, float, float]:
    """Count, sum and sum of squares over the last window_days days (whole months)."""
    taken, n, s, ss = 0.0, 0.0, 0.0, 0.0
    for i in range(len(series.months) - 1, -1, -1):
        if taken >= window_days:
            break
        taken += series.days[i]
        n, s, ss = n + series.n[i], s + series.s[i], ss + series.ss[i]
    return n, s, ss
