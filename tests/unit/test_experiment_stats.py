"""The experiment report's statistics against planted effects, simulations and known values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from recsys.experiments.stats import (
    Estimate,
    bootstrap_mean_ci,
    confidence_sequence,
    cuped,
    cuped_difference,
    mean_difference,
    msprt,
    msprt_sequence,
    ratio_difference,
    sign_test,
    srm_test,
    users_for_power,
)


def _covers(low: float, high: float, value: float) -> bool:
    return low <= value <= high


# --- fixed-horizon mean difference -------------------------------------------------------------


def test_planted_effect_is_found_and_covered():
    rng = np.random.default_rng(0)
    control, treatment = rng.normal(1.0, 1.0, 2000), rng.normal(1.2, 1.0, 2000)
    est = mean_difference(control, treatment)
    assert est.p_value < 0.01
    assert _covers(est.ci_low, est.ci_high, 0.2)
    assert est.diff == pytest.approx(treatment.mean() - control.mean())
    assert est.rel_lift == pytest.approx(est.diff / est.control)
    assert _covers(est.rel_ci_low, est.rel_ci_high, 0.2)  # true relative lift 0.2 / 1.0
    assert (est.n_control, est.n_treatment) == (2000, 2000)


def test_no_effect_ci_covers_zero():
    rng = np.random.default_rng(42)  # one draw: a 95 % event (the coverage test checks the rate)
    est = mean_difference(rng.normal(size=1500), rng.normal(size=1500))
    assert _covers(est.ci_low, est.ci_high, 0.0)
    assert est.p_value > 0.05


def test_matches_scipy_welch():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 40), rng.normal(0.3, 2, 25)
    assert mean_difference(a, b).p_value == pytest.approx(
        stats.ttest_ind(b, a, equal_var=False).pvalue
    )


def test_aa_false_positive_rate_is_alpha():
    """1000 A/A datasets, unequal sizes and variances: Welch's test rejects about 5 %."""
    rng = np.random.default_rng(3)
    p = np.array([
        mean_difference(rng.normal(0, 1, 60), rng.normal(0, 2, 40)).p_value for _ in range(1000)
    ])
    assert 0.03 <= np.mean(p < 0.05) <= 0.07


def test_degenerate_inputs_do_not_raise_or_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = mean_difference(np.array([]), np.array([]))
        single = mean_difference(np.array([1.0]), np.array([2.0, 3.0]))
        constant = mean_difference(np.ones(10), np.ones(10) * 2)
        zero_control = mean_difference(np.zeros(10), np.arange(10.0))
        no_den = ratio_difference(np.zeros(5), np.zeros(5), np.ones(5), np.ones(5))
    for est in (empty, single, constant, no_den):
        assert est.p_value == 1.0 and np.isnan(est.ci_low) and np.isnan(est.ci_high)
    assert empty.n_control == 0 and np.isnan(empty.diff)
    assert constant.diff == 1.0 and constant.rel_lift == 1.0
    assert np.isnan(zero_control.rel_lift) and np.isnan(zero_control.rel_ci_low)
    assert np.isfinite(zero_control.ci_low)
    assert no_den.n_control == 5 and np.isnan(no_den.control)


def test_estimate_is_frozen():
    est = mean_difference(np.arange(5.0), np.arange(5.0))
    with pytest.raises(AttributeError):
        est.diff = 1.0  # type: ignore[misc]
    assert isinstance(est, Estimate)


# --- ratio metrics -----------------------------------------------------------------------------


