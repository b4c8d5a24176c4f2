"""Always-valid inference for experiments that are watched while they run.

A fixed-horizon p-value is valid at one sample size fixed in advance. Looking at the report
every day and stopping at the first p < 0.05 inflates the false-positive rate (to about 25 %
with 20 looks). The mixture sequential probability ratio test (mSPRT; Robbins 1970; Johari,
Pekelis, Walsh 2017, "Always valid inference: continuous monitoring of A/B tests") gives
p-values and confidence intervals that hold at every sample size at once, so the experiment can
be looked at, and stopped, at any time.

The statistic is the difference of the arms' per-user means, ``d``, with the plug-in variance
``V = s_c^2/n_c + s_t^2/n_t`` (the normal approximation of Johari et al., sec. 4; valid once
each arm has enough users for the central limit theorem, as the fixed-horizon test too needs).
With a normal mixing distribution ``N(0, tau2)`` over the true effect, the mixture likelihood
ratio against the effect ``theta0`` is

    Lambda = sqrt(V / (V + tau2)) * exp(tau2 * (d - theta0)^2 / (2 V (V + tau2)))

Under ``theta = theta0`` it is a nonnegative martingale, so by Ville's inequality
``P(sup_n Lambda_n >= 1/alpha) <= alpha``: the always-valid p-value is ``min(1, 1/Lambda)``,
taken as a running minimum over the looks, and the confidence sequence is the set of
``theta0`` with ``Lambda < 1/alpha``.

``tau2`` (a variance on the effect's scale) changes power, never validity: the boundary is
tightest when ``V`` is about ``tau2``. The default is ``(0.1 * pooled sd)^2``: effects of a
tenth of a per-user standard deviation, the size recommender changes usually have, for which
the boundary is tightest near 200 users per arm and loosens only logarithmically beyond.

Degenerate samples (an arm with fewer than 2 users, zero variance, non-finite values) give a
p-value of 1.0 and a nan interval: there is no evidence either way, and nothing raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

DEFAULT_TAU_SD = 0.1  # default mixing sd of the effect, in pooled per-user standard deviations


class _Moments(NamedTuple):
    """One arm's users: count, mean and sum of squared deviations (Chan et al. 1979 merge)."""

    n: int
    mean: float
    m2: float

    @property
    def var(self) -> float:
        """Sample variance (ddof=1); nan below 2 users."""
        return self.m2 / (self.n - 1) if self.n > 1 else float("nan")


def _summary(values: np.ndarray) -> _Moments:
    """The moments of one arm's per-user values (empty arm: n=0, nan mean)."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        return _Moments(0, float("nan"), 0.0)
    mean = float(v.mean())
    return _Moments(int(v.size), mean, float(np.sum((v - mean) ** 2)))


def _merge(a: _Moments, b: _Moments) -> _Moments:
    """The moments of two batches together, without concatenating them (pairwise update)."""
    if a.n == 0:
        return b
    if b.n == 0:
        return a
    n = a.n + b.n
    delta = b.mean - a.mean
    return _Moments(n, a.mean + delta * b.n / n, a.m2 + b.m2 + delta**2 * a.n * b.n / n)


class _Diff(NamedTuple):
    diff: float  # treatment mean - control mean
    var: float  # its variance, s_c^2/n_c + s_t^2/n_t
    tau2: float  # the mixing variance in use


def _diff(c: _Moments, t: _Moments, tau2: float | None) -> _Diff | None:
    """The difference, its variance and tau2; None when the sample is degenerate."""
    if c.n < 2 or t.n < 2:
        return None
    var = c.var / c.n + t.var / t.n
    if tau2 is None:
        pooled = (c.m2 + t.m2) / (c.n + t.n - 2)
        tau2 = (DEFAULT_TAU_SD**2) * pooled
    diff = t.mean - c.mean
    if not (np.isfinite(diff) and np.isfinite(var) and var > 0 and np.isfinite(tau2) and tau2 > 0):
        return None
    return _Diff(diff, var, float(tau2))


def _log_lr(d: _Diff, theta0: float = 0.0) -> float:
    """log Lambda of the normal-mixture SPRT (module docstring) against the effect theta0."""
    shrink = 0.5 * np.log(d.var / (d.var + d.tau2))
    return float(shrink + d.tau2 * (d.diff - theta0) ** 2 / (2 * d.var * (d.var + d.tau2)))


def _p_value(d: _Diff | None) -> float:
    """min(1, 1/Lambda), computed in log space so a huge Lambda cannot overflow."""
    if d is None:
        return 1.0
    return float(np.exp(min(0.0, -_log_lr(d))))


def msprt(control: np.ndarray, treatment: np.ndarray, tau2: float | None = None) -> float:
    """Always-valid p-value of the mean difference at the current sample (Johari et al. 2017).

    ``tau2``: the mixing variance on the effect's scale; None = ``(0.1 * pooled sd)^2``.
    One call is one look; over several looks take the running minimum (``msprt_sequence``).
    """
    return _p_value(_diff(_summary(control), _summary(treatment), tau2))


def msprt_sequence(
    control_batches: Sequence[np.ndarray],
    treatment_batches: Sequence[np.ndarray],
    tau2: float | None = None,
) -> np.ndarray:
    """The always-valid p-value after each look: look k uses batches 0..k of both arms.

    Running minimum over looks (an always-valid p-value may be reported as non-increasing:
    rejection at any look stays a rejection). A look where an arm has fewer than 2 users gives
    1.0. Batches are merged by their moments, so each look costs only its new users.
    """
    if len(control_batches) != len(treatment_batches):
        raise ValueError("control_batches and treatment_batches need the same number of looks")
    c = t = _Moments(0, float("nan"), 0.0)
    p = np.ones(len(control_batches))
    for k, (cb, tb) in enumerate(zip(control_batches, treatment_batches, strict=True)):
        c, t = _merge(c, _summary(cb)), _merge(t, _summary(tb))
        p[k] = _p_value(_diff(c, t, tau2))
    return np.minimum.accumulate(p)


def confidence_sequence(
    control: np.ndarray,
    treatment: np.ndarray,
    alpha: float = 0.05,
    tau2: float | None = None,
) -> tuple[float, float]:
    """The always-valid (1 - alpha) interval of treatment - control at the current sample.

    The effects theta0 the mSPRT would not reject: ``Lambda(theta0) < 1/alpha``, solved in
    closed form. Always wider than the fixed-horizon interval (it pays for every look); over
    several looks the intersection of the intervals is still valid. (nan, nan) if degenerate.
    """
    d = _diff(_summary(control), _summary(treatment), tau2)
    if d is None or not 0 < alpha < 1:
        return float("nan"), float("nan")
    log_bound = np.log(1 / alpha) + 0.5 * np.log((d.var + d.tau2) / d.var)
    half = float(np.sqrt(2 * d.var * (d.var + d.tau2) / d.tau2 * log_bound))
    return d.diff - half, d.diff + half
