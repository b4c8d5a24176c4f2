"""From the event log to one experiment's per-user tables and fixed-horizon comparisons.

``collect`` is the one Python pass: it keeps the experiment's exposures (``exposures``) and every
readable play and click, counting what it cannot read instead of raising (a log of clients and
backfills always holds bad records; one must not void a report). An engagement belongs, by its
``request_id``, to the exposure that showed the title and so to its arm; other plays and clicks
only feed the pre-period covariate. The rest is vectorised, per user (the randomisation unit):
``compare(user_table(collect(records, cfg)), cfg)["play_rate"]["ease_only"].p_value``.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd

from recsys.experiments.pre_period import pre_parts
from recsys.experiments.reading import EVENT_COLUMNS, read
from recsys.experiments.settings import ExperimentConfig
from recsys.experiments.stats import Estimate, mean_difference, ratio_difference

# watch seconds of a play without duration_s (backfills may lack it): a fraction of one hour
DEFAULT_DURATION_S = 3600.0
# metric -> (numerator, denominator) of the user table: a ratio of sums over users; None: a mean
METRIC_PARTS: dict[str, tuple[str, str | None]] = {
    "ctr": ("clicks", "exposures"), "play_rate": ("plays", "exposures"),
    "completion_rate": ("completes", "plays"), "watch_time": ("watch_s", None)}
EXPOSURE_COLUMNS = ["request_id", "user_id", "ts_ms", "arm", "surface", "items", "teams",
                    "latency_ms"]


@dataclass(frozen=True, eq=False)
class ExperimentData:
    """One experiment's records, as tables (``collect``)."""

    config: ExperimentConfig
    exposures: pd.DataFrame  # EXPOSURE_COLUMNS, sorted by ts_ms; arm INTERLEAVED if interleave
    # user_id, ts_ms, type, item_id, request_id, arm, position (-1: not shown), team (arm or
    engagement: pd.DataFrame  # None), exposure_ts_ms, click, play, complete (0/1), watch_s
    pre: pd.Series  # user_id -> plays + clicks before the user's first exposure (0 if none)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> malformed records
    engaged_fraction: float = 0.7
    pre_parts: pd.DataFrame | None = None  # user_id -> pre_period.PARTS before the first


def collect(records: Iterable[dict], experiment: ExperimentConfig,
            engaged_fraction: float = 0.7) -> ExperimentData:
    """The experiment's exposures, attributed engagement and pre-period covariate.

    ``records``: any iterable, read once. A record that cannot be read is counted in
    ``skipped`` by reason; other types and other experiments' exposures are ignored. A repeated
    request id keeps its first exposure (a replayed log must not double a user's exposures).
    A play with ``watch_fraction >= engaged_fraction`` is complete."""
    cfg = experiment
    names = [arm.name for arm in cfg.arms]  # teams are logged as arm names or team_draft's 0/1
    teams_of: dict[Any, str] = {**{name: name for name in names}, **dict(enumerate(names[:2]))}
    skipped: Counter[str] = Counter()
    enabled = gc.isenabled()
    gc.disable()
    try:
        others: list[tuple] = []
        shown, events = read(records, cfg, teams_of, skipped, others)
    finally:
        if enabled:
            gc.enable()
    exposures = pd.DataFrame(shown, columns=EXPOSURE_COLUMNS).astype(
        {"user_id": "int64", "ts_ms": "int64", "latency_ms": "float64"})
    exposures = exposures.sort_values("ts_ms", kind="stable", ignore_index=True)  # ties: log order
    ev = pd.DataFrame(events, columns=EVENT_COLUMNS).astype(
        {"user_id": "int64", "ts_ms": "int64", "item_id": "int64", "play": "bool",
         "watch_fraction": "float64", "duration_s": "float64"})
    first = exposures.groupby("user_id")["ts_ms"].min()
    before = ev["ts_ms"] < ev["user_id"].map(first)  # nan (not exposed) compares False
    pre = ev.loc[before, "user_id"].value_counts().reindex(first.index, fill_value=0)
    engagement = _attribute(ev, exposures, engaged_fraction, skipped)
    parts = pre_parts(ev, pd.DataFrame(others, columns=["user_id", "ts_ms"], dtype="int64"),
                      first, engaged_fraction, DEFAULT_DURATION_S)
    return ExperimentData(cfg, exposures, engagement, pre.astype("int64").rename("pre"),
                          dict(skipped), engaged_fraction, parts)


def _attribute(ev: pd.DataFrame, exposures: pd.DataFrame, engaged_fraction: float,
               skipped: Counter[str]) -> pd.DataFrame:
    """The plays and clicks whose request id is an exposure's, with its arm, slot and team
    (request ids resolved to rows once; only the engaged exposures' slots are flattened)."""
    shown = pd.Index(exposures["request_id"]).get_indexer(ev["request_id"])
    eng = ev[shown >= 0].assign(exposure=shown[shown >= 0])
    rows = eng["exposure"].to_numpy()
    other = eng["user_id"].to_numpy() != exposures["user_id"].to_numpy()[rows]
    if other.any():  # a request id shown to someone else: a client bug, not this user's
        skipped["engagement: user_id differs from its exposure's"] += int(other.sum())
        eng, rows = eng[~other], rows[~other]
    eng = eng.assign(arm=exposures["arm"].to_numpy()[rows],
                     exposure_ts_ms=exposures["ts_ms"].to_numpy()[rows])
    used = np.unique(rows)
    items = exposures["items"].to_numpy()[used]
    sizes = np.fromiter(map(len, items), np.int64, len(used))
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    slots = pd.DataFrame({
        "exposure": np.repeat(used, sizes),
        "item_id": np.fromiter(chain.from_iterable(items), np.int64, int(sizes.sum())),
        "position": np.arange(int(sizes.sum())) - starts})
    teams = exposures["teams"].to_numpy()[used]
    slots["team"] = (list(chain.from_iterable(teams)) if len(used) and teams[0] is not None
                     else None)
    slots = slots.drop_duplicates(["exposure", "item_id"])  # an item shown twice: first slot
    eng = eng.merge(slots, on=["exposure", "item_id"], how="left")
    eng["position"] = eng["position"].fillna(-1).astype("int64")
    eng["team"] = eng["team"].astype(object).where(eng["team"].notna(), None)
    duration = eng["duration_s"].fillna(DEFAULT_DURATION_S)
    eng = eng.assign(
        type=np.where(eng["play"], "play", "click"), click=(~eng["play"]).astype("int64"),
        complete=(eng["play"] & (eng["watch_fraction"] >= engaged_fraction)).astype("int64"),
        watch_s=(eng["watch_fraction"] * duration).fillna(0.0), play=eng["play"].astype("int64"))
    return eng.drop(columns="exposure").reset_index(drop=True)


