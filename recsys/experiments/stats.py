"""The statistics of an experiment report: estimates, intervals, checks and sizing.

Every function takes per-user values: the user is the randomisation unit, so the user is the
unit of variance. Treating exposures or events as independent (a binomial CTR over impressions)
understates the variance because one user's events are correlated.

- ``mean_difference``: Welch's t-interval of a difference of per-user means (fixed horizon).
- ``ratio_difference``: ratio metrics (CTR = sum clicks / sum exposures) by the delta method,
  Deng, Knoblich, Lu 2018, "Applying the delta method in metric analytics".
- ``cuped`` / ``cuped_difference``: variance reduction with a pre-experiment covariate,
  Deng, Xu, Kohavi, Walker 2013, "Improving the sensitivity of online controlled experiments by
  utilizing pre-experiment data".
- ``srm_test``: sample-ratio mismatch, a chi-square test of the users per arm (Fabijan et al.
  2019); a mismatch means the assignment or the logging is broken and the estimates are void.
- ``msprt`` / ``msprt_sequence`` / ``confidence_sequence``: always-valid inference for peeking
  (``recsys.experiments.sequential``, Johari, Pekelis, Walsh 2017), re-exported here.
- ``bootstrap_mean_ci``, ``sign_test``: interleaving's per-user preferences and wins.
- ``users_for_power``: how many users a test needs.

Degenerate inputs never raise and never warn: an arm with fewer than 2 users, zero variance or
a zero denominator gives nan intervals and a p-value of 1.0 (no evidence of a difference);
``rel_lift`` is nan when the control is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from recsys.experiments.sequential import (
    _Moments,
    _summary,
    confidence_sequence,
    msprt,
    msprt_sequence,
)

__all__ = [
    "Estimate", "mean_difference", "ratio_difference", "cuped", "cuped_difference", "srm_test",
    "msprt", "msprt_sequence", "confidence_sequence", "bootstrap_mean_ci", "sign_test",
    "users_for_power",
]

NAN = float("nan")
_BOOT_CELLS = 1 << 22  # resample indices drawn at once by the bootstrap (32 MiB of int64)


@dataclass(frozen=True)
class Estimate:
    """One metric's comparison of treatment against control (fixed horizon)."""

    control: float  # the control arm's mean (or ratio)
    treatment: float  # the treatment arm's mean (or ratio)
    diff: float  # treatment - control
    ci_low: float  # (1 - alpha) CI of diff
    ci_high: float
    p_value: float  # two-sided, fixed horizon
    rel_lift: float  # diff / control (nan if control == 0)
    rel_ci_low: float  # CI of the relative lift (delta method on the ratio of means)
    rel_ci_high: float
    n_control: int
    n_treatment: int


def _estimate(
    arms: tuple[float, float],
    variances: tuple[float, float],
    ns: tuple[int, int],
    alpha: float,
    df: float = np.inf,
) -> Estimate:
    """The Estimate from the arms' values and the variances of those values (not per user).

    Student-t with ``df`` degrees of freedom (inf = normal). The relative lift's interval is the
    delta method on ``treatment / control`` with independent arms:
    ``var(t/c) = var_t/c^2 + t^2 var_c/c^4`` (Deng, Knoblich, Lu 2018, sec. 3).
    """
    (c, t), (var_c, var_t) = arms, variances
    diff = t - c
    rel = diff / c if c != 0 and np.isfinite(c) else NAN
    low = high = rel_low = rel_high = NAN
    p = 1.0
    var = var_c + var_t
    if np.isfinite(diff) and np.isfinite(var) and var > 0 and 0 < alpha < 1 and df > 0:
        se = np.sqrt(var)
        crit = float(stats.t.ppf(1 - alpha / 2, df))
        low, high = diff - crit * se, diff + crit * se
        p = float(2 * stats.t.sf(abs(diff) / se, df))
        if np.isfinite(rel):
            rel_se = np.sqrt(var_t / c**2 + t**2 * var_c / c**4)
            rel_low, rel_high = rel - crit * rel_se, rel + crit * rel_se
    return Estimate(
        float(c), float(t), float(diff), float(low), float(high), p, float(rel),
        float(rel_low), float(rel_high), int(ns[0]), int(ns[1]),
    )


def _welch_df(a: _Moments, b: _Moments) -> float:
    """Welch-Satterthwaite degrees of freedom of var_a/n_a + var_b/n_b."""
    va, vb = a.var / a.n, b.var / b.n
    denom = va**2 / (a.n - 1) + vb**2 / (b.n - 1)
    return float((va + vb) ** 2 / denom) if denom > 0 else np.inf


