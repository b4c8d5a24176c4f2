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

Live events (``serve.events.enabled``, the default): ``POST /v1/events`` appends to the durable
log here (``serve/events_api.py``); every replica reads the shared store the processor keeps.
``POST /v1/items`` goes through the log too: titles are checked on a replica, appended, applied,
then every replica adds them (the one that answers at once, the others within a second). Write
endpoints need a write key (``serve/auth.py``); with events off, titles reach one replica only.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at runtime.

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from ray import serve

from recsys import RecsysError
from recsys.events.log import LogUnavailable
from recsys.experiments.exposures import exposure_record
from recsys.serving.settings import DeploymentConfig
from serve import metrics
from serve.auth import ApiKeys, AuthError, Role, authorize
from serve.events_api import EventsEndpoint, auth_error, error, unavailable
from serve.exposures import ExposureWriter
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
        for name in ("recommend", "similar", "add_titles", "check_titles", "sync_catalog",
                     "ready", "reconfigure"):  # the router's calls
            setattr(self, name, _Remote(getattr(recommender, name)))


class _Remote:  # ``.remote(*args)`` awaitable for a local method, sync or async

    def __init__(self, method: Any) -> None:
        self.method = method

    async def remote(self, *args: Any) -> Any:
        out = self.method(*args)
        return await out if hasattr(out, "__await__") else out


