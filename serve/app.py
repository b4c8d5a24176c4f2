"""The Ray Serve application: a FastAPI ingress (``Router``) in front of the request path
(``Pipeline``), each its own deployment so a platform team scales them apart.

    client ─HTTP─► Router (FastAPI: validation, 422s, /metrics) ─handle─► Pipeline replica
                                                                           │  artefacts loaded
                                                                           │  once per replica
                                                                           └─gRPC─► Triton

Deployment options (replicas, ``max_ongoing_requests``, ``max_queued_requests``, autoscaling)
come from ``configs/serve/`` via ``deployment_options``. Stage latencies come back with each
result and are recorded by the router, so ``/metrics`` has them per stage, with the rows each
request sent to the ranker and Triton's own rows / executions counters (``serve/metrics.py``).

``POST /v1/items`` (admin) adds titles to the catalog of the Pipeline replica that handles the
call, in memory: with several replicas (or after a restart) the others do not have them, so run
catalog changes against one replica, or republish the bundle. Ray Serve has no call that reaches
every replica of a deployment.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at runtime.

import time
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Path, Query
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from ray import serve

from recsys import RecsysError
from serve import metrics
from serve.schemas import (
    MAX_N,
    NEW_TITLES,
    AddedTitles,
    RecommendationQuery,
    RecommendationResponse,
)

api = FastAPI(title="recsys", version="1",
              description="Recommendations per surface, with reasons, from the recsys stack.")


def deployment_options(cfg: Any) -> dict[str, Any]:
    """Ray Serve options of one deployment from its ``DeploymentConfig``."""
    out: dict[str, Any] = {"max_ongoing_requests": int(cfg.max_ongoing_requests),
                           "max_queued_requests": int(cfg.max_queued_requests),
                           "ray_actor_options": {"num_cpus": float(cfg.num_cpus)},
                           "logging_config": {"enable_access_log": bool(cfg.access_log)}}
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

    # async on purpose: the CPU stages run on the replica's event loop one request at a time
    # (threads would only fight over the GIL: 48 vs 44 req/s measured), and the rank stage
    # awaits Triton over async gRPC, so the loop computes another request meanwhile
    async def recommend(self, query: dict[str, Any]) -> dict[str, Any]:
        try:
            result = await self.pipeline.recommend_async(self.request_type(**query))
        except RecsysError as err:
            return {"error": str(err)}
        return _result_dict(result, self.pipeline.ranker is not None)

    async def similar(self, item_id: int, n: int) -> dict[str, Any]:
        try:
            return _result_dict(await self.pipeline.similar_async(item_id, n),
                                self.pipeline.ranker is not None)
        except RecsysError as err:
            return {"error": str(err)}

    def add_titles(self, titles: list[dict[str, Any]]) -> dict[str, Any]:
        """Titles (``NewTitle`` dicts) into this replica's catalog; an error carries its HTTP
        status: 409 for an id the catalog has, 422 for anything else the client can fix."""
        import pandas as pd

        from recsys.serving.catalog import DuplicateItemError

        try:
            self.pipeline.add_titles(pd.DataFrame(titles))
        except DuplicateItemError as err:
            return {"error": str(err), "status": 409}
        except RecsysError as err:
            return {"error": str(err), "status": 422}
        return {"item_ids": [int(t["item_id"]) for t in titles],
                "catalog_size": self.pipeline.catalog.n_items,
                "version": self.pipeline.bundle.version}

    def ready(self) -> dict[str, Any]:
        ranker = self.pipeline.ranker
        live = getattr(ranker, "live", lambda: ranker is not None)()
        return {"version": self.pipeline.bundle.version, "ranker": getattr(ranker, "name", None),
                "ranker_live": bool(live)}


def validation_messages(err: ValidationError, root: str = "") -> list[dict[str, str]]:
    """One {parameter, message} per problem: what a client needs to fix the request. ``root``
    names a JSON body, whose list positions read as ``items[0].title``."""
    out = []
    for e in err.errors():
        where = root + "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in e["loc"])
        where = where.lstrip(".") or _parameter_in(e["msg"])
        out.append({"parameter": where, "message": e["msg"].removeprefix("Value error, ")})
    return out


def _parameter_in(message: str) -> str:
    """The parameter a model-level rule names ("query is required when ...")."""
    return message.removeprefix("Value error, ").split(" ", 1)[0]


def _result_dict(result, ranked: bool) -> dict[str, Any]:
    """The result for the router, plus ``rank_rows``: what the rank stage sent to the ranker,
    the merged candidates the filters kept (none when no ranker is configured)."""
    out = dict(vars(result))  # one level: dataclasses.asdict deep-copies every item (slow)
    out["items"] = [vars(item) for item in result.items]
    out["rank_rows"] = result.candidates - sum(result.filtered.values()) if ranked else 0
    return out


class InProcess:
    """The pipeline inside the router's replica (``serve.topology=fused``), called as the
    ``Pipeline`` deployment's handle is: ``await pipeline.recommend.remote(...)``."""

    def __init__(self, *pipeline_args: Any) -> None:
        pipeline = Pipeline.func_or_class(*pipeline_args)
        for name in ("recommend", "similar", "add_titles", "ready"):  # the router's calls
            setattr(self, name, _Remote(getattr(pipeline, name)))


class _Remote:
    """``.remote(*args)`` awaitable for a local method, sync or async."""

    def __init__(self, method: Any) -> None:
        self.method = method

    async def remote(self, *args: Any) -> Any:
        out = self.method(*args)
        return await out if hasattr(out, "__await__") else out


@serve.deployment
@serve.ingress(api)
class Router:
    """``pipeline``: the ``Pipeline`` deployment's handle (``serve.topology=split``), or the
    ``Pipeline`` constructor's arguments as a tuple (``fused``: one replica does both, one
    Ray Serve hop less per request)."""

    def __init__(self, pipeline, triton_metrics_url: str | None = None) -> None:
        self.pipeline = InProcess(*pipeline) if isinstance(pipeline, tuple) else pipeline
        self.triton_metrics_url = triton_metrics_url  # None: no Triton lines in /metrics

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
        triton = await metrics.scrape_triton(self.triton_metrics_url)
        return PlainTextResponse(metrics.exposition(triton), media_type=metrics.CONTENT_TYPE)

    @api.post("/v1/items", status_code=201, response_model=AddedTitles)
    async def add_items(
        self,
        items: Annotated[Any, Body(description="a JSON list of new titles: item_id, title, "
                                               "and optionally year, genres, tags, "
                                               "maturity_rating, regions")],
    ) -> AddedTitles:
        """Admin: add titles to the catalog, reachable at once through content similarity
        (search, post-play). Reaches the one Pipeline replica that handles it (module doc)."""
        try:
            titles = NEW_TITLES.validate_python(items)
        except ValidationError as err:
            raise HTTPException(422, detail=validation_messages(err, root="items")) from None
        out = await self.pipeline.add_titles.remote([t.model_dump() for t in titles])
        if "error" in out:
            raise HTTPException(out["status"], detail=out["error"])
        return AddedTitles(**out)

    def _respond(self, out: dict[str, Any], start: float) -> RecommendationResponse:
        if "error" in out:
            raise HTTPException(422, detail=out["error"])
        metrics.observe(out, time.perf_counter() - start)
        return RecommendationResponse(**{k: out[k] for k in (
            "surface", "user_id", "cold_start", "items", "degraded", "version")})
