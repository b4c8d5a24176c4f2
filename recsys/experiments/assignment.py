"""Who is in which experiment and arm: a pure function of the configuration and the user id.

A user's bucket in a layer is ``blake2b(layer:user_id) mod 10,000``: the same on every replica,
after every restart, for known and brand-new users, with no state to keep or share. Each
experiment of a layer owns a contiguous range of the layer's buckets (``offset``, ``traffic``),
so two experiments of one layer never share a user; a second hash, salted by the experiment,
splits its users between the arms by weight, so overlapping layers stay independent.

>>> plan = ExperimentPlan({"ease_vs_ranker": exp})  # validated here: a bad config raises
>>> plan.assign(user_id=42, surface="home", known=True, now_s=time.time())
[Assignment(experiment='ease_vs_ranker', kind='ab', arm='control', arm_index=0)]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from recsys import RecsysError
from recsys.experiments.settings import (
    METRICS,
    ExperimentConfig,
    ExperimentKind,
    Spending,
    UserTarget,
)

BUCKETS = 10_000
SURFACES = ("home", "search", "post_play")
INTERLEAVED = "interleaved"  # the arm an interleave experiment's users are in: both at once


class ExperimentError(RecsysError):
    """A configuration the stack must refuse at start (one line, naming the field)."""


def bucket(salt: str, user_id: int) -> int:
    """The user's bucket, 0..9,999, under ``salt`` (blake2b: stable across processes and
    Python versions, where ``hash()`` is salted per process)."""
    digest = hashlib.blake2b(f"{salt}:{int(user_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(frozen=True)
class Assignment:
    experiment: str
    kind: str  # ExperimentKind value
    arm: str  # the arm's name; INTERLEAVED for an interleave experiment
    arm_index: int  # index in the experiment's arms; -1 when interleaved


@dataclass(frozen=True)
class Placed:
    """One validated experiment and what assignment needs of it."""

    cfg: ExperimentConfig
    lo: int  # its buckets of the layer: [lo, hi)
    hi: int
    arm_edges: tuple[int, ...]  # cumulative arm bucket edges (A/B), last = BUCKETS
    start_s: float | None
    end_s: float | None


def parse_time(value: str | None, field: str) -> float | None:
    """ISO 8601 with a timezone -> Unix seconds (a naive time is ambiguous across replicas)."""
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ExperimentError(f"{field}: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ExperimentError(f"{field}: {value!r} has no timezone (write e.g. "
                              f"{value}+00:00)")
    return moment.timestamp()


def checked(name: str, cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` with its name filled in, or an ``ExperimentError`` naming the bad field."""
    where = f"serve.experiments.{name}"
    if cfg.name and cfg.name != name:
        raise ExperimentError(f"{where}.name: {cfg.name!r} differs from its key {name!r}")
    cfg.name = name
    if not 0.0 <= float(cfg.traffic) <= 1.0:
        raise ExperimentError(f"{where}.traffic: {cfg.traffic} is not a share in 0..1")
    if cfg.offset is not None and not 0.0 <= float(cfg.offset) <= 1.0:
        raise ExperimentError(f"{where}.offset: {cfg.offset} is not a share in 0..1")
    bad = sorted(set(cfg.surfaces) - set(SURFACES))
    if bad or not cfg.surfaces:
        raise ExperimentError(f"{where}.surfaces: {bad or '[]'} not among {list(SURFACES)}")
    if cfg.primary_metric not in METRICS:
        raise ExperimentError(f"{where}.primary_metric: {cfg.primary_metric!r} is not one of "
                              f"{list(METRICS)}")
    if not 0.0 < float(cfg.alpha) < 0.5:
        raise ExperimentError(f"{where}.alpha: {cfg.alpha} is not in (0, 0.5)")
    if cfg.horizon_days is not None and not float(cfg.horizon_days) > 0:
        raise ExperimentError(f"{where}.horizon_days: {cfg.horizon_days} must be > 0 (or null)")
    if str(cfg.spending) not in {str(s) for s in Spending}:
        raise ExperimentError(f"{where}.spending: {cfg.spending!r} is not one of "
                              f"{[str(s) for s in Spending]}")
    names = [arm.name for arm in cfg.arms]
    if len(names) < 2:
        raise ExperimentError(f"{where}.arms: an experiment needs at least 2 arms (the first "
                              f"is the control), got {names}")
    if len(set(names)) != len(names) or INTERLEAVED in names:
        raise ExperimentError(f"{where}.arms: arm names must be unique and not "
                              f"{INTERLEAVED!r}, got {names}")
    if cfg.kind == ExperimentKind.interleave and len(names) != 2:
        raise ExperimentError(f"{where}.arms: an interleave experiment merges exactly 2 "
                              f"arms, got {len(names)}")
    for i, arm in enumerate(cfg.arms):
        if not float(arm.weight) > 0:
            raise ExperimentError(f"{where}.arms[{i}].weight: {arm.weight} must be > 0")
    start, end = (parse_time(cfg.start, f"{where}.start"), parse_time(cfg.end, f"{where}.end"))
    if start is not None and end is not None and end <= start:
        raise ExperimentError(f"{where}.end: {cfg.end} is not after start {cfg.start}")
    return cfg


