"""The report's sequential tests of the primary metric: which decides, over which looks.

Two tests, because they answer different questions. With a planned horizon (the experiment's
``horizon_days``, or ``end - start``), the group-sequential test (``group_sequential``) decides:
it spends exactly alpha over the horizon, at looks on the report's cadence from the start. A
look is the data as it stood at a cadence boundary that has passed (``now_ms``); the period in
progress is not a look, so reading the report more often than the cadence adds no look the
next report would forget. After the horizon the test is over: it has crossed or it has not.
Without a horizon the always-valid mSPRT decides (``sequential``): valid at any look at all,
at the price of spending less than alpha at a daily cadence. The mSPRT's p-value and confidence
sequence are shown either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.experiments.analysis import ExperimentData, linearised
from recsys.experiments.assignment import parse_time
from recsys.experiments.group_sequential import GroupSequential, group_sequential
from recsys.experiments.plots import fmt, fmt_ci, fmt_p, md_table
from recsys.experiments.sequential import DEFAULT_TAU_SD

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Horizon:
    start_ms: int  # the configured start, or the first exposure
    length_ms: int

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.length_ms


def mixing_variance(a: np.ndarray, b: np.ndarray) -> float | None:
    """The mSPRT's default mixing variance, fixed from all the data for every look."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return None
    pooled = (np.sum((a - a.mean()) ** 2) + np.sum((b - b.mean()) ** 2)) / (a.size + b.size - 2)
    return float(DEFAULT_TAU_SD**2 * pooled) if pooled > 0 else None


def horizon_of(cfg, first_exposure_ms: int) -> Horizon | None:
    """The experiment's planned horizon, or None when it has none (mSPRT only)."""
    start_s = parse_time(cfg.start, "start")
    start_ms = round(start_s * 1000) if start_s is not None else int(first_exposure_ms)
    if cfg.horizon_days is not None:
        return Horizon(start_ms, round(float(cfg.horizon_days) * DAY_MS))
    end_s = parse_time(cfg.end, "end")
    if end_s is not None and round(end_s * 1000) > start_ms:
        return Horizon(start_ms, round(end_s * 1000) - start_ms)
    return None


