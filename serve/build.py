"""Build one replica's request path from config values (the deployment's constructor)."""

from __future__ import annotations

from typing import Any

import threadpoolctl

from recsys import RecsysError
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.bundle import load_bundle
from recsys.serving.request_path import PipelineParams, RecommendationPipeline
from recsys.serving.rerank import RerankParams
from recsys.serving.state import InMemoryUserStore

RANKERS = ("triton", "onnx", "none")


def build_pipeline(artefacts_root: str, version: str, ranker: str, triton_url: str | None,
                   params: dict[str, Any]) -> RecommendationPipeline:
    """``params``: ``rank_deadline_ms``, ``threads``, ``surface_sources`` and ``rerank`` (raw
    item ids)."""
    if ranker not in RANKERS:
        raise RecsysError(f"serve.ranker must be one of {', '.join(RANKERS)}, got {ranker!r}")
    threads = int(params.get("threads", 1))
    if threads < 1:
        raise RecsysError(f"serve.threads must be >= 1, got {threads}")
    bundle = load_bundle(*ArtefactStore(artefacts_root).resolve(version))
    store = InMemoryUserStore.from_events(bundle.events, bundle.items)
    backend = None
    if ranker == "triton":
        from recsys.serving.rankers import TritonRanker

        if not triton_url:
            raise RecsysError("serve.ranker=triton needs a running Triton (triton_url)")
        backend = TritonRanker(triton_url)
    elif ranker == "onnx":
        from recsys.serving.rankers import OnnxRanker

        backend = OnnxRanker(bundle.ranker_dir / "model.onnx", threads=threads)
    index = {int(t): i for i, t in enumerate(bundle.item_ids)}
    r = params.get("rerank", {})
    rerank = RerankParams(
        max_genre_share=float(r.get("max_genre_share", 0.2)),
        fresh_share=float(r.get("fresh_share", 0.0)), fresh_years=int(r.get("fresh_years", 2)),
        pin=[index[int(i)] for i in r.get("pin", []) if int(i) in index],
        boost={index[int(i)]: float(b) for i, b in r.get("boost", {}).items()
               if int(i) in index},
        demote=[index[int(i)] for i in r.get("demote", []) if int(i) in index])
    pipeline_params = PipelineParams(rerank=rerank,
                                     rank_deadline_ms=float(params.get("rank_deadline_ms", 50)),
                                     user_row_cache=int(params.get("user_row_cache", 100_000)))
    if params.get("surface_sources"):
        pipeline_params.surface_sources = dict(params["surface_sources"])
    pipeline = RecommendationPipeline(bundle, store, backend, pipeline_params)
    limit_threads(threads)
    pipeline.warm_up()
    return pipeline


def limit_threads(threads: int) -> None:
    """Cap every BLAS / OpenMP / torch thread pool of this process at ``threads``.

    Called after the artefacts are loaded, because threadpoolctl only reaches libraries already
    loaded (torch brings its own libgomp, scipy and numpy their own OpenBLAS). Measured on 2
    cores, random users: 57 ms of CPU per request with the default pools (threads spinning
    against each other and against the other replicas), 17 ms with one thread each.
    """
    import torch

    threadpoolctl.threadpool_limits(threads)
    torch.set_num_threads(threads)

