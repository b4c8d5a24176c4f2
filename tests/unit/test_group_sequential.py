"""The group-sequential test: it spends exactly alpha over the horizon (checked on fresh
simulations, independent increments and users whose values grow between looks), finds a planted
effect, and the report uses it only when the experiment has a horizon."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.experiments.assignment import ExperimentError, checked
from recsys.experiments.group_sequential import boundaries, group_sequential, spent
from recsys.experiments.report import build_report
from recsys.experiments.sequential_report import Horizon, cadence_looks
from recsys.experiments.settings import ArmConfig, ExperimentConfig, Spending
from tests.unit.test_experiment_analysis import DAY_MS, T0, _ab_records

DRAWS = 50_000  # the tests' Monte Carlo boundaries (the report's default is 200,000)


@pytest.mark.parametrize("kind", list(Spending))
def test_spending_starts_at_zero_and_spends_exactly_alpha_at_the_horizon(kind: Spending) -> None:
    t = np.array([0.0, 0.1, 0.5, 0.9, 1.0, 1.5])
    a = spent(t, 0.05, kind)
    assert a[0] == 0.0 and a[-2] == pytest.approx(0.05) and a[-1] == pytest.approx(0.05)
    assert np.all(np.diff(a) >= 0)
    if kind == Spending.obrien_fleming:  # spends almost nothing early
        assert a[1] < 1e-6


def test_boundaries_keep_alpha_on_brownian_paths_they_were_not_built_from() -> None:
    t = np.arange(1, 8) / 7
    corr = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    c = boundaries(corr, spent(t, 0.05), draws=DRAWS)
    assert c[0] == pytest.approx(5.19, abs=0.02)  # exact at the first look: isf(alpha(1/7)/2)
    assert np.all(np.diff(c) < 0) and 1.96 < c[-1] < 2.15  # OBF: near fixed horizon at the end
    paths = np.cumsum(np.random.default_rng(7).standard_normal((100_000, 7)), axis=1)
    z = np.abs(paths / np.sqrt(np.arange(1, 8)))
    assert (z >= c).any(axis=1).mean() == pytest.approx(0.05, abs=0.004)
    # stopping at the first p < 0.05 of 7 fixed-horizon looks: what the test prevents
    assert (z >= 1.96).any(axis=1).mean() > 0.12


def _growing_looks(rng: np.random.Generator, looks: int, effect: float = 0.0
                   ) -> tuple[list[pd.Series], list[pd.Series]]:
    """Users who arrive over the looks and whose watch time accumulates at every one (the
    recommender case: not independent increments), heavy-tailed activity."""
    n = 1500
    arrive, activity = rng.integers(0, looks, n), rng.gamma(1.0, 1.0, n)
    treated = rng.random(n) < 0.5
    daily = rng.poisson(activity[:, None] * 0.5, (n, looks)) * rng.gamma(2, 1000, (n, looks))
    daily[treated] *= 1 + effect
    active = np.arange(looks)[None, :] >= arrive[:, None]
    totals = np.cumsum(daily * active, axis=1)
    control, treatment = [], []
    for k in range(looks):
        present = arrive <= k
        values = pd.Series(totals[present, k], index=np.flatnonzero(present))
        control.append(values[~treated[present]])
        treatment.append(values[treated[present]])
    return control, treatment


def test_a_a_rejects_at_alpha_when_users_values_grow_between_looks() -> None:
    rng, looks, runs = np.random.default_rng(11), 7, 300
    fractions = np.arange(1, looks + 1) / looks
    crossed = [group_sequential(*_growing_looks(rng, looks), fractions, 0.05, min_users=100,
                                draws=DRAWS).crossed_at is not None for _ in range(runs)]
    # 300 A/A: binomial sd 1.26 %; 2-8.5 % is 5 % within 2.4-2.8 standard errors
    assert 0.02 <= np.mean(crossed) <= 0.085


def test_a_planted_effect_crosses_before_the_horizon() -> None:
    fractions = np.arange(1, 8) / 7
    g = group_sequential(*_growing_looks(np.random.default_rng(4), 7, effect=0.6), fractions,
                         0.05, min_users=100, draws=DRAWS)
    assert g.crossed_at is not None and g.crossed_at < 6 and g.decision == "differs"
    assert g.z[g.crossed_at] > 0  # the treatment watched more


def test_burn_in_looks_spend_nothing_and_the_horizon_ends_the_test() -> None:
    rng = np.random.default_rng(5)
    c = [pd.Series(rng.normal(size=n)) for n in (5, 300, 600)]
    t = [pd.Series(rng.normal(size=n)) for n in (5, 300, 600)]
    g = group_sequential(c, t, [1 / 3, 2 / 3, 1.0], 0.05, min_users=100, draws=DRAWS)
    assert np.isnan(g.z[0]) and g.boundary[0] == np.inf
    assert np.isfinite(g.boundary[1:]).all() and g.spent[-1] == pytest.approx(0.05)
    assert g.horizon_reached and g.decision in {"differs", "no difference at the horizon"}
    with pytest.raises(ValueError, match="one entry per look"):
        group_sequential(c, t, [0.5, 1.0], 0.05)


def test_cadence_looks_are_passed_boundaries_and_the_horizon_end() -> None:
    h = Horizon(start_ms=0, length_ms=7 * DAY_MS)
    assert cadence_looks(h, DAY_MS, int(2.5 * DAY_MS)).tolist() == [DAY_MS, 2 * DAY_MS]
    assert cadence_looks(h, DAY_MS, 30 * DAY_MS)[-1] == 7 * DAY_MS
    assert len(cadence_looks(h, DAY_MS, 30 * DAY_MS)) == 7
    uneven = cadence_looks(Horizon(0, int(2.5 * DAY_MS)), DAY_MS, 3 * DAY_MS)
    assert uneven.tolist() == [DAY_MS, 2 * DAY_MS, int(2.5 * DAY_MS)]


def _cfg(horizon_days: float | None) -> ExperimentConfig:
    return ExperimentConfig(name="exp", arms=[ArmConfig("control"), ArmConfig("treat")],
                            primary_metric="play_rate", horizon_days=horizon_days)


def test_the_report_decides_by_the_group_sequential_test_only_with_a_horizon(
        tmp_path: Path) -> None:
    planted = _ab_records(seed=1, n_users=3000, play_rates=(0.30, 0.36))
    after = T0 + 30 * DAY_MS
    with_horizon = build_report(planted, _cfg(7.0), tmp_path / "h", now_ms=after).summary
    assert with_horizon["decided_by"] == "group-sequential test"
    gst = with_horizon["group_sequential"]["treat"]
    assert gst["crossed_at"] is not None and gst["verdict"] == "differs"
    assert with_horizon["decision"] == "may stop: treat differs from control"
    assert len(gst["z"]) == 7 and gst["spent"][-1] == pytest.approx(0.05)
    md = (tmp_path / "h" / "exp.md").read_text()
    assert "Group-sequential (obrien_fleming spending" in md and "always-valid p" in md
    # before the first day has passed there is no look yet
    early = build_report(planted, _cfg(7.0), tmp_path / "e", now_ms=T0 + DAY_MS // 2).summary
    assert early["decision"] == "keep running" and early["group_sequential"]["treat"]["z"] == []
    without = build_report(planted, _cfg(None), tmp_path / "n", now_ms=after).summary
    assert without["decided_by"].startswith("always-valid p") and not without["group_sequential"]
    aa = _ab_records(seed=2, n_users=3000, play_rates=(0.3, 0.3))
    done = build_report(aa, _cfg(7.0), tmp_path / "a", now_ms=after).summary
    assert done["decision"] == "stop: no difference at the planned horizon"


def test_a_bad_horizon_or_spending_is_one_error_naming_the_field() -> None:
    with pytest.raises(ExperimentError, match=r"serve.experiments.exp.horizon_days: 0"):
        checked("exp", _cfg(0.0))
    cfg = _cfg(7.0)
    cfg.spending = "linear"  # type: ignore[assignment]
    with pytest.raises(ExperimentError, match=r"exp.spending: 'linear' is not one of"):
        checked("exp", cfg)
