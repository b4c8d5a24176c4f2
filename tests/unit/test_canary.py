"""The canary's verdict from logged exposures and engagement: a worse canary rolls back, a
slower one rolls back, an equal one runs until it has enough users and then holds, a better
one wins."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.experiments.canary import (
    CANARY,
    PROMOTE,
    ROLLBACK,
    RUNNING,
    CanaryConfig,
    canary_experiment,
    judge,
)
from recsys.experiments.exposures import exposure_record


def log(users: int, play: dict[str, float], latency: dict[str, float] | None = None,
        seed: int = 0) -> list[dict]:
    """``users`` users, each in one arm by the canary's own assignment, 5 exposures each,
    a play of the first title with the arm's probability."""
    from recsys.experiments.assignment import ExperimentPlan

    plan = ExperimentPlan({CANARY: canary_experiment("v2", 0.5)})
    rng = np.random.default_rng(seed)
    latency = latency or {"control": 10.0, CANARY: 10.0}
    out = []
    for user in range(users):
        (a,) = plan.assign(user, "home", True, 0.0)
        for k in range(5):
            rid = f"{user}-{k}"
            result = {"request_id": rid, "user_id": user, "surface": "home", "version": "v",
                      "items": [{"item_id": 1}, {"item_id": 2}], "degraded": [],
                      "experiments": [{"experiment": CANARY, "arm": a.arm, "kind": "ab"}]}
            ts = 1_000 * (user * 10 + k)
            out.append(exposure_record(result, ts, latency[a.arm] * rng.uniform(0.8, 1.2)))
            if rng.random() < play[a.arm]:
                out.append({"event_id": f"p{rid}", "type": "play", "user_id": user,
                            "item_id": 1, "ts_ms": ts + 1, "ingest_ms": ts + 1,
                            "origin": "api", "request_id": rid, "watch_fraction": 0.9})
    return out


CFG = CanaryConfig(share=0.5, min_users=150, min_latency_samples=100)


def test_a_worse_canary_is_rolled_back_naming_the_guardrail():
    verdict = judge(log(600, {"control": 0.5, CANARY: 0.2}), CFG, "v2", 3600)
    assert verdict.state == ROLLBACK and "play_rate" in verdict.reason
    assert verdict.guardrails["play_rate"]["canary"] < verdict.guardrails["play_rate"]["control"]


def test_a_slower_canary_is_rolled_back():
    records = log(600, {"control": 0.4, CANARY: 0.4}, {"control": 10.0, CANARY: 20.0})
    verdict = judge(records, CFG, "v2", 3600)
    assert verdict.state == ROLLBACK and "latency" in verdict.reason


def test_an_equal_canary_runs_then_holds():
    assert judge(log(100, {"control": 0.4, CANARY: 0.4}), CFG, "v2", 3600).state == RUNNING
    verdict = judge(log(600, {"control": 0.4, CANARY: 0.4}), CFG, "v2", 3600)
    assert verdict.state == PROMOTE and verdict.reason.startswith("holds")
    early = judge(log(600, {"control": 0.4, CANARY: 0.4}),
                  CanaryConfig(share=0.5, min_users=150, min_duration_s=7200), "v2", 3600)
    assert early.state == RUNNING  # enough users, not yet long enough


def test_a_better_canary_wins():
    cfg = CanaryConfig(share=0.5, guardrails=["play_rate"], min_users=10**6)
    verdict = judge(log(800, {"control": 0.2, CANARY: 0.5}), cfg, "v2", 0)
    assert verdict.state == PROMOTE and verdict.reason.startswith("wins")


@pytest.mark.parametrize("users", [0, 1])
def test_too_little_data_keeps_running(users):
    assert judge(log(users, {"control": 0.4, CANARY: 0.4}), CFG, "v2", 0).state == RUNNING


def test_an_earlier_canarys_records_are_not_this_ones():
    shunned = log(600, {"control": 0.5, CANARY: 0.0})
    later = [{**r, "ts_ms": r["ts_ms"] + 10**9} for r in log(600, {"control": 0.4,
                                                                   CANARY: 0.4}, seed=1)]
    assert judge(shunned + later, CFG, "v2", 3600).state == ROLLBACK
    assert judge(shunned + later, CFG, "v2", 3600, since_ms=10**9).state == PROMOTE


def test_a_canary_the_replicas_could_not_load_is_rolled_back():
    """Replicas that fail to load the canary's version serve without it (no canary arm)."""
    unserved = [{**r, "experiments": []} if r["type"] == "impression" else r
                for r in log(600, {"control": 0.4, CANARY: 0.4})]
    verdict = judge(unserved, CFG, "v2", 60)
    assert verdict.state == ROLLBACK and verdict.reason.startswith("not served")
    few = [r for r in unserved if r["user_id"] < 30]  # 30 users x share 0.5: 15 < 20
    assert judge(few, CFG, "v2", 60).state == RUNNING


def test_an_undecided_canary_ends_at_max_duration():
    records = log(100, {"control": 0.4, CANARY: 0.4})
    assert judge(records, CFG, "v2", 3600).state == RUNNING
    late = judge(records, CanaryConfig(share=0.5, min_users=150, max_duration_s=3000), "v2",
                 3600)
    assert late.state == ROLLBACK and late.reason.startswith("undecided after 3600 s")
    never = CanaryConfig(share=0.5, min_users=150, max_duration_s=0)
    assert judge(records, never, "v2", 10**7).state == RUNNING