def _ctr_arm(rng: np.random.Generator, n: int, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """Per-user exposures (heavy-tailed) and clicks; heavy users click less, so the ratio of
    sums and the mean of per-user ratios differ, and a user's clicks are correlated."""
    exposures = rng.poisson(rng.gamma(1.0, 10.0, n))
    ctr = np.clip(scale * rng.beta(2, 2, n) * 20 / (20 + exposures), 0, 1)
    return rng.binomial(exposures, ctr), exposures


def test_ratio_difference_matches_user_bootstrap():
    rng = np.random.default_rng(4)
    num_c, den_c = _ctr_arm(rng, 3000)
    num_t, den_t = _ctr_arm(rng, 3000, scale=1.1)
    est = ratio_difference(num_c, den_c, num_t, den_t)
    assert est.control == pytest.approx(num_c.sum() / den_c.sum())
    assert est.treatment == pytest.approx(num_t.sum() / den_t.sum())
    with np.errstate(all="ignore"):
        mean_of_ratios = np.nanmean(num_c / den_c)
    assert abs(est.control - mean_of_ratios) > 0.1 * est.control  # the data tell them apart

    boot = 2000
    ic, it = rng.integers(0, 3000, (boot, 3000)), rng.integers(0, 3000, (boot, 3000))
    diffs = num_t[it].sum(1) / den_t[it].sum(1) - num_c[ic].sum(1) / den_c[ic].sum(1)
    se = (est.ci_high - est.ci_low) / (2 * stats.norm.ppf(0.975))
    assert se == pytest.approx(diffs.std(), rel=0.1)  # var(num) alone would be 17 % off

    # exposures as the unit (a binomial over impressions) would understate the variance
    naive = np.sqrt(sum(r * (1 - r) / d.sum() for r, d in
                        [(est.control, den_c), (est.treatment, den_t)]))
    assert se > 1.1 * naive


def test_ratio_zero_denominator_users_count_in_n_only():
    num, den = np.array([1.0, 2.0, 5.0, 0.0]), np.array([10.0, 10.0, 0.0, 0.0])
    est = ratio_difference(num, den, num, den)
    assert est.control == pytest.approx(3 / 20)  # the 5 clicks without exposure are ignored
    assert est.n_control == 4


# --- CUPED -------------------------------------------------------------------------------------


def _cuped_data(rng: np.random.Generator, n: int, rho: float, effect: float):
    x = rng.normal(size=(2, n))
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=(2, n))
    y[1] += effect
    return y[0], x[0], y[1], x[1]


def test_cuped_reduces_variance_by_rho_squared():
    rng = np.random.default_rng(5)
    est, reduction = cuped_difference(*_cuped_data(rng, 5000, 0.7, 0.05))
    assert reduction == pytest.approx(0.49, abs=0.1)
    assert _covers(est.ci_low, est.ci_high, 0.05)
    raw = mean_difference(*_cuped_data(np.random.default_rng(5), 5000, 0.7, 0.05)[::2])
    assert est.ci_high - est.ci_low < raw.ci_high - raw.ci_low


def test_cuped_is_unbiased():
    rng = np.random.default_rng(6)
    diffs = np.array([
        cuped_difference(*_cuped_data(rng, 400, 0.7, 0.2))[0].diff for _ in range(300)
    ])
    # sd of one estimate ~ sqrt(2 * 0.51 / 400) = 0.05, of the mean of 300 ~ 0.003
    assert diffs.mean() == pytest.approx(0.2, abs=0.01)


def test_cuped_independent_covariate_removes_nothing():
    _, reduction = cuped_difference(*_cuped_data(np.random.default_rng(7), 5000, 0.0, 0.1))
    assert reduction < 0.02


def test_cuped_theta_and_constant_covariate():
    rng = np.random.default_rng(8)
    x = rng.normal(size=500)
    y = 3.0 * x + rng.normal(size=500)
    adjusted, theta = cuped(y, x)
    assert theta == pytest.approx(np.cov(y, x)[0, 1] / np.var(x, ddof=1))
    assert adjusted.mean() == pytest.approx(y.mean())
    assert np.var(adjusted) < 0.2 * np.var(y)
    same, theta0 = cuped(y, np.ones(500))
    assert theta0 == 0.0 and np.array_equal(same, y)
    est, reduction = cuped_difference(y[:250], np.ones(250), y[250:], np.ones(250))
    assert reduction == 0.0 and est.diff == pytest.approx(y[250:].mean() - y[:250].mean())


# --- sample-ratio mismatch ---------------------------------------------------------------------


def test_srm():
    assert srm_test([5000, 5000], [0.5, 0.5]) > 0.5
    # 5000/5300 is chi2 = 8.7, p = 0.003: suspicious, not yet flagged at 0.001
    assert srm_test([5000, 5300], [1, 1]) == pytest.approx(0.0031, abs=1e-4)
    assert srm_test([5000, 5500], [1, 1]) < 0.001
    assert srm_test([2500, 7500], [1, 3]) > 0.5  # weights are normalised
    assert srm_test([2500, 7500], [0.25, 0.75]) == srm_test([2500, 7500], [1, 3])
    assert srm_test([5000, 5000], [1, 3]) < 0.001
    assert srm_test([0, 0], [1, 1]) == 1.0
    assert srm_test([10, 3], [1, 0]) == 0.0


# --- sequential --------------------------------------------------------------------------------


LOOKS, BATCH = 20, 50


