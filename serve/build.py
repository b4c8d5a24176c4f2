"""Build one replica's request path from the serving settings (the deployment's constructor)."""

from __future__ import annotations

from pathlib import Path

import threadpoolctl

from recsys import RecsysError
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.bundle import load_bundle
from recsys.serving.rankers import RankerBackend
from recsys.serving.request_path import RequestPath
from recsys.serving.settings import RankerKind, ServeConfig
from recsys.serving.state import InMemoryUserStore


def build_request_path(cfg: ServeConfig, version: str, triton_url: str | None) -> RequestPath:
    """The artefact ``version`` under ``cfg.artefacts_root``, with ``cfg``'s ranker (Triton at
    ``triton_url``), warmed up. ``cfg`` is used as given: its defaults are the schema's."""
    if cfg.threads < 1:
        raise RecsysError(f"serve.threads must be >= 1, got {cfg.threads}")
    bundle = load_bundle(*ArtefactStore(cfg.artefacts_root).resolve(version))
    store = InMemoryUserStore.from_events(bundle.events, bundle.items)
    path = RequestPath(bundle, store, ranker_backend(cfg, bundle.ranker_dir, triton_url), cfg)
    limit_threads(cfg.threads)
    path.warm_up()
    return path


def ranker_backend(cfg: ServeConfig, ranker_dir: Path, triton_url: str | None
                   ) -> RankerBackend | None:
    """The client of ``cfg.ranker``; None for ``none`` (candidates in merge order)."""
    kind = RankerKind(cfg.ranker)
    if kind is RankerKind.triton:
        from recsys.serving.rankers import TritonRanker

        if not triton_url:
            raise RecsysError("serve.ranker=triton needs a running Triton (triton_url)")
        return TritonRanker(triton_url)
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