@serve.deployment
@serve.ingress(api)
class Router:
    """``recommender``: the ``Recommender`` deployment's handle (``serve.topology=split``), or
    its constructor's arguments as a tuple (``fused``: one replica does both, one hop less).
    ``events``: ``EventsEndpoint``'s arguments (None: live events off)."""

    def __init__(self, recommender, triton_metrics_url: str | None = None,
                 events: tuple | None = None, keys: ApiKeys | None = None,
                 read_needs_key: bool = False, canary_file: str | None = None) -> None:
        self.canary_file = canary_file  # the canary's state, shown in /metrics
        self.recommender = (InProcess(*recommender) if isinstance(recommender, tuple)
                            else recommender)
        self.triton_metrics_url = triton_metrics_url  # None: no Triton lines in /metrics
        self.keys = keys if keys is not None else ApiKeys()  # none: every write refused
        self.read_needs_key = read_needs_key
        self.events = EventsEndpoint(*events, self.keys) if events is not None else None
        # one writer thread: appends serialise on the log anyway, and more threads only
        # trade the GIL among themselves (4 concurrent batches: 15% fewer events/s)
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="events")
        self.exposures = (ExposureWriter(self.events.log, self.writer)
                          if self.events is not None and self.events.cfg.exposures else None)

    async def reconfigure(self, user_config: dict[str, Any]) -> None:  # fused: the hot swap
        if isinstance(self.recommender, InProcess):
            await self.recommender.reconfigure.remote(user_config)

    def refused(self, request: Request, role: Role, endpoint: str) -> JSONResponse | None:
        """The 401 / 403 for a request without the key ``role`` needs, or None."""
        try:
            authorize(self.keys, request.headers, role, endpoint=endpoint,
                      read_needs_key=self.read_needs_key)
        except AuthError as err:
            return auth_error(err)
        return None

    @api.get("/v1/recommendations", response_model=RecommendationResponse)
    async def recommendations(
        self,
        request: Request,
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
        if self.read_needs_key and (no := self.refused(request, Role.read, "recommendations")):
            return no
        try:
            q = RecommendationQuery(user_id=user_id, surface=surface, n=n, query=query,
                                    item_id=item_id, region=region, max_maturity=max_maturity,
                                    exclude=exclude or [])
        except ValidationError as err:
            raise HTTPException(422, detail=validation_messages(err)) from None
        out = await self.recommender.recommend.remote(
            {**q.model_dump(), "request_id": uuid.uuid4().hex})
        return self._respond(out, start, log_exposure=True)

    @api.get("/v1/items/{item_id}/similar", response_model=RecommendationResponse)
    async def similar(self, request: Request,
                      item_id: Annotated[str, Path(description="raw title id")],
                      n: Annotated[int, Query(ge=1, le=MAX_N)] = 20) -> RecommendationResponse:
        start = time.perf_counter()
        if self.read_needs_key and (no := self.refused(request, Role.read, "similar")):
            return no
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
        return PlainTextResponse(metrics.exposition(triton, self.canary_file),
                                 media_type=metrics.CONTENT_TYPE)

    @api.post("/v1/events", status_code=202)
    async def post_events(self, request: Request) -> JSONResponse:
        """A JSON array of events (``recsys.events.records.Event``); 202 once durable
        (``serve/events_api.py`` for every status)."""
        if self.events is None:
            return error(404, "live events are off on this server (serve.events.enabled)")
        if no := self.refused(request, Role.write, "POST /v1/events"):
            return no
        body = await self.events.body(request)
        if isinstance(body, JSONResponse):
            return body
        # on a worker thread: a batch of 1,000 is ~20 ms of parsing and a durable write, which
        # on the event loop would hold every recommendation request queued behind it
        return await asyncio.get_running_loop().run_in_executor(self.writer, self.events.post,
                                                                body)

    @api.post("/v1/events/discard", status_code=202)
    async def discard_events(self, request: Request) -> JSONResponse:
        """The ingress floor (``serve.events.discard_endpoint``): key and body as for
        ``/v1/events``, then dropped."""
        if self.events is None or not self.events.cfg.discard_endpoint:
            return error(404, "POST /v1/events/discard is off (serve.events.discard_endpoint)")
        if no := self.refused(request, Role.write, "POST /v1/events/discard"):
            return no
        body = await self.events.body(request)
        if isinstance(body, JSONResponse):
            return body
        return JSONResponse({"accepted": 0, "duplicates": 0, "rejected": []}, status_code=202)

    @api.get("/v1/events/dead-letters")
    async def dead_letters(self, request: Request,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                           offset: Annotated[int, Query(ge=0)] = 0) -> JSONResponse:
        """Refused and late events, newest first (any API key: they hold user data)."""
        if self.events is None:
            return error(404, "live events are off on this server (serve.events.enabled)")
        try:
            authorize(self.keys, request.headers, Role.read,
                      endpoint="GET /v1/events/dead-letters", read_needs_key=True)
            log = self.events.log
            letters = log.dead_letters(limit, offset)
            total = log.dead_letter_count()
        except AuthError as err:
            return auth_error(err)
        except LogUnavailable as err:
            return unavailable(err)
        return JSONResponse({"total": total, "dead_letters": [vars(d) for d in letters]})

    @api.post("/v1/items", status_code=201, response_model=AddedTitles)
    async def add_items(
        self,
        request: Request,
        items: Annotated[Any, Body(description="a JSON list of new titles: item_id, title, "
                                               "and optionally year, genres, tags, "
                                               "maturity_rating, regions")],
    ) -> AddedTitles:
        """Admin: add titles to the catalog, reachable through content similarity (search,
        post-play) at once on the replica that answers and within a second on the others
        (module doc); a title id the catalog has is a 409."""
        if no := self.refused(request, Role.write, "POST /v1/items"):
            return no
        try:
            titles = NEW_TITLES.validate_python(items)
        except ValidationError as err:
            raise HTTPException(422, detail=validation_messages(err, root="items")) from None
        rows = [t.model_dump() for t in titles]
        if self.events is None:
            return AddedTitles(**await self.recommender.add_titles.remote(rows))
        await self.recommender.check_titles.remote(rows)  # 409 / 422, nothing changed
        try:
            out = await asyncio.get_running_loop().run_in_executor(
                self.writer, self.events.append_titles, rows)
        except LogUnavailable as err:
            return unavailable(err)
        if out.duplicates:
            taken = [rows[i]["item_id"] for i in out.duplicates]
            raise HTTPException(409, detail=[{"parameter": "item_id", "message":
                                f"item_id {taken} already in the catalog"}])
        await self.events.applied([r["item_id"] for r in rows])
        return AddedTitles(**await self.recommender.sync_catalog.remote(
            [r["item_id"] for r in rows]))

    def _respond(self, out: dict[str, Any], start: float, log_exposure: bool = False
                 ) -> RecommendationResponse:
        seconds = time.perf_counter() - start
        metrics.observe(out, seconds)
        if log_exposure and self.exposures is not None:
            self.exposures.add(exposure_record(out, int(time.time() * 1000), seconds * 1e3))
        return RecommendationResponse(**{k: out[k] for k in (
            "surface", "user_id", "cold_start", "items", "degraded", "version", "experiments")},
            **({"request_id": out["request_id"]} if out.get("request_id") else {}))