def mean_difference(control: np.ndarray, treatment: np.ndarray, alpha: float = 0.05) -> Estimate:
    """Difference of per-user means with Welch's unequal-variance t-interval.

    Valid for any per-user metric once the arms are large enough for the central limit theorem
    (the t degrees of freedom make it slightly conservative for small arms; for large arms it is
    the normal approximation). Fewer than 2 users in an arm: nan CI, p = 1.0.
    """
    c, t = _summary(control), _summary(treatment)
    with np.errstate(all="ignore"):
        if c.n < 2 or t.n < 2:
            return _estimate((c.mean, t.mean), (NAN, NAN), (c.n, t.n), alpha)
        return _estimate(
            (c.mean, t.mean), (c.var / c.n, t.var / t.n), (c.n, t.n), alpha, _welch_df(c, t)
        )


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float, int]:
    """sum(num)/sum(den) over users and its delta-method variance, with the user count.

    ``R = mean(num)/mean(den)``; linearising, ``var(R) = var(num - R den) / (n mean(den)^2)``,
    the delta method's ``(var_n - 2 R cov_nd + R^2 var_d) / (n mu_d^2)`` in one pass. Users with
    den == 0 add 0 to both sums (their numerator is ignored) but count in n.
    """
    num, den = np.asarray(num, dtype=float).ravel(), np.asarray(den, dtype=float).ravel()
    if num.shape != den.shape:
        raise ValueError(f"numerator and denominator differ in length: {num.size} != {den.size}")
    n = int(num.size)
    num = np.where(den == 0, 0.0, num)
    mu_d = den.mean() if n else NAN
    if n == 0 or not mu_d > 0:
        return NAN, NAN, n
    ratio = float(num.mean() / mu_d)
    var = float(np.var(num - ratio * den, ddof=1) / (n * mu_d**2)) if n > 1 else NAN
    return ratio, var, n


def ratio_difference(
    num_control: np.ndarray,
    den_control: np.ndarray,
    num_treatment: np.ndarray,
    den_treatment: np.ndarray,
    alpha: float = 0.05,
) -> Estimate:
    """Difference of ratio metrics (sum num / sum den per arm) with delta-method variance.

    The ratio of sums, not the mean of per-user ratios: heavy users weigh by their denominator,
    as the metric's definition does. Normal interval (Deng, Knoblich, Lu 2018); needs arms
    large enough that the denominator's mean is well away from 0. Zero denominator: nan.
    """
    with np.errstate(all="ignore"):
        rc, vc, nc = _ratio(num_control, den_control)
        rt, vt, nt = _ratio(num_treatment, den_treatment)
        return _estimate((rc, rt), (vc, vt), (nc, nt), alpha)


