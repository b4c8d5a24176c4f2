"""Assignment: deterministic, uniform, sticky; layers exclusive within, independent across;
every bad configuration refused naming its field; the config group composes and validates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recsys.config import compose_config
from recsys.config.compose import plain
from recsys.experiments.assignment import (
    BUCKETS,
    INTERLEAVED,
    ExperimentError,
    ExperimentPlan,
    bucket,
)
from recsys.experiments.settings import ArmConfig, ExperimentConfig, ExperimentKind, UserTarget

NOW = 1_800_000_000.0
IDS = range(100_000)


def ab(**kw) -> ExperimentConfig:
    kw.setdefault("arms", [ArmConfig("control"), ArmConfig("treatment")])
    return ExperimentConfig(**kw)


def arms_of(plan: ExperimentPlan, ids=IDS, **kw) -> dict[int, tuple[str, ...]]:
    args = {"surface": "home", "known": True, "now_s": NOW, **kw}
    return {u: tuple(f"{a.experiment}:{a.arm}" for a in plan.assign(u, **args)) for u in ids}


def test_buckets_are_stable_and_uniform():
    assert bucket("layer", 42) == bucket("layer", 42) == 5269  # a changed hash is caught here
    assert bucket("layer", 42) != bucket("other", 42)
    counts = np.bincount([bucket("default", u) for u in IDS], minlength=BUCKETS)
    assert stats.chisquare(counts).pvalue > 0.001  # 10,000 buckets, 10 ids each expected


def test_arms_split_by_weight_and_stay_sticky():
    plan = ExperimentPlan({"e": ab(arms=[ArmConfig("control", weight=1),
                                         ArmConfig("treatment", weight=3)])})
    first = arms_of(plan)
    counts = [sum(v == (f"e:{arm}",) for v in first.values()) for arm in ("control", "treatment")]
    assert stats.chisquare(counts, [25_000, 75_000]).pvalue > 0.001
    assert arms_of(ExperimentPlan({"e": ab(arms=[ArmConfig("control", weight=1),
                                                 ArmConfig("treatment", weight=3)])})) == first


def test_experiments_of_one_layer_never_share_a_user():
    plan = ExperimentPlan({"a": ab(traffic=0.3), "b": ab(traffic=0.5), "c": ab(traffic=0.2)})
    got = arms_of(plan)
    assert all(len(v) == 1 for v in got.values())  # 100 % of the layer, one experiment each
    share = {name: sum(v[0].startswith(name) for v in got.values()) / len(IDS)
             for name in "abc"}
    assert share == pytest.approx({"a": 0.3, "b": 0.5, "c": 0.2}, abs=0.01)


def test_layers_overlap_independently():
    plan = ExperimentPlan({"a": ab(layer="one"), "b": ab(layer="two")})
    got = arms_of(plan)
    table = np.zeros((2, 2))
    for a, b in got.values():
        table[a.endswith("treatment"), b.endswith("treatment")] += 1
    assert stats.chi2_contingency(table).pvalue > 0.001  # independent arms
    assert table.min() > 0.24 * len(IDS)


def test_a_new_salt_reshuffles_arms_and_traffic_leaves_the_rest_out():
    base = arms_of(ExperimentPlan({"e": ab()}), range(2000))
    salted = arms_of(ExperimentPlan({"e": ab(salt="v2")}), range(2000))
    assert 0.4 < np.mean([base[u] != salted[u] for u in base]) < 0.6
    partial = arms_of(ExperimentPlan({"e": ab(traffic=0.1)}))
    assert np.mean([bool(v) for v in partial.values()]) == pytest.approx(0.1, abs=0.01)


def test_targeting_by_surface_users_and_time():
    plan = ExperimentPlan({"e": ab(surfaces=["home"], users=UserTarget.new,
                                   start="2027-01-15T00:00:00+00:00",
                                   end="2027-02-01T00:00:00Z")})
    one = range(50)
    assert all(arms_of(plan, one, known=False).values())
    assert not any(arms_of(plan, one, known=True).values())
    assert not any(arms_of(plan, one, known=False, surface="search").values())
    assert not any(arms_of(plan, one, known=False, now_s=NOW - 86_400 * 30).values())
    assert not any(arms_of(plan, one, known=False, now_s=NOW + 86_400 * 30).values())
    assert not any(arms_of(ExperimentPlan({"e": ab(enabled=False)}), one).values())


def test_interleave_users_are_in_both_arms():
    plan = ExperimentPlan({"mix": ab(kind=ExperimentKind.interleave)})
    (a,) = plan.assign(7, "home", True, NOW)
    assert (a.arm, a.arm_index, a.kind) == (INTERLEAVED, -1, "interleave")


@pytest.mark.parametrize("experiments, message", [
    ({"a": ab(traffic=0.6), "b": ab(traffic=0.5)}, "more than 100 %"),
    ({"a": ab(traffic=0.5), "b": ab(traffic=0.5, offset=0.2)}, "overlap 'a'"),
    ({"a": ab(traffic=1.5)}, "traffic"),
    ({"a": ab(arms=[ArmConfig("control")])}, "at least 2 arms"),
    ({"a": ab(arms=[ArmConfig("x"), ArmConfig("x")])}, "unique"),
    ({"a": ab(arms=[ArmConfig("x"), ArmConfig("y", weight=0)])}, "weight"),
    ({"a": ab(kind=ExperimentKind.interleave, arms=[ArmConfig("x"), ArmConfig("y"),
                                                    ArmConfig("z")])}, "exactly 2"),
    ({"a": ab(surfaces=["homepage"])}, "surfaces"),
    ({"a": ab(start="2027-01-01")}, "no timezone"),
    ({"a": ab(start="2027-02-01T00:00Z", end="2027-01-01T00:00Z")}, "not after start"),
    ({"a": ab(primary_metric="revenue")}, "primary_metric"),
    ({"a": ab(name="b")}, "differs from its key"),
])
def test_a_bad_plan_is_refused_naming_the_field(experiments, message):
    with pytest.raises(ExperimentError, match=message):
        ExperimentPlan(experiments)


def test_the_config_group_composes_typed_experiments():
    cfg = plain(compose_config(["ab=[ease_vs_ranker,interleave_ease]"]).serve)
    plan = ExperimentPlan(cfg.experiments)
    assert [p.cfg.name for p in plan.layers["ranking"]] == ["ease_vs_ranker", "interleave_ease"]
    assert cfg.experiments["interleave_ease"].kind == ExperimentKind.interleave
    assert plain(compose_config([]).serve).experiments == {}
    with pytest.raises(Exception, match="trafic"):
        compose_config(["ab=[ease_vs_ranker]", "serve.experiments.ease_vs_ranker.trafic=2"])