def test_msprt_controls_peeking_where_naive_testing_does_not():
    rng = np.random.default_rng(9)
    sims, ever_msprt, ever_naive = 400, 0, 0
    for _ in range(sims):
        c, t = rng.normal(size=(LOOKS, BATCH)), rng.normal(size=(LOOKS, BATCH))
        ever_msprt += msprt_sequence(list(c), list(t))[-1] < 0.05
        ever_naive += any(
            mean_difference(c[: k + 1].ravel(), t[: k + 1].ravel()).p_value < 0.05
            for k in range(LOOKS)
        )
    assert ever_msprt / sims <= 0.07
    assert ever_naive / sims > 0.12  # peeking inflates 5 % to about 25 %


def test_msprt_sequence_finds_planted_effect():
    rng = np.random.default_rng(10)
    c, t = rng.normal(size=(LOOKS, BATCH)), rng.normal(0.3, 1.0, size=(LOOKS, BATCH))
    p = msprt_sequence(list(c), list(t))
    assert p.shape == (LOOKS,) and np.all(np.diff(p) <= 0)
    assert p[-1] < 0.05
    assert p[-1] == pytest.approx(min(msprt(c[: k + 1].ravel(), t[: k + 1].ravel())
                                      for k in range(LOOKS)))


def test_msprt_sequence_small_looks_give_one():
    p = msprt_sequence([np.array([]), np.array([1.0]), np.arange(5.0)],
                       [np.array([1.0]), np.array([2.0]), np.arange(5.0) + 10])
    assert p[0] == 1.0 and p[1] == 1.0 and p[2] < 1.0


def test_confidence_sequence_contains_fixed_ci_and_truth():
    rng = np.random.default_rng(11)
    c, t = rng.normal(size=2000), rng.normal(0.2, 1.0, 2000)
    low, high = confidence_sequence(c, t)
    fixed = mean_difference(c, t)
    assert low < fixed.ci_low and fixed.ci_high < high
    assert _covers(low, high, 0.2)
    # the interval is the set of effects not rejected: its ends sit on p = alpha for theta0
    assert msprt(c + high, t) == pytest.approx(0.05, rel=1e-3)
    assert np.isnan(confidence_sequence(np.array([1.0]), t)[0])


def test_msprt_degenerate_and_explicit_tau():
    assert msprt(np.ones(10), np.ones(10)) == 1.0
    assert msprt(np.array([]), np.arange(3.0)) == 1.0
    rng = np.random.default_rng(12)
    c, t = rng.normal(size=500), rng.normal(0.3, 1.0, 500)
    assert msprt(c, t, tau2=0.01) < 0.05 and msprt(c, t, tau2=0.0) == 1.0


# --- bootstrap, sign test, power ---------------------------------------------------------------


def test_bootstrap_covers_known_mean():
    values = np.random.default_rng(13).exponential(2.0, 800)
    mean, low, high = bootstrap_mean_ci(values)
    assert mean == pytest.approx(values.mean())
    assert _covers(low, high, 2.0) and low < mean < high
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_mean_ci(values, seed=1) != (mean, low, high)
    assert bootstrap_mean_ci(values) == (mean, low, high)
    assert all(np.isnan(bootstrap_mean_ci(np.array([]))))


def test_sign_test():
    assert sign_test(15, 5) == pytest.approx(0.0414, abs=1e-4)
    assert sign_test(5, 15) == sign_test(15, 5)
    assert sign_test(0, 0) == 1.0
    assert sign_test(10, 10) == 1.0


def test_users_for_power():
    assert users_for_power(1.0, 0.1) == pytest.approx(3140, abs=1)
    assert users_for_power(1.0, 0.1, arms=1) == pytest.approx(785, abs=0.5)
    assert users_for_power(1.0, 0.1, arms=3) == pytest.approx(1.5 * 3140, abs=2)
    assert users_for_power(2.0, 0.1) == pytest.approx(4 * users_for_power(1.0, 0.1))
    assert users_for_power(1.0, 0.0) == float("inf")


def test_power_formula_gives_the_power():
    """A simulated A/B test at the computed size detects the effect about 80 % of the time."""
    rng = np.random.default_rng(14)
    per_arm = int(np.ceil(users_for_power(1.0, 0.2) / 2))
    c, t = rng.normal(size=(400, per_arm)), rng.normal(0.2, 1.0, size=(400, per_arm))
    z = (t.mean(1) - c.mean(1)) / np.sqrt(t.var(1, ddof=1) / per_arm + c.var(1, ddof=1) / per_arm)
    assert 0.72 <= np.mean(np.abs(z) > stats.norm.ppf(0.975)) <= 0.88
