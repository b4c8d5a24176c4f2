"""A canary's verdict: should a new model version, served to a small share of users as an
experiment arm, be rolled back, promoted to everyone, or watched a while longer?

Guardrails, judged on the log at every check (``CanaryConfig.check_s``):

* engagement (``guardrails``, default play rate and completion rate): the always-valid mSPRT of
  the canary against the control on per-user linearised values (``analysis.linearised``), so
  checking every minute for a day keeps the false alarm rate under ``alpha``; a guardrail
  *fails* when the always-valid p is under ``alpha`` and the canary is the worse arm;
* latency: the canary's p99 over the control's, once each has ``min_latency_samples``
  exposures; it fails above ``1 + latency_tolerance``.

Verdict: any failed guardrail rolls back (naming it). Otherwise the canary is promoted when it
*wins* (every engagement guardrail significantly better) or *holds* (each arm has
``min_users`` users and ``min_duration_s`` has passed with nothing failed); until then it runs.
A canary nobody sees (``unserved_users`` expected by its share, none seen: the replicas could
not load it and serve the control) and one still undecided after ``max_duration_s`` are rolled
back, so a canary always ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys.experiments.analysis import collect, linearised, user_table
from recsys.experiments.sequential import DEFAULT_TAU_SD
from recsys.experiments.settings import ArmConfig, ExperimentConfig
from recsys.experiments.stats import msprt

CANARY = "canary"  # the experiment's name, and its arm's
RUNNING, PROMOTE, ROLLBACK = "running", "promote", "rollback"


@dataclass
class CanaryConfig:
    share: float = 0.1  # of users on the canary version while it is judged, in (0, 1)
    guardrails: list[str] = field(default_factory=lambda: ["play_rate", "completion_rate"])
    alpha: float = 0.05
    min_users: int = 200  # per arm, before a canary that holds is promoted
    min_duration_s: float = 0.0  # and this long after it started
    latency_tolerance: float = 0.25  # canary p99 may exceed the control's by this share
    min_latency_samples: int = 200  # exposures per arm before latency is judged
    check_s: float = 60.0  # how often the stack judges a running canary
    # rolled back when, by the share, this many users should have seen it and none has: its
    # version did not load on the replicas, which serve the control instead
    unserved_users: int = 20
    max_duration_s: float = 86_400.0  # still undecided after this long: rolled back (0: never)


@dataclass(frozen=True)
class Verdict:
    state: str  # RUNNING | PROMOTE | ROLLBACK
    reason: str
    users: dict[str, int]
    guardrails: dict[str, dict[str, Any]]  # metric -> control, canary, p, failed
    latency_p99_ms: dict[str, float]


def canary_experiment(version: str, share: float) -> ExperimentConfig:
    """The experiment that serves ``version`` to ``share`` of users, everyone else the served
    version as the control, in a layer of its own (it overlaps every other experiment)."""
    return ExperimentConfig(name=CANARY, layer=CANARY, salt=f"{CANARY}:{version}",
                            traffic=1.0, surfaces=["home", "search", "post_play"],
                            arms=[ArmConfig("control", weight=1.0 - share),
                                  ArmConfig(CANARY, weight=share, version=version)])


def judge(records: Iterable[dict[str, Any]], cfg: CanaryConfig, version: str,
          elapsed_s: float, since_ms: int = 0) -> Verdict:
    """The canary's verdict from the log (module doc); ``since_ms``: when it started (an
    earlier canary's exposures and engagement are not this one's)."""
    experiment = canary_experiment(version, cfg.share)
    records = [r for r in records if isinstance(r, dict) and int(r.get("ts_ms", 0)) >= since_ms]
    data = collect(records, experiment)
    # every user served since the start, in the canary's arms or not (a replica that could
    # not load the canary serves without it, and logs no canary arm)
    served = len({r.get("user_id") for r in records if r.get("type") == "impression"})
    table = user_table(data)
    arms = table["arm"].to_numpy()
    users = {arm: int((arms == arm).sum()) for arm in ("control", CANARY)}
    checks: dict[str, dict[str, Any]] = {}
    for metric in cfg.guardrails:
        y = linearised(table, metric).to_numpy(float) if len(table) else np.empty(0)
        a, b = y[arms == "control"], y[arms == CANARY]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if min(len(a), len(b)) < 2:
            checks[metric] = {"control": math.nan, "canary": math.nan, "p": 1.0,
                              "failed": False, "better": False}
            continue
        pooled = float(np.std(np.concatenate([a, b]), ddof=1))
        p = msprt(a, b, (DEFAULT_TAU_SD * pooled) ** 2 if pooled > 0 else None)
        diff = float(b.mean() - a.mean())
        checks[metric] = {"control": float(a.mean()), "canary": float(b.mean()), "p": p,
                          "failed": p < cfg.alpha and diff < 0,
                          "better": p < cfg.alpha and diff > 0}
    latency = latency_p99(data.exposures, cfg.min_latency_samples)
    failed = [m for m, c in checks.items() if c["failed"]]
    if failed:
        return Verdict(ROLLBACK, f"{', '.join(failed)} worse on the canary (always-valid p "
                       f"< {cfg.alpha:g})", users, checks, latency)
    if all(math.isfinite(latency.get(a, math.nan)) for a in ("control", CANARY)) and (
            latency[CANARY] > latency["control"] * (1 + cfg.latency_tolerance)):
        return Verdict(ROLLBACK, f"latency p99 {latency[CANARY]:.1f} ms over the control's "
                       f"{latency['control']:.1f} ms by more than "
                       f"{100 * cfg.latency_tolerance:g} %", users, checks, latency)
    if users[CANARY] == 0 and served * cfg.share >= cfg.unserved_users:
        return Verdict(ROLLBACK, f"not served: {served} users served and none on the canary "
                       "(its version did not load on the replicas)", users, checks, latency)
    if checks and all(c["better"] for c in checks.values()):
        return Verdict(PROMOTE, "wins: every guardrail better on the canary", users, checks,
                       latency)
    if min(users.values()) >= cfg.min_users and elapsed_s >= cfg.min_duration_s:
        return Verdict(PROMOTE, f"holds: {min(users.values())} users per arm, nothing worse",
                       users, checks, latency)
    if cfg.max_duration_s > 0 and elapsed_s >= cfg.max_duration_s:
        return Verdict(ROLLBACK, f"undecided after {elapsed_s:.0f} s (max_duration_s): "
                       f"{users['control']} / {users[CANARY]} users", users, checks, latency)
    return Verdict(RUNNING, f"watching: {users['control']} / {users[CANARY]} users",
                   users, checks, latency)


def latency_p99(exposures: Any, min_samples: int) -> dict[str, float]:
    """Per arm p99 of the exposures' latency, nan below ``min_samples``."""
    out = {}
    for arm in ("control", CANARY):
        values = exposures.loc[exposures["arm"] == arm, "latency_ms"].dropna().to_numpy()
        out[arm] = float(np.quantile(values, 0.99)) if len(values) >= min_samples else math.nan
    return out
