"""Time to decision as a survival curve (Kaplan-Meier), from day counts.

The estimator works on histograms, not rows: a million applications become a few hundred
numbers per instrument. Durations are whole days (0 = decided the day it arrived).

Delayed entry (left truncation) lets the curve be learned from one calendar window only:
an application enters the risk set at the age it had when the window opened, so the
curve reflects how fast decisions are made now, not years ago.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Beyond the ages where at least this many applications were at risk, the hazard is
# taken as constant (the mean over the last TAIL_DAYS days with enough data).
MIN_AT_RISK = 20
TAIL_DAYS = 90


@dataclass(frozen=True)
class Curve:
    """S(t) = P(T > t) for t = 0 .. len - 1, with the hazard it came from."""

    hazard: np.ndarray  # P(T = t | T >= t)
    at_risk: np.ndarray  # applications at risk at each age (0 past the data)

    @property
    def survival(self) -> np.ndarray:
        return np.cumprod(1.0 - self.hazard)


def hazard_counts(entry: np.ndarray, exit: np.ndarray, event: np.ndarray, count: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Events and applications at risk at each age 0 .. horizon - 1.

    Each cell of `count` applications entered observation at age `entry` and left it at
    age `exit`: decided that day when `event`, else still pending (censored) after it."""
    entry, exit = np.asarray(entry, dtype=np.int64), np.asarray(exit, dtype=np.int64)
    count = np.asarray(count, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    keep = exit >= entry
    entry, exit, event, count = entry[keep], exit[keep], event[keep], count[keep]
    size = max(horizon, int(exit.max(initial=0)) + 2)
    enters = np.bincount(entry, weights=count, minlength=size)
    leaves = np.bincount(exit + 1, weights=count, minlength=size + 1)[:size]
    at_risk = np.cumsum(enters) - np.cumsum(leaves)
    events = np.bincount(exit[event], weights=count[event], minlength=size)
    return events[:horizon], np.maximum(at_risk[:horizon], 0.0)


def kaplan_meier(events: np.ndarray, at_risk: np.ndarray, min_at_risk: int = MIN_AT_RISK) -> Curve:
    """The product-limit curve, with a constant hazard past the ages where at least
    `min_at_risk` applications were at risk."""
    events, at_risk = np.asarray(events, dtype=np.float64), np.asarray(at_risk, dtype=np.float64)
    hazard = np.divide(events, at_risk, out=np.zeros_like(events), where=at_risk > 0)
    enough = np.flatnonzero(at_risk >= min_at_risk)
    if enough.size:
        last = enough[-1]
        window = slice(max(0, last - TAIL_DAYS + 1), last + 1)
        tail = events[window].sum() / max(at_risk[window].sum(), 1.0)
        hazard[last + 1 :] = tail
    else:  # hardly any data: one constant hazard over everything seen
        hazard[:] = events.sum() / max(at_risk.sum(), 1.0)
    return Curve(np.clip(hazard, 0.0, 1.0), at_risk)


def bootstrap_hazards(curve: Curve, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """Hazards redrawn as binomial counts over the same risk sets (shape replicates x days):
    the estimation error of the curve, as resampling the applications would give it to
    first order (Greenwood). Ages past the data keep their tail hazard."""
    n = np.rint(curve.at_risk).astype(np.int64)
    draws = rng.binomial(np.broadcast_to(n, (replicates, n.size)), np.broadcast_to(curve.hazard, (replicates, n.size)))
    hazards = np.where(n > 0, draws / np.maximum(n, 1), curve.hazard)
    covered = np.flatnonzero(curve.at_risk >= MIN_AT_RISK)
    if covered.size:
        hazards[:, covered[-1] + 1 :] = curve.hazard[covered[-1] + 1 :]
    return hazards


@dataclass(frozen=True)
class Moments:
    """Cumulative moments of the decision day under a set of survival curves (rows).

    For ages a < b: P(a < T <= b) = (S[a] - S[b]), E[T; a < T <= b] = G[b] - G[a], with
    S[-1] = 1 and G[-1] = 0 held at index 0 (arrays are shifted by one)."""

    survival: np.ndarray  # S(t - 1) at index t; index 0 holds S(-1) = 1
    first: np.ndarray  # sum_{u <= t - 1} u f(u)
    second: np.ndarray  # sum_{u <= t - 1} u^2 f(u)

    @classmethod
    def of(cls, hazards: np.ndarray) -> "Moments":
        hazards = np.atleast_2d(hazards)
        survival = np.cumprod(1.0 - hazards, axis=1)
        before = np.concatenate([np.ones((hazards.shape[0], 1)), survival[:, :-1]], axis=1)
        density = before - survival
        t = np.arange(hazards.shape[1], dtype=np.float64)
        pad = np.zeros((hazards.shape[0], 1))
        return cls(
            np.concatenate([np.ones((hazards.shape[0], 1)), survival], axis=1),
            np.concatenate([pad, np.cumsum(density * t, axis=1)], axis=1),
            np.concatenate([pad, np.cumsum(density * t * t, axis=1)], axis=1),
        )

    def between(self, after: np.ndarray, through: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For T > after (the condition) and a decision by `through` (ages, arrays of the
        same shape; after may be -1): P(in), E[T; in], E[T^2; in], each conditional on
        T > after, plus S(after). Ages past the curve are clipped to its end."""
        last = self.survival.shape[1] - 1
        a = np.clip(np.asarray(after) + 1, 0, last)
        b = np.clip(np.asarray(through) + 1, 0, last)
        b = np.maximum(a, b)
        s_after = self.survival[:, a]
        safe = np.maximum(s_after, 1e-12)
        p = (s_after - self.survival[:, b]) / safe
        m1 = (self.first[:, b] - self.first[:, a]) / safe
        m2 = (self.second[:, b] - self.second[:, a]) / safe
        return p, m1, m2, s_after
