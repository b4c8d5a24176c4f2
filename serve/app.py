"""The Ray Serve application: a FastAPI ingress (``Router``) in front of the request path
(``Recommender``, serve/recommender.py), each its own deployment so a platform team scales them
apart.

    client ─HTTP─► Router (FastAPI: validation, errors, /metrics) ─handle─► Recommender replica
                                                                             │ artefacts loaded
                                                                             │ once per replica
                                                                             └─gRPC─► Triton

Deployment options (replicas, ``max_ongoing_requests``, ``max_queued_requests``, autoscaling)
come from ``configs/serve/`` via ``deployment_options`` (``serve.router``, and ``serve.pipeline``
for the recommender). Stage latencies come back with each result and are recorded by the
router, so ``/metrics`` has them per stage, with the rows each request sent to the ranker and
Triton's own rows / executions counters (``serve/metrics.py``). Errors cross the handle as
exceptions and become status codes here only (``serve/http_errors.py``).

``POST /v1/items`` (admin) adds titles to the catalog of the Recommender replica that handles
the call, in memory: with several replicas (or after a restart) the others do not have them, so
run catalog changes against one replica, or republish the bundle. Ray Serve has no call that
reaches every replica of a deployment.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at runtime.

import time
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from ray import serve

from recsys import RecsysError
from recsys.serving.settings import DeploymentConfig
from serve import metrics
from serve.http_errors import route_messages, status_and_detail, validation_messages
from serve.recommender import Recommender
from serve.schemas import (
    MAX_N,
    NEW_TITLES,
    QUERY_ID,
    AddedTitles,
    RecommendationQuery,
    RecommendationResponse,
)

api = FastAPI(title="recsys", version="1",
              description="Recommendations per surface, with reasons, from the recsys stack.")


def deployment_options(cfg: DeploymentConfig) -> dict[str, Any]:
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


@api.exception_handler(RequestValidationError)
async def route_validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
    """FastAPI's checks of a route's parameters, in the shape of every other 422."""
    return JSONResponse({"detail": route_messages(err)}, status_code=422)


@api.exception_handler(RecsysError)
async def request_path_error(request: Request, err: RecsysError) -> JSONResponse:
    """An error the request path raised (through the handle): 409 or 422, naming the
    parameter (``serve/http_errors.py``)."""
    status, detail = status_and_detail(err)
    return JSONResponse({"detail": detail}, status_code=status)


class InProcess:
    """The request path inside the router's replica (``serve.topology=fused``), called as the
    ``Recommender`` deployment's handle is: ``await recommender.recommend.remote(...)``."""

    def __init__(self, *recommender_args: Any) -> None:
        recommender = Recommender.func_or_class(*recommender_args)
        for name in ("recommend", "similar", "add_titles", "ready"):  # the router's calls
            setattr(self, name, _Remote(getattr(recommender, name)))


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
    """``recommender``: the ``Recommender`` deployment's handle (``serve.topology=split``), or
    the ``Recommender`` constructor's arguments as a tuple (``fused``: one replica does both,
    one Ray Serve hop less per request)."""

    def __init__(self, recommender, triton_metrics_url: str | None = None) -> None:
        self.recommender = (InProcess(*recommender) if isinstance(recommender, tuple)
                            else recommender)
        self.triton_metrics_url = triton_metrics_url  # None: no Triton lines in /metrics

    @api.get("/v1/recommendations", response_model=RecommendationResponse)
    async def recommendations(
        self,
        user_id: Annotated[str, Query(description="raw user id; unknown = cold start")],
        surface: Annotated[str, Query(description="home | search | post_play")] = "home",
        n: Annotated[int, Query(description="titles to return, 1..100")] = 20,
        query: Annotated[str | None, Query(description="search text (surface=search)")] = None,
        item_id: Annotated[str | None, Query(description="title just watched (post_play)")]
        = None,
        region: str | None = None,
        max_maturity: Annotated[str | None, Query(description="G | PG | PG-13 | R | NC-17")]
        = None,
        exclude: Annotated[list[str] | None, Query(description="item ids to leave out")] = None,
    ) -> RecommendationResponse:
        start = time.perf_counter()
        try:
            q = RecommendationQuery(user_id=user_id, surface=surface, n=n, query=query,
                                    item_id=item_id, region=region, max_maturity=max_maturity,
                                    exclude=exclude or [])
        except ValidationError as err:
            raise HTTPException(422, detail=validation_messages(err)) from None
        out = await self.recommender.recommend.remote(q.model_dump())
        return self._respond(out, start)

    @api.get("/v1/items/{item_id}/similar", response_model=RecommendationResponse)
    async def similar(self, item_id: Annotated[str, Path(description="raw title id")],
                      n: Annotated[int, Query(ge=1, le=MAX_N)] = 20) -> RecommendationResponse:
        start = time.perf_counter()
        try:
            title = QUERY_ID.validate_python(item_id)
        except ValidationError as err:
            raise HTTPException(422, detail=validation_messages(err, root="item_id")) from None
        out = await self.recommender.similar.remote(title, n)
        out["user_id"] = None
        return self._respond(out, start)

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(self) -> dict[str, Any]:
        state = await self.recommender.ready.remote()
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
        (search, post-play). Reaches the one Recommender replica that handles it (module
        doc); a title id the catalog has is a 409."""
        try:
            titles = NEW_TITLES.validate_python(items)
        except ValidationError as err:
            raise HTTPException(422, detail=validation_messages(err, root="items")) from None
        out = await self.recommender.add_titles.remote([t.model_dump() for t in titles])
        return AddedTitles(**out)

    def _respond(self, out: dict[str, Any], start: float) -> RecommendationResponse:
        metrics.observe(out, time.perf_counter() - start)
        return RecommendationResponse(**{k: out[k] for k in (
            "surface", "user_id", "cold_start", "items", "degraded", "version")})
