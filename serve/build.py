"""Build one replica's request path from the serving settings (the deployment's constructor)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import threadpoolctl

from recsys import RecsysError
from recsys.candidates.trending import Trending
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.bundle import ServingBundle, load_bundle
from recsys.serving.rankers import RankerBackend
from recsys.serving.request_path import RequestPath
from recsys.serving.settings import RankerKind, ServeConfig
from recsys.serving.state import InMemoryUserStore

if TYPE_CHECKING:
    from recsys.serving.experiment_paths import ExperimentPaths


def build_request_path(cfg: ServeConfig, version: str, triton_url: str | None) -> RequestPath:
    """The artefact ``version`` under ``cfg.artefacts_root``, with ``cfg``'s ranker (Triton at
    ``triton_url``), warmed up. ``cfg`` is used as given: its defaults are the schema's. With
    live events on, user state, trending and added titles come from the shared store."""
    if cfg.threads < 1:
        raise RecsysError(f"serve.threads must be >= 1, got {cfg.threads}")
    bundle = load_bundle(*ArtefactStore(cfg.artefacts_root).resolve(version))
    ranker = ranker_backend(cfg, bundle.ranker_dir, triton_url, bundle.version)
    if cfg.events.enabled:
        path = live_request_path(cfg, bundle, ranker)
    else:
        path = RequestPath(bundle, InMemoryUserStore.from_events(bundle.events, bundle.items),
                           ranker, cfg)
    limit_threads(cfg.threads)
    path.warm_up()
    return path


def live_request_path(cfg: ServeConfig, bundle: ServingBundle, ranker: RankerBackend | None
                      ) -> RequestPath:
    """The request path over the shared store: ``LiveUserStore`` for user state,
    ``OnlineTrending`` in place of the trained trending source, ``CatalogSync`` for titles."""
    from recsys.events.store import open_store
    from recsys.serving.catalog_sync import CatalogSync
    from recsys.serving.live_titles import LiveTitles
    from recsys.serving.live_users import LiveUserStore
    from recsys.serving.online_trending import OnlineTrending

    store = open_store(cfg.events, str(cfg.live_folder()))
    sources, trending = bundle.generator.sources, []
    for name, spec in list(sources.items()):
        if isinstance(spec.source, Trending):
            trending.append(OnlineTrending(spec.source))
            sources[name] = dataclasses.replace(spec, source=trending[-1])
    users = LiveUserStore(store, bundle.user_ids, limit=max(cfg.user_row_cache, 1))
    path = RequestPath(bundle, users, ranker, cfg)
    path.catalog_sync = CatalogSync(path, store)
    path.catalog_sync.sync()
    path.catalog_sync.start()
    path.live_titles = LiveTitles(path, store, trending, cfg.events.title_refresh_s)
    path.live_titles.refresh()
    path.live_titles.start()
    return path


def experiment_paths(path: RequestPath, cfg: ServeConfig, triton_url: str | None
                     ) -> ExperimentPaths:
    """The replica's experiments over its served ``path``: an arm naming another artefact
    version gets that version's own request path, built as the served one is (with no
    experiments of its own)."""
    from recsys.serving.experiment_paths import ExperimentPaths

    plain = dataclasses.replace(cfg, experiments={})
    return ExperimentPaths(path, cfg,
                           lambda version: build_request_path(plain, version, triton_url))


def ranker_backend(cfg: ServeConfig, ranker_dir: Path, triton_url: str | None,
                   version: str) -> RankerBackend | None:
    """The client of ``cfg.ranker``; None for ``none`` (candidates in merge order). Triton
    serves each artefact version as its own model (``recsys.runtime.triton_models``)."""
    kind = RankerKind(cfg.ranker)
    if kind is RankerKind.triton:
        from recsys.runtime.triton_models import model_name
        from recsys.serving.rankers import TritonRanker

        if not triton_url:
            raise RecsysError("serve.ranker=triton needs a running Triton (triton_url)")
        return TritonRanker(triton_url, model_name(version))
    if kind is RankerKind.onnx:
        from recsys.serving.rankers import OnnxRanker

        return OnnxRanker(ranker_dir / "model.onnx", threads=cfg.threads)
    return None


def limit_threads(threads: int) -> None:
    """Cap every BLAS / OpenMP / torch thread pool of this process at ``threads``.

    Called after the artefacts are loaded, because threadpoolctl only reaches libraries already
    loaded (torch brings its own libgomp, scipy and numpy their own OpenBLAS). With the default
    pools on 2 cores, threads spin against each other and against the other replicas, which
    multiplied the CPU per request.
    """
    import torch

    threadpoolctl.threadpool_limits(threads)
    torch.set_num_threads(threads)