class ExperimentPlan:
    """The configured experiments, validated, with their bucket ranges per layer."""

    def __init__(self, experiments: Mapping[str, ExperimentConfig]) -> None:
        self.experiments = {name: checked(name, cfg) for name, cfg in experiments.items()}
        self.layers: dict[str, list[Placed]] = {}
        ends: dict[str, float] = {}
        for name, cfg in self.experiments.items():
            offset = ends.get(cfg.layer, 0.0) if cfg.offset is None else float(cfg.offset)
            lo, hi = round(offset * BUCKETS), round((offset + float(cfg.traffic)) * BUCKETS)
            ends[cfg.layer] = offset + float(cfg.traffic)
            if hi > BUCKETS:
                shares = {p.cfg.name: p.cfg.traffic for p in self.layers.get(cfg.layer, [])}
                raise ExperimentError(
                    f"serve.experiments.{name}: layer {cfg.layer!r} would hold more than 100 % "
                    f"of its users ({ {**shares, name: cfg.traffic} }, offset {offset:g}); "
                    f"lower traffic or move it to another layer")
            for other in self.layers.get(cfg.layer, []):
                if lo < other.hi and other.lo < hi:
                    raise ExperimentError(
                        f"serve.experiments.{name}: its users overlap {other.cfg.name!r} in "
                        f"layer {cfg.layer!r} (buckets {lo}..{hi} and {other.lo}..{other.hi}); "
                        f"set offset or another layer")
            weights = [float(a.weight) for a in cfg.arms]
            total, edges, run = sum(weights), [], 0.0
            for w in weights:
                run += w
                edges.append(round(run / total * BUCKETS))
            self.layers.setdefault(cfg.layer, []).append(Placed(
                cfg, lo, hi, tuple(edges), parse_time(cfg.start, "start"),
                parse_time(cfg.end, "end")))

    def __bool__(self) -> bool:
        return bool(self.experiments)

    def assign(self, user_id: int, surface: str, known: bool, now_s: float
               ) -> list[Assignment]:
        """The user's experiments on this request, at most one per layer."""
        out = []
        for layer, placed in self.layers.items():
            b = bucket(layer, user_id)
            for p in placed:
                if p.lo <= b < p.hi and self.targets(p, surface, known, now_s):
                    out.append(self.arm_of(p, user_id))
                    break
        return out

    @staticmethod
    def targets(p: Placed, surface: str, known: bool, now_s: float) -> bool:
        cfg = p.cfg
        if not cfg.enabled or surface not in cfg.surfaces:
            return False
        if (cfg.users == UserTarget.new and known) or (cfg.users == UserTarget.known
                                                        and not known):
            return False
        return (p.start_s is None or now_s >= p.start_s) and (p.end_s is None
                                                              or now_s < p.end_s)

    @staticmethod
    def arm_of(p: Placed, user_id: int) -> Assignment:
        cfg = p.cfg
        if cfg.kind == ExperimentKind.interleave:
            return Assignment(cfg.name, str(cfg.kind), INTERLEAVED, -1)
        b = bucket(cfg.salt or cfg.name, user_id)
        index = next(i for i, edge in enumerate(p.arm_edges) if b < edge)
        return Assignment(cfg.name, str(cfg.kind), cfg.arms[index].name, index)
