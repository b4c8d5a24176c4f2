"""What an experiment is, as configured: the schema of ``configs/ab/`` (one file per experiment,
``serve.experiments.<name>``), plain dataclasses the serving layer reads without Hydra.

An experiment splits users of a *layer* between its *arms*. An arm is a variant of the request
path: an artefact version and any request-path serve knob (``ArmConfig.serve``: dotted keys of
``ServeConfig``, e.g. ``{"ranker": "none", "surface_sources.home": ["ease"],
"rerank.max_genre_share": 0.3}``). The first arm is the control: what a user gets when the
experiment is off, not targeted, or its arm could not load.

Experiments of one layer are mutually exclusive (each owns a range of the layer's buckets);
experiments of different layers overlap independently (the layer name salts the layer's hash,
the experiment's salt the arm's).

>>> exp = ExperimentConfig(name="ease_vs_ranker", arms=[
...     ArmConfig("control"), ArmConfig("ease_only", serve={"ranker": "none"})])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# the report's per-user metrics (recsys.experiments.analysis): clicks / exposures, plays /
# exposures, completed plays (watch fraction >= the engagement threshold) / plays, watch
# seconds per user
METRICS = ("ctr", "play_rate", "completion_rate", "watch_time")


class ExperimentKind(StrEnum):
    ab = "ab"  # each user sees one arm
    interleave = "interleave"  # each response merges two arms by team draft


class Spending(StrEnum):
    """How the group-sequential test spends alpha over the horizon (``group_sequential``)."""

    obrien_fleming = "obrien_fleming"  # almost nothing early: the last look ~ fixed horizon
    pocock = "pocock"  # evenly: stops sooner on a large effect, less power at the end


class UserTarget(StrEnum):
    all = "all"
    new = "new"  # users the served models never saw (the cold-start path)
    known = "known"  # users the served models were trained on


@dataclass
class ArmConfig:
    name: str = "control"
    weight: float = 1.0  # relative share of the experiment's users (A/B); ignored by interleave
    version: str | None = None  # artefact version; null = the stack's serve.version
    serve: dict[str, Any] = field(default_factory=dict)  # dotted ServeConfig knob -> value


@dataclass
class ExperimentConfig:
    name: str = ""  # set from the file name (the key under serve.experiments) when empty
    kind: ExperimentKind = ExperimentKind.ab
    enabled: bool = True  # false: configured, assigned to nobody (everyone gets the control)
    start: str | None = None  # ISO 8601 (with a timezone) or null = as soon as served
    end: str | None = None  # ISO 8601 or null = until disabled
    layer: str = "default"  # mutually exclusive with the layer's other experiments
    salt: str = ""  # the arm hash's salt; "" = the name. A new salt reshuffles the users
    traffic: float = 1.0  # share of the layer's users in this experiment, 0..1
    # where its range of the layer's buckets starts, 0..1; null = after the layer's earlier
    # experiments (config order). Set it to keep a running experiment's users when another
    # experiment is added before it
    offset: float | None = None
    surfaces: list[str] = field(default_factory=lambda: ["home"])
    users: UserTarget = UserTarget.all
    arms: list[ArmConfig] = field(default_factory=list)  # the first one is the control
    # the report's primary metric (METRICS)
    primary_metric: str = "play_rate"
    alpha: float = 0.05
    # the planned length, in days from start (or the first exposure): the report's
    # group-sequential test spends alpha over it. null = end - start when both are set, else no
    # horizon and only the always-valid mSPRT decides
    horizon_days: float | None = None
    spending: Spending = Spending.obrien_fleming  # the group-sequential test's alpha spending
