"""An experiment arm as a request path: the serving settings with the arm's knobs applied
(checked against ``ServeConfig``'s own types), and a ``RequestPath`` variant that shares the
served path's catalog, user store and caches, changing only what the arm changes.

Only request-path knobs are an arm's to set (``ARM_KNOBS``): the deployment's shape (replicas,
topology, ingress) is one per stack, and an arm that tried to change it would be refused at
start, naming the knob and the ones it may set.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from enum import Enum
from typing import Any

from recsys.experiments.assignment import SURFACES, ExperimentError
from recsys.experiments.settings import ArmConfig
from recsys.serving.request_path import RequestPath
from recsys.serving.settings import RankerKind, ServeConfig

ARM_KNOBS = ("ranker", "rank_deadline_ms", "surface_sources", "candidate_quotas", "rerank")


def arm_settings(base: ServeConfig, arm: ArmConfig, where: str) -> ServeConfig:
    """``base`` with ``arm.serve`` applied (nested dicts or dotted keys), or an
    ``ExperimentError`` naming the knob; ``base`` is not changed."""
    cfg = copy.deepcopy(base)
    apply_knobs(cfg, dict(arm.serve or {}), f"{where}.serve", ARM_KNOBS)
    if cfg.ranker not in (RankerKind.none, base.ranker):
        raise ExperimentError(f"{where}.serve.ranker: an arm can turn the ranker off (none) "
                              f"or keep the stack's ({base.ranker}), not switch to "
                              f"{cfg.ranker}")
    bad = sorted(set(cfg.surface_sources) - set(SURFACES))
    if bad:
        raise ExperimentError(f"{where}.serve.surface_sources: {bad} not among "
                              f"{list(SURFACES)}")
    return cfg


def apply_knobs(obj: Any, overrides: Mapping[str, Any], where: str,
                allowed: tuple[str, ...] | None = None) -> None:
    """Set dataclass fields from ``overrides`` in place, each checked against the field's
    current value's type (an enum by its values, a number as a number, a nested dataclass
    field by field)."""
    names = [f.name for f in dataclasses.fields(obj)
             if allowed is None or f.name in allowed]
    for key, value in overrides.items():
        head, _, rest = str(key).partition(".")
        if rest:  # "rerank.max_genre_share": 0.3 == {"rerank": {"max_genre_share": 0.3}}
            key, value = head, {rest: value}
        if key not in names:
            raise ExperimentError(f"{where}.{key}: not a knob an arm can set; one of {names}")
        setattr(obj, key, coerced(getattr(obj, key), value, f"{where}.{key}"))


def coerced(current: Any, value: Any, where: str) -> Any:
    """``value`` as a value of ``current``'s type, or an ``ExperimentError``."""
    if dataclasses.is_dataclass(current):
        if not isinstance(value, Mapping):
            raise ExperimentError(f"{where}: expected a mapping of its fields, got {value!r}")
        out = copy.deepcopy(current)
        apply_knobs(out, value, where)
        return out
    if isinstance(current, Enum):
        try:
            return type(current)(value)
        except ValueError:
            raise ExperimentError(f"{where}: {value!r} is not one of "
                                  f"{[m.value for m in type(current)]}") from None
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ExperimentError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(current, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ExperimentError(f"{where}: expected a number, got {value!r}")
        if isinstance(current, int) and not float(value).is_integer():
            raise ExperimentError(f"{where}: expected an integer, got {value!r}")
        return type(current)(value)
    if isinstance(current, Mapping):
        if not isinstance(value, Mapping):
            raise ExperimentError(f"{where}: expected a mapping, got {value!r}")
        return {**current, **{k: plain(v) for k, v in value.items()}}
    if isinstance(current, list):
        if not isinstance(value, list | tuple):
            raise ExperimentError(f"{where}: expected a list, got {value!r}")
        return [plain(v) for v in value]
    return plain(value)


def plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def check_sources(path: RequestPath, cfg: ServeConfig, where: str) -> None:
    """Every source an arm names is one of the bundle's (a typo would silently serve fewer)."""
    known = sorted(path.bundle.generator.sources)
    named = {n for names in cfg.surface_sources.values() if names for n in names}
    named |= set(cfg.candidate_quotas)
    if bad := sorted(named - set(known)):
        raise ExperimentError(f"{where}: candidate source(s) {bad} not in artefact version "
                              f"{path.bundle.version}; it has {known}")
    for name, quota in cfg.candidate_quotas.items():
        if int(quota) < 1:
            raise ExperimentError(f"{where}.candidate_quotas.{name}: {quota} must be >= 1")


class ArmPath(RequestPath):
    """A ``RequestPath`` of the same artefact version as ``base`` under an arm's settings: its
    own generators, ranker (or none) and rerank rules; ``base``'s catalog snapshot (read
    through, so an added title reaches every arm at once), user store and row cache."""

    def __init__(self, base: RequestPath, cfg: ServeConfig) -> None:  # noqa: D107
        self.base, self.cfg = base, cfg
        self.bundle, self.store, self.rows = base.bundle, base.store, base.rows
        self.user_index = base.user_index
        self.ranker = None if cfg.ranker == RankerKind.none else base.ranker
        self.generators = self.surface_generators(cfg)
        self._rules: tuple[Any, Any] | None = None  # (catalog snapshot, its rules)

    @property  # type: ignore[override]
    def live(self) -> Any:
        return self.base.live

    @live.setter
    def live(self, value: Any) -> None:
        self.base.live = value

    def rules(self, live: Any) -> Any:
        """This arm's pin / boost / demote in ``live``'s indices, once per snapshot."""
        if self.cfg.rerank == self.base.cfg.rerank:
            return live.rules
        cached = self._rules
        if cached is None or cached[0] is not live:
            cached = self._rules = (live, self.cfg.rerank.for_catalog(live.item_index))
        return cached[1]