def cuped(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """CUPED adjustment ``y - theta (x - mean(x))`` with ``theta = cov(y, x) / var(x)``.

    ``x`` is a pre-experiment covariate (the same metric before assignment), independent of the
    arm, so the adjustment removes variance without biasing the difference (Deng et al. 2013).
    Call it on both arms together so that theta and mean(x) are shared. theta = 0 when var(x)
    is 0 or there are fewer than 2 users.
    """
    y, x = np.asarray(y, dtype=float).ravel(), np.asarray(x, dtype=float).ravel()
    if y.shape != x.shape:
        raise ValueError(f"y and x differ in length: {y.size} != {x.size}")
    if y.size < 2:
        return y.copy(), 0.0
    with np.errstate(all="ignore"):
        xc = x - x.mean()
        var_x = float(np.dot(xc, xc))
        theta = float(np.dot(y - y.mean(), xc) / var_x) if var_x > 0 else 0.0
    if not np.isfinite(theta):
        theta = 0.0
    return y - theta * xc, theta


def _diff_variance(control: np.ndarray, treatment: np.ndarray) -> float:
    """var(mean_t - mean_c) = s_c^2/n_c + s_t^2/n_t; nan below 2 users an arm."""
    c, t = _summary(control), _summary(treatment)
    return c.var / c.n + t.var / t.n if c.n > 1 and t.n > 1 else NAN


def cuped_difference(
    y_control: np.ndarray,
    x_control: np.ndarray,
    y_treatment: np.ndarray,
    x_treatment: np.ndarray,
    alpha: float = 0.05,
) -> tuple[Estimate, float]:
    """The CUPED-adjusted mean difference and the share of its variance removed (0..1).

    theta is pooled over both arms (Deng et al. 2013, sec. 3.3). The reduction is
    ``1 - var(adjusted diff) / var(raw diff)``, about ``corr(y, x)^2``; clipped to 0..1, and 0
    when undefined (an arm with fewer than 2 users, a constant metric). The arms' means in the
    Estimate are the adjusted means; their difference is the unbiased CUPED estimate.
    """
    y_c, y_t = np.asarray(y_control, dtype=float).ravel(), np.asarray(y_treatment, float).ravel()
    x_c, x_t = np.asarray(x_control, dtype=float).ravel(), np.asarray(x_treatment, float).ravel()
    if y_c.shape != x_c.shape or y_t.shape != x_t.shape:
        raise ValueError("each arm needs one covariate value per user")
    adjusted, _ = cuped(np.concatenate([y_c, y_t]), np.concatenate([x_c, x_t]))
    adj_c, adj_t = adjusted[: y_c.size], adjusted[y_c.size :]
    with np.errstate(all="ignore"):
        raw_var, adj_var = _diff_variance(y_c, y_t), _diff_variance(adj_c, adj_t)
        reduction = 1 - adj_var / raw_var if raw_var > 0 else NAN
    reduction = float(np.clip(reduction, 0.0, 1.0)) if np.isfinite(reduction) else 0.0
    return mean_difference(adj_c, adj_t, alpha), reduction


def srm_test(counts: Sequence[int], weights: Sequence[float]) -> float:
    """Sample-ratio mismatch: chi-square goodness-of-fit p-value of the users per arm.

    Expected counts are the total split by the configured weights (normalised, so [1, 3] means
    25/75). The report flags p < 0.001 (Fabijan et al. 2019, "Diagnosing sample ratio
    mismatch"): at that level a flagged experiment is almost surely broken. No users or fewer
    than 2 arms: 1.0. Users in an arm of weight 0: 0.0 (impossible under the design).
    """
    n = np.asarray(counts, dtype=float).ravel()
    w = np.asarray(weights, dtype=float).ravel()
    if n.shape != w.shape:
        raise ValueError(f"{n.size} counts for {w.size} weights")
    if np.any(w < 0) or np.any(n < 0):
        raise ValueError("counts and weights must be nonnegative")
    if n.sum() == 0 or w.sum() <= 0:
        return 1.0
    if np.any(n[w == 0] > 0):
        return 0.0
    n, w = n[w > 0], w[w > 0]
    if n.size < 2:
        return 1.0
    return float(stats.chisquare(n, f_exp=n.sum() * w / w.sum()).pvalue)


def bootstrap_mean_ci(
    values: np.ndarray, alpha: float = 0.05, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the percentile bootstrap interval of the mean over users (Efron 1979).

    For statistics of skewed per-user values where the normal interval is doubtful (e.g. an
    interleaving preference with many zeros). Resamples are drawn as index matrices in chunks
    of ~4M cells, so there is no Python loop per resample unless one resample alone exceeds
    that. Empty: all nan.
    """
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        return NAN, NAN, NAN
    if n_boot < 1 or not 0 < alpha < 1:
        return float(v.mean()), NAN, NAN
    low, high = np.quantile(_boot_means(v, n_boot, seed), [alpha / 2, 1 - alpha / 2])
    return float(v.mean()), float(low), float(high)


def _boot_means(v: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """The means of ``n_boot`` resamples of ``v`` with replacement, a chunk of them at a time."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOT_CELLS // v.size)
    sizes = [min(chunk, n_boot - start) for start in range(0, n_boot, chunk)]
    means = [v[rng.integers(0, v.size, size=(m, v.size))].mean(axis=1) for m in sizes]
    return np.concatenate(means)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of wins against losses, ties excluded.

    The interleaving test (Chapelle et al. 2012): under no preference each non-tied user is a
    fair coin. 1.0 when there are no decided users.
    """
    if wins < 0 or losses < 0:
        raise ValueError("wins and losses must be nonnegative")
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(int(wins), int(wins + losses), 0.5).pvalue)


def users_for_power(
    sd: float, effect: float, alpha: float = 0.05, power: float = 0.8, arms: int = 2
) -> float:
    """Users needed in total for a two-sided z-test to detect ``effect`` at ``power``.

    ``z = z_{1-alpha/2} + z_{power}``. arms >= 2: equal split, each arm needs
    ``2 z^2 sd^2 / effect^2`` for its comparison with the control (sd per user, equal in the
    arms; no multiplicity correction), total = arms times that. arms = 1: a one-sample or paired
    test (interleaving's per-user preference), total = ``z^2 sd^2 / effect^2``. inf for effect 0.
    """
    if not (0 < alpha < 1 and 0 < power < 1) or arms < 1:
        raise ValueError("need 0 < alpha < 1, 0 < power < 1 and arms >= 1")
    if effect == 0:
        return float("inf")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    one_sample = float(z**2 * sd**2 / effect**2)
    return one_sample if arms == 1 else arms * 2 * one_sample