def _until(data: ExperimentData, until_ms: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The exposures up to ``until_ms``, and the engagements when both they and the exposure
    they are attributed to are (a look sees only what had been logged by then)."""
    exp, eng = data.exposures, data.engagement
    if until_ms is None:
        return exp, eng
    return (exp[exp["ts_ms"] <= until_ms],
            eng[(eng["ts_ms"] <= until_ms) & (eng["exposure_ts_ms"] <= until_ms)])


def user_table(data: ExperimentData, until_ms: int | None = None) -> pd.DataFrame:
    """One row per user exposed up to ``until_ms`` (all data when None), indexed by user_id.

    Columns: arm (of the first exposure), multi_arm (exposed in several arms: a bug; kept under
    the first arm), exposures, clicks, plays, completes, watch_s (sum of watch_fraction *
    duration_s, or * DEFAULT_DURATION_S for a play without duration_s), pre."""
    exp, eng = _until(data, until_ms)
    by_user = exp.groupby("user_id", sort=True)["arm"]
    table = pd.DataFrame({"arm": by_user.first(), "multi_arm": by_user.nunique() > 1,
                          "exposures": by_user.size()})
    sums = eng.groupby("user_id")[["click", "play", "complete", "watch_s"]].sum()
    table = table.join(sums.reindex(table.index, fill_value=0).set_axis(
        ["clicks", "plays", "completes", "watch_s"], axis=1))
    table["pre"] = data.pre.reindex(table.index, fill_value=0).to_numpy()
    if data.pre_parts is not None:
        parts = data.pre_parts.reindex(table.index, fill_value=0.0)
        for column in parts:
            table[f"pre_{column}"] = parts[column].to_numpy()
    return table


def linearised(table: pd.DataFrame, metric: str) -> pd.Series:
    """Per-user values whose mean in each arm is the arm's metric, for mean-based methods.

    A ratio is linearised within each arm a (Deng, Knoblich, Lu 2018; Budylin et al. 2018):
    ``v_i = R_a + (num_i - R_a den_i) / mean(den)_a``: the arm's mean of v is R_a, its variance
    the delta method's, so CUPED and the mSPRT estimate the ratio itself, not a mean of
    per-user ratios. A mean metric: its per-user values. All denominators 0 in an arm: nan."""
    num, den = METRIC_PARTS[metric]
    if den is None:
        return table[num].astype(float)
    groups = table.groupby("arm")
    mean_den = groups[den].transform("mean").astype(float)
    ratio = groups[num].transform("sum") / groups[den].transform("sum").replace(0, np.nan)
    values = ratio + (table[num] - ratio * table[den]) / mean_den.replace(0, np.nan)
    return values.astype(float)


def _estimate(control: pd.DataFrame, treatment: pd.DataFrame, metric: str,
              alpha: float) -> Estimate:
    num, den = METRIC_PARTS[metric]
    if den is None:
        return mean_difference(control[num].to_numpy(float), treatment[num].to_numpy(float),
                               alpha)
    parts = (arm[col].to_numpy(float) for arm in (control, treatment) for col in (num, den))
    return ratio_difference(*parts, alpha=alpha)


def compare(table: pd.DataFrame, cfg: ExperimentConfig, alpha: float | None = None
            ) -> dict[str, dict[str, Estimate]]:
    """metric -> arm -> Estimate of every non-control arm against the control (the first), at
    ``alpha`` (None: the experiment's); an arm without users: nan interval, p = 1."""
    alpha = cfg.alpha if alpha is None else alpha
    names = [arm.name for arm in cfg.arms]
    arms = {name: table[table["arm"] == name] for name in names}
    return {metric: {name: _estimate(arms[names[0]], arms[name], metric, alpha)
                     for name in names[1:]} for metric in METRIC_PARTS}


def interleave_credit(data: ExperimentData, until_ms: int | None = None) -> pd.DataFrame:
    """Per exposed user (index user_id): credit_a, credit_b, the engaged slots credited to the
    first and second arm, for ``interleave.preference``. A slot engaged twice in one exposure
    (a click, then a play) counts once: Team Draft credits engaged results, not events
    (Radlinski et al. 2008). Users never engaged are ties (0, 0)."""
    names = [arm.name for arm in data.config.arms]
    exp, eng = _until(data, until_ms)
    slots = eng[eng["team"].notna()].drop_duplicates(["request_id", "position"])
    credit = pd.DataFrame({"credit_a": slots["team"] == names[0],
                           "credit_b": slots["team"] == names[1],
                           "user_id": slots["user_id"]}).groupby("user_id").sum()
    users = pd.Index(np.unique(exp["user_id"].to_numpy()), name="user_id")
    return credit.reindex(users, fill_value=0).astype("int64")
