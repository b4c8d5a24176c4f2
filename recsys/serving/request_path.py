"""One recommendation request, stage by stage:

    features -> candidates -> filters -> rank -> rerank -> response

``RequestPath.recommend`` calls one method per stage in that order, each taking the earlier
stages' outputs (small dataclasses) and timing itself into the request's own ``timings_ms``.
A stage that fails falls back instead of failing the request, and the response lists it in
``degraded``: a ranker that is down, slow past its deadline or erroring leaves the candidates in
merge order (``degraded=["rank"]``), and the next request tries the ranker again, so
personalisation returns by itself.

Surfaces choose their sources: home asks every source; search asks the sources named for it
(content: the query embedded with the content model), then the ranker personalises; post-play
asks co-watch and content neighbours of the title just watched. A user the models never saw
(cold start) gets what needs no history: trending, and content from ``item_id`` / ``query``.

``recommend`` is a coroutine: a serving replica runs it on its event loop, and while Triton
scores one request the loop runs another request's CPU stages. ``recommend_sync`` is the same
stages on the calling thread for tests, benchmarks and warm-up (the ranker called blockingly).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy as np

from recsys.candidates.generator import CandidateGenerator
from recsys.candidates.types import Context, UserHistory
from recsys.serving import rerank as reranking
from recsys.serving.bundle import ServingBundle
from recsys.serving.catalog import ItemCatalog
from recsys.serving.explain import reason
from recsys.serving.filters import FilterRequest, filter_candidates
from recsys.serving.live_catalog import LiveCatalog
from recsys.serving.ranker_inputs import request_batch
from recsys.serving.rankers import RankerBackend
from recsys.serving.row_cache import UserRowCache
from recsys.serving.settings import ItemRules, ServeConfig
from recsys.serving.stages import (
    ANONYMOUS,
    STAGES,
    Candidates,
    Features,
    Kept,
    Ranked,
    Recommendation,
    Request,
    Result,
    StageClock,
)
from recsys.serving.state import UserStore

log = logging.getLogger(__name__)

__all__ = ["ANONYMOUS", "STAGES", "Recommendation", "Request", "RequestPath", "Result"]
T = TypeVar("T")
WARM_UP_DEADLINE_MS = 30_000.0  # the ranker's first call may load its model


class RequestPath:
    """Loaded once per replica: artefacts, the live catalog, per-surface generators, the user
    rows. ``cfg``: the serving settings it reads (surface sources, rank deadline, rerank, row
    cache); ``ranker`` None = no ranker (merge order, ``degraded=["rank"]``).

    >>> path = RequestPath(bundle, store, OnnxRanker(bundle.ranker_dir / "model.onnx"))
    >>> result = await path.recommend(Request(user_id=1, n=10))  # or path.recommend_sync(...)
    """

    def __init__(self, bundle: ServingBundle, store: UserStore, ranker: RankerBackend | None,
                 cfg: ServeConfig | None = None) -> None:
        self.bundle, self.store, self.ranker = bundle, store, ranker
        self.cfg = cfg or ServeConfig()
        self.live = LiveCatalog.from_bundle(bundle, self.cfg.rerank)  # swapped, never changed
        self.user_index = {int(u): i for i, u in enumerate(bundle.user_ids)}
        self.generators = self.surface_generators(self.cfg)
        attach = getattr(store, "attach", None)  # a live store reads this replica's catalog
        if attach is not None:
            attach(lambda: self.live)
        self.rows = UserRowCache(bundle.builder, self.cfg.user_row_cache)
        self.rows.prefill(store, len(bundle.user_ids))

    def surface_generators(self, cfg: ServeConfig) -> dict[str, CandidateGenerator]:
        """Per surface, the bundle's sources it asks (``serve.surface_sources``), with
        ``serve.candidate_quotas`` in place of the trained quotas where set."""
        sources = self.bundle.generator.sources
        out: dict[str, CandidateGenerator] = {}
        for surface, names in cfg.surface_sources.items():
            chosen = list(sources) if names is None else [n for n in names if n in sources]
            out[surface] = CandidateGenerator(
                {n: (dataclasses.replace(sources[n], quota=int(cfg.candidate_quotas[n]))
                     if n in cfg.candidate_quotas else sources[n]) for n in chosen},
                positive_threshold=self.bundle.generator.positive_threshold)
        return out

    def rules(self, live: LiveCatalog) -> ItemRules:
        """The business rules in ``live``'s indices (an arm may have its own: ``ArmPath``)."""
        return live.rules

    @property
    def catalog(self) -> ItemCatalog:
        return self.live.catalog

    @property
    def item_index(self) -> dict[int, int]:
        return self.live.item_index

    # -- the request ----------------------------------------------------------------------
    async def recommend(self, req: Request, *, deadline_ms: float | None = None,
                        blocking: bool = False) -> Result:
        """The request, stage by stage, awaiting the ranker (async gRPC to Triton).
        ``deadline_ms``: the ranker's budget (default ``serve.rank_deadline_ms``);
        ``blocking``: call the ranker's sync client instead (``recommend_sync``)."""
        deadline_ms = self.cfg.rank_deadline_ms if deadline_ms is None else deadline_ms
        clock = StageClock()
        features = clock.lap("features", self.features(req))
        candidates = clock.lap("candidates", self.candidates(features))
        kept = clock.lap("filters", self.filters(features, candidates))
        ranked = clock.lap("rank", await self.rank(features, kept, deadline_ms, blocking))
        top = clock.lap("rerank", self.rerank(features, ranked))
        return clock.lap("response", self.response(features, candidates, kept, ranked, top,
                                                   clock.ms))

    def recommend_sync(self, req: Request, deadline_ms: float | None = None) -> Result:
        """The same stages on the calling thread, the ranker called blockingly (its sync
        client is per thread, where an aio client belongs to one event loop). Needs no event
        loop, so it also works from code already running in one."""
        return run_now(self.recommend(req, deadline_ms=deadline_ms, blocking=True))

    async def similar(self, item_id: int, n: int = 20) -> Result:
        """"More like this" for a title, for nobody in particular: the post-play sources on the
        cold-start path (no history, no ranker personalisation to speak of)."""
        return await self.recommend(similar_request(item_id, n))

    def similar_sync(self, item_id: int, n: int = 20) -> Result:
        return self.recommend_sync(similar_request(item_id, n))

    def warm_up(self) -> None:
        """One request with a generous deadline, so the first real request does not pay for
        the ranker's first call (Triton's Python backend loads the model lazily)."""
        user = int(self.bundle.user_ids[0]) if len(self.bundle.user_ids) else ANONYMOUS
        self.recommend_sync(Request(user_id=user, n=10), deadline_ms=WARM_UP_DEADLINE_MS)

    # -- stages -----------------------------------------------------------------------------
    def features(self, req: Request) -> Features:
        """Who asks and from where: the user's state and history, the seed title, and the
        ranker's user inputs (the user's cached row; none without a ranker)."""
        live = self.live  # this request's catalog snapshot, read by every later stage
        user_idx = self.user_index.get(int(req.user_id))
        state, degraded = self.store.for_user(int(req.user_id), user_idx)
        seed = live.index_of(req.item_id, "item_id") if req.item_id is not None else None
        history = state.history() if state is not None else UserHistory(
            None, np.empty(0, np.int64))
        row = self.rows.get(user_idx, state) if self.ranker is not None else None
        return Features(req, live, user_idx, state, history, seed, row, degraded)

    def candidates(self, f: Features) -> Candidates:
        """The surface's sources, merged; credits are left for the titles shown."""
        generator = self.generators[f.req.surface]
        context = Context(surface=f.req.surface, query=f.req.query, seed_item=f.seed,
                          explain=False)
        source_ms: dict[str, float] = {}
        merged = generator.generate(f.history, context, source_ms)
        return Candidates(merged, generator, source_ms,
                          [f"candidates:{name}" for name in merged.failed_sources])

    def filters(self, f: Features, c: Candidates) -> Kept:
        """What the response must never contain, removed before the ranker pays for it."""
        index = f.live.item_index
        exclude = [index[i] for i in f.req.exclude if i in index]
        if f.seed is not None:
            exclude.append(f.seed)
        profile = f.state.profile if f.state is not None else {}
        result = filter_candidates(c.merged.items, f.live.catalog, FilterRequest(
            watched=f.history.items,
            disliked_genres=f.state.disliked_genres if f.state else frozenset(),
            max_maturity=f.req.max_maturity or profile.get("max_maturity"),
            region=f.req.region or profile.get("region"), exclude=np.array(exclude, np.int64)))
        return Kept(c.merged.take(np.flatnonzero(result.keep)), result.removed)

    async def rank(self, f: Features, k: Kept, deadline_ms: float, blocking: bool = False
                   ) -> Ranked:
        """P(engaged) per kept candidate, or merge order (1, 1/2, 1/3...) with ``degraded``
        naming the stage when there is no ranker, or it fails or misses ``deadline_ms``.
        ``blocking``: the ranker's sync call (``recommend_sync``)."""
        if not len(k.kept):
            return Ranked(k.kept, k.merge_order(), [])
        if self.ranker is None:
            return Ranked(k.kept, k.merge_order(), ["rank"])
        try:
            batch = request_batch(self.bundle.builder, f.live.item_tables,
                                  self.bundle.source_stats, None, f.user_idx, k.kept,
                                  f.req.surface, time.time(), f.user_row)
            inputs = {name: v.numpy() for name, v in batch.inputs().items()}
            deadline_s = deadline_ms / 1e3
            scores = (self.ranker.score(inputs, deadline_s) if blocking
                      else await self.ranker.score_async(inputs, deadline_s))
        except Exception as err:  # noqa: BLE001 - any ranker failure degrades, never fails
            log.warning("ranker %s failed (%s: %s); serving candidate order",
                        getattr(self.ranker, "name", None), type(err).__name__, err)
            return Ranked(k.kept, k.merge_order(), ["rank"])
        return Ranked(k.kept, np.asarray(scores, np.float64), [])

    def rerank(self, f: Features, r: Ranked) -> reranking.RerankResult:
        """The top n under the genre quota, the freshness share and the business rules."""
        return reranking.rerank(r.kept.items, r.scores, f.req.n, f.live.catalog,
                                self.cfg.rerank, self.rules(f.live))

    def response(self, f: Features, c: Candidates, k: Kept, r: Ranked,
                 top: reranking.RerankResult, timings_ms: dict[str, float]) -> Result:
        """The shown titles with their reasons (credits computed for these titles only).
        ``timings_ms``: the request's stage timings (this stage's lap joins after)."""
        shown = c.generator.credit(f.history, r.kept.take(top.rows).candidates, c.source_ms)
        live, req = f.live, f.req
        items = [Recommendation(int(live.item_ids[cand.item]), live.catalog.titles[cand.item],
                                float(score), reason(cand.provenance, live.catalog.titles,
                                                     req.surface, req.query), cand.sources)
                 for cand, score in zip(shown, top.scores, strict=True)]
        cold = f.user_idx is None and not len(f.history.items)  # a new user with events is not
        return Result(req.surface, req.user_id, cold, items,
                      f.degraded + c.degraded + r.degraded, self.bundle.version, timings_ms,
                      len(c.merged), k.removed, top.relaxed, c.source_ms,
                      request_id=req.request_id, known=f.user_idx is not None)


def similar_request(item_id: int, n: int) -> Request:
    return Request(user_id=ANONYMOUS, surface="post_play", n=n, item_id=item_id)


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (every ``await`` in it completes at once, as in
    ``recommend_sync``) to its end on the calling thread: no event loop is involved, so this
    works inside a running loop too, where ``asyncio.run`` refuses."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the coroutine suspended: it awaited something that was not ready")
