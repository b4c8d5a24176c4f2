"""The Ray Serve application: a FastAPI ingress (``Router``) in front of the request path
(``Pipeline``), each its own deployment so a platform team scales them apart.

    client ─HTTP─► Router (FastAPI: validation, 422s, /metrics) ─handle─► Pipeline replica
                                                                           │  artefacts loaded
                                                                           │  once per replica
                                                                           └─gRPC─► Triton

Deployment options (replicas, ``max_ongoing_requests``, ``max_queued_requests``, autoscaling)
come from ``configs/serve/`` via ``deployment_options``. Stage latencies come back with each
result and are recorded by the router, so ``/metrics`` has them per stage.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at runtime.

import time
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from ray import serve

from recsys import RecsysError
from serve import metrics
from serve.schemas import MAX_N, RecommendationQuery, RecommendationResponse

api = FastAPI(title="recsys", version="1",
              description="Recommendations per surface, with reasons, from the recsys stack.")


def deployment_options(cfg: Any) -> dict[str, Any]:
    """Ray Serve options of one deployment from its ``DeploymentConfig``."""
    out: dict[str, Any] = {"max_ongoing_requests": int(cfg.max_ongoing_requests),
                           "max_queued_requests": int(cfg.max_queued_requests),
                           "ray_actor_options": {"num_cpus": float(cfg.num_cpus)}}
    a = cfg.autoscaling
    if a.enabled:
        out["autoscaling_config"] = {
            "min_replicas": int(a.min_replicas), "max_replicas": int(a.max_replicas),
            "target_ongoing_requests": float(a.target_ongoing_requests),
            "upscale_delay_s": float(a.upscale_delay_s),
            "downscale_delay_s": float(a.downscale_delay_s)}
    else:
        out["num_replicas"] = int(cfg.num_replicas)
    return out


@serve.deployment
class Pipeline:
    """One replica: the artefact version, the user store and a ranker client, loaded once."""

    def __init__(self, artefacts_root: str, version: str, ranker: str, triton_url: str | None,
                 params: dict[str, Any]) -> None:
        # imported here, not at module top: the router process never loads torch or the models
        from recsys.serving.request_path import Request
        from serve.build import build_pipeline

        self.pipeline = build_pipeline(artefacts_root, version, ranker, triton_url, params)
        self.request_type = Request

    def recommend(self, query: dict[str, Any]) -> dict[str, Any]:
        try:
            result = self.pipeline.recommend(self.request_type(**query))
        except RecsysError as err:
            return {"error": str(err)}
        return _result_dict(result)

    def similar(self, item_id: int, n: int) -> dict[str, Any]:
        try:
            return _result_dict(self.pipeline.similar(item_id, n))
        except RecsysError as err:
            return {"error": str(err)}

    def ready(self) -> dict[str, Any]:
        ranker = self.pipeline.ranker
        live = getattr(ranker, "live", lambda: ranker is not None)()
        return {"version": self.pipeline.bundle.version, "ranker": getattr(ranker, "name", None),
                "ranker_live": bool(live)}


def validation_messages(err: ValidationError) -> list[dict[str, str]]:
    """One {parameter, message} per problem: what a client needs to fix the request."""
    out = []
    for e in err.errors():
        where = ".".join(str(x) for x in e["loc"]) or _parameter_in(e["msg"])
        out.append({"parameter": where, "message": e["msg"].removeprefix("Value error, ")})
    return out


def _parameter_in(message: str) -> str:
    """The parameter a model-level rule names ("query is required when ...")."""
    return message.removeprefix("Value error, ").split(" ", 1)[0]


def _result_dict(result) -> dict[str, Any]:
    return asdict(result)


@serve.deployment
@serve.ingress(api)
class Router:
    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    @api.get("/v1/recommendations", response_model=RecommendationResponse)
    async def recommendations(
        self,
        user_id: Annotated[int, Query(description="raw user id; unknown = cold start")],
        surface: Annotated[str, Query(description="home | search | post_play")] = "home",
        n: Annotated[int, Query(description="titles to return, 1..100")] = 20,
        query: Annotated[str | None, Query(description="search text (surface=search)")] = None,
        item_id: Annotated[int | None, Query(description="title just watched (post_play)")]
        = None,
        region: str | None = None,
        max_maturity: Annotated[str | None, Query(description="G | PG | PG-13 | R | NC-17")]
        = None,
        exclude: Annotated[list[int] | None, Query(description="item ids to leave out")] = None,
    ) -> RecommendationResponse:
        start = time.perf_counter()
        try:
            q = RecommendationQuery(user_id=user_id, surface=surface, n=n, query=query,
                                    item_id=item_id, region=region, max_maturity=max_maturity,
                                    exclude=exclude or [])
        except ValidationError as err:
            raise HTTPException(422, detail=validation_messages(err)) from None
        out = await self.pipeline.recommend.remote(q.model_dump())
        return self._respond(out, start)

    @api.get("/v1/items/{item_id}/similar", response_model=RecommendationResponse)
    async def similar(self, item_id: Annotated[int, Path()],
                      n: Annotated[int, Query(ge=1, le=MAX_N)] = 20) -> RecommendationResponse:
        start = time.perf_counter()
        out = await self.pipeline.similar.remote(item_id, n)
        if "error" not in out:
            out["user_id"] = None
        return self._respond(out, start)

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(self) -> dict[str, Any]:
        state = await self.pipeline.ready.remote()
        if not state["ranker_live"]:
            raise HTTPException(503, detail={"status": "ranker not live", **state})
        return {"status": "ready", **state}

    @api.get("/metrics", response_class=PlainTextResponse)
    async def metrics_text(self) -> PlainTextResponse:
        return PlainTextResponse(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    def _respond(self, out: dict[str, Any], start: float) -> RecommendationResponse:
        if "error" in out:
            raise HTTPException(422, detail=out["error"])
        metrics.observe(out, time.perf_counter() - start)
        return RecommendationResponse(**{k: out[k] for k in (
            "surface", "user_id", "cold_start", "items", "degraded", "version")})