def cadence_looks(horizon: Horizon, period_ms: int, now_ms: int) -> np.ndarray:
    """The looks that have happened: cadence boundaries up to now, the horizon's end last."""
    last = min(int(now_ms), horizon.end_ms)
    ends = horizon.start_ms + period_ms * np.arange(1, max(0, (last - horizon.start_ms)
                                                          // period_ms) + 1, dtype=np.int64)
    if now_ms >= horizon.end_ms and (not len(ends) or ends[-1] < horizon.end_ms):
        ends = np.append(ends, horizon.end_ms)
    return ends


def group_tests(cfg, horizon: Horizon, period_ms: int, now_ms: int,
                values_at: Callable[[int], pd.DataFrame], min_users: int
                ) -> tuple[np.ndarray, dict[str, GroupSequential]]:
    """Each treatment arm's test; ``values_at(end)``: columns arm and value, one row a user."""
    ends = cadence_looks(horizon, period_ms, now_ms)
    control, treatments = cfg.arms[0].name, [a.name for a in cfg.arms[1:]]
    looks = [values_at(int(end)) for end in ends]
    fractions = (ends - horizon.start_ms) / horizon.length_ms
    tests = {}
    for arm in treatments:
        c = [t.loc[t["arm"] == control, "value"].dropna() for t in looks]
        b = [t.loc[t["arm"] == arm, "value"].dropna() for t in looks]
        tests[arm] = group_sequential(c, b, fractions, float(cfg.alpha), cfg.spending,
                                      min_users=min_users)
    return ends, tests


def tests(data: ExperimentData, any_look: bool, period_ms: int, now_ms: int,
          look_table: Callable[[int], pd.DataFrame], min_users: int
          ) -> tuple[Horizon | None, dict[str, GroupSequential] | None]:
    """The horizon and each arm's group-sequential test; (None, None) without a horizon.

    ``look_table(end)``: the user table at ``end`` (``analysis.user_table``, cached by the
    report, whose mSPRT looks use the same tables)."""
    cfg = data.config
    horizon = horizon_of(cfg, int(data.exposures["ts_ms"].min())) if any_look else None
    if horizon is None:
        return None, None

    def values_at(end: int) -> pd.DataFrame:
        table = look_table(end)
        return pd.DataFrame({"arm": table["arm"],
                             "value": linearised(table, cfg.primary_metric)})

    return horizon, group_tests(cfg, horizon, period_ms, now_ms, values_at, min_users)[1]


def summary(tests: dict[str, GroupSequential] | None) -> dict[str, dict]:
    """The tests for the report's JSON (arrays as lists)."""
    return {a: {"z": g.z.tolist(), "boundary": g.boundary.tolist(), "spent": g.spent.tolist(),
                "fractions": g.fractions.tolist(), "crossed_at": g.crossed_at,
                "verdict": g.decision} for a, g in (tests or {}).items()}


def decision(tests: dict[str, GroupSequential] | None, msprt_p: dict[str, float],
             alpha: float) -> tuple[str, str]:
    """The report's decision and the test that made it."""
    if tests is not None:
        stop = [a for a, g in tests.items() if g.crossed_at is not None]
        if stop:
            return ("may stop: " + "; ".join(f"{a} differs from control" for a in stop),
                    "group-sequential test")
        if tests and all(g.horizon_reached for g in tests.values()):
            return "stop: no difference at the planned horizon", "group-sequential test"
        return "keep running", "group-sequential test"
    stop = [a for a, p in msprt_p.items() if p < alpha]
    if stop:
        return ("may stop: " + "; ".join(f"{a} differs from control" for a in stop),
                f"always-valid p < {alpha:g}")
    return "keep running", f"always-valid p < {alpha:g}"


def section(label: str, ci: str, spec: str, looks: int, horizon: Horizon | None,
            period_ms: int, tests: dict[str, GroupSequential] | None,
            msprt_p: dict[str, float], cs: dict[str, tuple[float, float]],
            power: dict[str, float], cfg) -> list[str]:
    """The markdown of the sequential tests."""
    lines = [f"## Sequential tests of {label}", ""]
    if tests is not None and horizon is not None:
        days = horizon.length_ms / DAY_MS
        lines += [f"Group-sequential ({cfg.spending} spending of alpha {cfg.alpha:g} over the "
                  f"{days:g}-day horizon, a look every {period_ms / DAY_MS:g} days from the "
                  "start; the looks' correlation estimated from the users' values): this test "
                  "decides.", ""]
        rows = []
        for arm, g in tests.items():
            last = int(np.flatnonzero(np.isfinite(g.z))[-1]) if np.isfinite(g.z).any() else -1
            crossed = ("-" if g.crossed_at is None else
                       f"look {g.crossed_at + 1} (day {g.fractions[g.crossed_at] * days:.2f})")
            rows.append([f"`{arm}`", len(g.z), fmt(g.z[last] if last >= 0 else math.nan, ".2f"),
                         fmt(g.boundary[last] if last >= 0 else math.nan, ".2f"),
                         fmt(g.spent[-1] if len(g.spent) else 0.0, ".4f"), crossed, g.decision])
        lines += md_table(["arm", "looks", "z (last tested look)", "boundary |z|",
                           "alpha spent", "first crossing", "verdict"], rows)
    else:
        lines += ["No planned horizon (`horizon_days`, or `start` and `end`): the always-valid "
                  "mSPRT decides.", ""]
    lines += [f"mSPRT over {looks} looks: its p-value and confidence sequence hold at every "
              "look there could be, so stopping when p < alpha keeps the error rate at any "
              "cadence (and spends less than alpha at a daily one).", ""]
    lines += md_table(["arm", "always-valid p", f"confidence sequence ({ci})",
                       "users needed (fixed horizon, 80 % power at the observed effect)"],
                      [[f"`{a}`", fmt_p(msprt_p[a]), fmt_ci(*cs[a], spec), fmt(power[a], ",.0f")]
                       for a in msprt_p])
    return lines
