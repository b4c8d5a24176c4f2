"""The ``Recommender`` deployment: one replica of the request path behind the router's handle.

Its methods return plain dicts (they cross the handle, pickled) and raise what the request path
raises: the router maps a ``RecsysError`` to its status code (``serve/http_errors.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from ray import serve

from recsys.serving.settings import ServeConfig

log = logging.getLogger(__name__)


@serve.deployment
class Recommender:
    """One replica: the artefact version, the user store and a ranker client, loaded once."""

    def __init__(self, cfg: ServeConfig, version: str, triton_url: str | None) -> None:
        # imported here, not at module top: the router process never loads torch or the models
        from recsys.serving.request_path import Request
        from serve.build import build_request_path

        self.cfg, self.triton_url = cfg, triton_url
        self.path = build_request_path(cfg, version, triton_url)
        self.request_type = Request
        self.experiments = None  # no experiment configured: the served path, as it always was
        if cfg.experiments:
            from serve.build import experiment_paths

            self.experiments = experiment_paths(self.path, cfg, triton_url)
        self.refused: dict[str, str] = {}  # versions that failed to load here -> why
        self.canary: dict[str, Any] | None = None  # the canary being served, if any

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Ray Serve's in-place update (``user_config``): ``{"version": ..., "canary": {"version":
        ..., "share": ...} or None}``. What changed is loaded beside what is served, on a
        worker thread while this replica keeps answering, warmed up, then swapped in with one
        assignment: a request in flight finishes on the path it started on. A version that
        fails to load is refused and the served one stays."""
        import asyncio

        config = user_config or {}
        version = config.get("version") or self.path.bundle.version
        canary = config.get("canary") or None
        if (version, canary) == (self.path.bundle.version, self.canary) or (
                version in self.refused):
            return
        try:
            path, experiments = await asyncio.to_thread(self.load, version, canary)
        except Exception as err:  # noqa: BLE001 - a bad version must never take serving down
            self.refused[version] = f"{type(err).__name__}: {err}"
            log.error("version %s refused, still serving %s: %s", version,
                      self.path.bundle.version, self.refused[version])
            return
        old, self.path, self.experiments = self.path, path, experiments  # the swap
        self.canary = canary
        if old is not path:
            for worker in ("catalog_sync", "live_titles"):  # the old path's refresh threads
                if (thread := getattr(old, worker, None)) is not None:
                    thread.stop()
        log.info("now serving version %s%s", version,
                 f" with canary {canary['version']} at {canary['share']:g}" if canary else "")

    def load(self, version: str, canary: dict[str, Any] | None) -> tuple[Any, Any]:
        import dataclasses

        from recsys.experiments.canary import CANARY, canary_experiment
        from serve.build import build_request_path, experiment_paths

        path = (self.path if version == self.path.bundle.version
                else build_request_path(self.cfg, version, self.triton_url))  # warmed up
        cfg = self.cfg
        if canary:  # the canary: an experiment arm of its own layer (recsys.experiments.canary)
            cfg = dataclasses.replace(cfg, experiments={**cfg.experiments, CANARY:
                                      canary_experiment(canary["version"], canary["share"])})
        return path, (experiment_paths(path, cfg, self.triton_url) if cfg.experiments
                      else None)

    # async on purpose: the CPU stages run on the replica's event loop one request at a time
    # (threads would only fight over the GIL, benchmarks/serving.md), and the rank stage
    # awaits Triton over async gRPC, so the loop computes another request meanwhile
    async def recommend(self, query: dict[str, Any]) -> dict[str, Any]:
        serving = self.experiments or self.path
        return result_dict(await serving.recommend(self.request_type(**query)),
                           self.path.ranker is not None)

    async def similar(self, item_id: int, n: int) -> dict[str, Any]:
        return result_dict(await self.path.similar(item_id, n), self.path.ranker is not None)

    def add_titles(self, titles: list[dict[str, Any]]) -> dict[str, Any]:
        """Titles (``NewTitle`` dicts) into this replica's catalog; a ``DuplicateItemError``
        for an id the catalog has, an ``InvalidInput`` for anything else the client can fix."""
        import pandas as pd

        from recsys.serving.catalog_admin import add_titles

        add_titles(self.path, pd.DataFrame(titles))
        return {"item_ids": [int(t["item_id"]) for t in titles],
                "catalog_size": self.path.live.n_items, "version": self.path.bundle.version}

    def check_titles(self, titles: list[dict[str, Any]]) -> None:
        """What ``add_titles`` would refuse (409 / 422), changing nothing: the router checks
        before it appends titles to the log."""
        import pandas as pd

        from recsys.serving.catalog_admin import checked_rows, title_embedders

        checked_rows(self.path.live, pd.DataFrame(titles))
        title_embedders(self.path)

    def sync_catalog(self, item_ids: list[int]) -> dict[str, Any]:
        """Add the store's new titles now (live events: titles come through the log)."""
        self.path.catalog_sync.sync()
        return {"item_ids": [int(i) for i in item_ids], "catalog_size": self.path.live.n_items,
                "version": self.path.bundle.version}

    def ready(self) -> dict[str, Any]:
        ranker = self.path.ranker
        live = getattr(ranker, "live", lambda: ranker is not None)()
        out = {"version": self.path.bundle.version, "ranker": getattr(ranker, "name", None),
               "ranker_live": bool(live), "versions_refused": dict(self.refused)}
        out["canary"] = self.canary
        if self.experiments is not None:  # which experiments run, and which fell back
            out["experiments"] = sorted(self.experiments.plan.experiments)
            out["experiments_failed"] = dict(self.experiments.failed)
        return out


def result_dict(result, ranked: bool) -> dict[str, Any]:
    """The result for the router, plus ``rank_rows``: what the rank stage sent to the ranker,
    the merged candidates the filters kept (none when no ranker is configured)."""
    out = result.as_dict()
    out["rank_rows"] = result.candidates - sum(result.filtered.values()) if ranked else 0
    return out
