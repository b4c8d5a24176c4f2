"""A replica's experiments: assign each request (``ExperimentPlan``), run it through its arms'
request path, and name the experiment and arm in the result.

Every arm is prepared once per replica at start: an arm of the served artefact version is an
``ArmPath`` over the served path (shared catalog, store and caches); an arm naming another
version gets that version's own request path, loaded once however many arms name it. Users in
experiments of several layers get every one of their arms' knobs together (the layers may not
set the same knob: refused at start, since which arm won would be arbitrary).

An assignment never fails a request: an experiment whose arm could not be prepared serves its
control to everyone and is listed in ``failed`` (the replica's readiness shows it); an
interleave experiment whose second list is empty serves the first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from recsys.experiments.assignment import (
    INTERLEAVED,
    Assignment,
    ExperimentError,
    ExperimentPlan,
)
from recsys.experiments.interleave import draft_seed, team_draft
from recsys.experiments.settings import ArmConfig, ExperimentConfig
from recsys.serving.arms import ArmPath, arm_settings, check_sources
from recsys.serving.request_path import RequestPath
from recsys.serving.settings import ServeConfig
from recsys.serving.stages import Request, Result

log = logging.getLogger(__name__)
Key = tuple[tuple[str, int], ...]  # (experiment, arm index) per layer the user is in
LoadVersion = Callable[[str], RequestPath]  # an artefact version's own request path


def knob_paths(overrides: dict, prefix: str = "") -> set[str]:
    """The dotted knobs an arm sets ({"rerank": {"pin": [1]}} -> {"rerank.pin"})."""
    out: set[str] = set()
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key != "boost":
            out |= knob_paths(value, path + ".")
        else:
            out.add(path)
    return out


def check_layers_apart(experiments: dict[str, ExperimentConfig]) -> None:
    """Experiments of different layers (whose users overlap) set disjoint knobs and at most
    one of them names an artefact version per user."""
    seen: list[tuple[str, str, set[str], bool]] = []
    for name, exp in experiments.items():
        knobs = set().union(*(knob_paths(dict(a.serve or {})) for a in exp.arms))
        versioned = any(a.version for a in exp.arms)
        for other, layer, other_knobs, other_versioned in seen:
            if layer == exp.layer:
                continue
            if shared := sorted(knobs & other_knobs):
                raise ExperimentError(
                    f"serve.experiments.{name} and {other} are in different layers (their "
                    f"users overlap) and both set {shared}; put them in one layer")
            if versioned and other_versioned:
                raise ExperimentError(
                    f"serve.experiments.{name} and {other} are in different layers and both "
                    "name artefact versions; a response has one model: put them in one layer")
        seen.append((name, exp.layer, knobs, versioned))


def check_experiments(cfg: ServeConfig, versions: Callable[[str], str]) -> ExperimentPlan:
    """Everything about ``cfg.experiments`` that can be refused before the stack starts: the
    plan (shares, ranges, arms, times), the layers' knobs, every arm's knobs and artefact
    version (``versions``: resolves a version or raises naming it). An ``ExperimentError``
    (or the store's ``RecsysError``) is one line for the command line."""
    plan = ExperimentPlan(cfg.experiments)
    check_layers_apart(plan.experiments)
    versions(cfg.version)
    for name, exp in plan.experiments.items():
        for i, arm in enumerate(exp.arms):
            where = f"serve.experiments.{name}.arms[{i}]"
            arm_settings(cfg, arm, where)
            if not arm.version:
                continue
            try:
                versions(arm.version)
            except Exception as err:  # noqa: BLE001 - named, whatever the store raised
                raise ExperimentError(f"{where}.version: {err}") from None
    return plan


class ExperimentPaths:
    """``base``: the served request path; ``load_version``: builds another version's path
    (None: arms naming another version fall back to the control)."""

    def __init__(self, base: RequestPath, cfg: ServeConfig,
                 load_version: LoadVersion | None = None) -> None:
        self.base, self.cfg = base, cfg
        self.plan = ExperimentPlan(cfg.experiments)
        check_layers_apart(self.plan.experiments)
        self.versions: dict[str, RequestPath] = {base.bundle.version: base}
        self.load_version = load_version
        self.failed: dict[str, str] = {}  # experiment -> why everyone gets its control
        self._paths: dict[Key, RequestPath] = {(): base}
        for name, exp in self.plan.experiments.items():
            try:
                for i in range(len(exp.arms)):
                    self.path_for(((name, i),))
            except Exception as err:  # noqa: BLE001 - one bad arm must not stop the stack
                self.failed[name] = f"{type(err).__name__}: {err}"
                log.warning("experiment %s serves its control to everyone: arm failed to "
                            "load (%s)", name, self.failed[name])

    def arm(self, name: str, index: int) -> ArmConfig:
        return self.plan.experiments[name].arms[index]

    def path_for(self, key: Key) -> RequestPath:
        """The request path of a combination of arms, built once (a user of several layers
        gets a combination no single experiment configured)."""
        path = self._paths.get(key)
        if path is not None:
            return path
        version = next((self.arm(n, i).version for n, i in key if self.arm(n, i).version),
                       None) or self.base.bundle.version
        root = self.versions.get(version)
        if root is None:
            if self.load_version is None:
                raise ExperimentError(f"artefact version {version} cannot be loaded here")
            root = self.versions[version] = self.load_version(version)
        cfg = root.cfg
        for name, i in key:
            cfg = arm_settings(cfg, self.arm(name, i), f"serve.experiments.{name}.arms[{i}]")
        check_sources(root, cfg, f"serve.experiments.{key[-1][0]}")
        path = root if cfg == root.cfg else ArmPath(root, cfg)
        self._paths[key] = path
        return path

    def assignments(self, req: Request) -> list[Assignment]:
        known = int(req.user_id) in self.base.user_index
        return [a for a in self.plan.assign(int(req.user_id), req.surface, known, time.time())
                if a.experiment not in self.failed]

    async def recommend(self, req: Request, blocking: bool = False) -> Result:
        """The request through its arms; the result names each experiment and arm."""
        chosen = self.assignments(req)
        if not chosen:
            return await self.base.recommend(req, blocking=blocking)
        fixed = tuple((a.experiment, a.arm_index) for a in chosen if a.arm != INTERLEAVED)
        named = [{"experiment": a.experiment, "arm": a.arm, "kind": a.kind} for a in chosen]
        mixed = next((a for a in chosen if a.arm == INTERLEAVED), None)
        try:
            if mixed is None:
                paths = [self.path_for(fixed)]
            else:
                exp = self.plan.experiments[mixed.experiment]
                paths = [self.path_for(tuple(sorted((*fixed, (exp.name, i))))) for i in (0, 1)]
        except Exception as err:  # noqa: BLE001 - a combination that cannot be built: control
            log.warning("arms %s cannot be combined (%s: %s); serving the control",
                        named, type(err).__name__, err)
            return await self.base.recommend(req, blocking=blocking)
        sides = [await path.recommend(req, blocking=blocking) for path in paths]
        result = sides[0] if mixed is None else interleaved(sides, exp, req)
        return replace(result, experiments=named)

    def recommend_sync(self, req: Request) -> Result:
        from recsys.serving.request_path import run_now

        return run_now(self.recommend(req, blocking=True))

    def loaded_versions(self) -> Iterable[str]:
        return list(self.versions)


def interleaved(sides: list[Result], exp: ExperimentConfig, req: Request) -> Result:
    """Team-draft merge of the two arms' results (Radlinski et al. 2008), seeded by the
    request id so the draft replays exactly; each item names the arm it is credited to."""
    a, b = sides
    by_id = [{item.item_id: item for item in side.items} for side in sides]
    draft = team_draft([i.item_id for i in a.items], [i.item_id for i in b.items], req.n,
                       draft_seed(req.request_id, exp.salt or exp.name))
    names = [arm.name for arm in exp.arms]
    items = [replace(by_id[team][item], arm=names[team])
             for item, team in zip(draft.items, draft.teams, strict=True)]
    timings = {stage: ms + b.timings_ms.get(stage, 0.0) for stage, ms in a.timings_ms.items()}
    degraded = list(dict.fromkeys(a.degraded + b.degraded))
    return replace(a, items=items, degraded=degraded, timings_ms=timings,
                   candidates=a.candidates + b.candidates)
