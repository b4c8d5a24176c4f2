"""One recommendation request, stage by stage:

    features -> candidates -> filters -> rank -> rerank -> response

``RecommendationPipeline.recommend`` names the stages in that order and times each one. A stage
that fails falls back instead of failing the request, and the response lists it in
``degraded``: a ranker that is down, slow past its deadline or erroring leaves the candidates in
merge order (``degraded=["rank"]``), and the next request tries the ranker again, so
personalisation returns by itself.

Surfaces choose their sources: home asks every source; search asks the sources named for it
(content: the query embedded with the content model), then the ranker personalises; post-play
asks co-watch and content neighbours of the title just watched. A user the models never saw
(cold start) gets what needs no history: trending, and content from ``item_id`` / ``query``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys import RecsysError
from recsys.candidates.generator import CandidateGenerator
from recsys.candidates.types import CandidateSet, Context, UserHistory
from recsys.ranking.features import FeatureTables
from recsys.serving.bundle import ServingBundle
from recsys.serving.catalog import DuplicateItemError, ItemCatalog
from recsys.serving.explain import reason
from recsys.serving.filters import FilterRequest, filter_candidates
from recsys.serving.ranker_inputs import UserRows, request_batch, user_rows
from recsys.serving.rankers import RankerBackend
from recsys.serving.rerank import RerankParams, rerank
from recsys.serving.state import UserState, UserStore

log = logging.getLogger(__name__)

STAGES = ("features", "candidates", "filters", "rank", "rerank", "response")
ANONYMOUS = -(2**62)  # a user id no dataset uses: the cold-start path


@dataclass
class Request:
    user_id: int  # raw id
    surface: str = "home"
    n: int = 20
    query: str | None = None
    item_id: int | None = None  # raw id of the title just watched (post-play)
    region: str | None = None
    max_maturity: str | None = None
    exclude: list[int] = field(default_factory=list)  # raw ids


@dataclass
class Recommendation:
    item_id: int
    title: str
    score: float
    reason: str
    sources: list[str]


@dataclass
class Result:
    surface: str
    user_id: int
    cold_start: bool
    items: list[Recommendation]
    degraded: list[str]
    version: str
    timings_ms: dict[str, float]
    candidates: int  # merged candidates before filtering
    filtered: dict[str, int]
    diversity_relaxed: bool = False  # too few candidates to meet the genre quota (rerank.py)


@dataclass
class RankJob:
    """What the rank stage needs; ``degraded`` is the request's own list (appended to)."""

    kept: CandidateSet  # the candidates the filters kept, in merge order
    user_idx: int | None
    state: UserState | None
    surface: str
    degraded: list[str]

    def fallback(self) -> np.ndarray:
        """Merge order as scores (1, 1/2, 1/3...): what a request gets without the ranker."""
        return 1.0 / np.arange(1, len(self.kept) + 1, dtype=np.float64)


@dataclass
class PipelineParams:
    surface_sources: dict[str, list[str] | None] = field(default_factory=lambda: {
        "home": None, "search": ["content"], "post_play": ["cowatch", "content"]})
    rerank: RerankParams = field(default_factory=RerankParams)
    rank_deadline_ms: float = 50.0
    user_row_cache: int = 100_000  # users whose ranker row is kept (0 = build every time)


class RecommendationPipeline:
    """Loaded once per replica: artefacts, catalog arrays, per-surface generators."""

    def __init__(self, bundle: ServingBundle, store: UserStore, ranker: RankerBackend | None,
                 params: PipelineParams | None = None) -> None:
        self.bundle, self.store, self.ranker = bundle, store, ranker
        self.params = params or PipelineParams()
        self.catalog = ItemCatalog.from_items(bundle.items)
        self.user_index = {int(u): i for i, u in enumerate(bundle.user_ids)}
        self.item_index = {int(t): i for i, t in enumerate(bundle.item_ids)}
        self._row_cache: dict[int, tuple[UserState, UserRows]] = {}
        self._row_lock = threading.Lock()
        sources = bundle.generator.sources
        self.generators = {}
        for surface, names in self.params.surface_sources.items():
            chosen = list(sources) if names is None else [n for n in names if n in sources]
            self.generators[surface] = CandidateGenerator(
                {n: sources[n] for n in chosen},
                positive_threshold=bundle.generator.positive_threshold)
        self._prefill_user_rows()

    # -- the request ----------------------------------------------------------------------
    def recommend(self, req: Request) -> Result:
        """The request on the calling thread (the ranker called synchronously)."""
        stages = self._stages(req)
        job = next(stages)
        try:
            stages.send(self._rank(job))
        except StopIteration as done:
            return done.value
        raise RuntimeError("the request path yields once, for the ranker")

    async def recommend_async(self, req: Request) -> Result:
        """The same stages, awaiting the ranker: while Triton scores this request, the event
        loop runs another request's CPU stages (the serving replica's path)."""
        stages = self._stages(req)
        job = next(stages)
        try:
            stages.send(await self._rank_async(job))
        except StopIteration as done:
            return done.value
        raise RuntimeError("the request path yields once, for the ranker")

    def _stages(self, req: Request) -> Generator[RankJob, np.ndarray, Result]:
        """features -> candidates -> filters -> rank -> rerank -> response, timed stage by
        stage; it yields the rank stage's job to the driver above and gets the scores back."""
        timings: dict[str, float] = {}
        degraded: list[str] = []
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = (now - clock) * 1e3
            clock = now

        user_idx, state = self._user(req.user_id)
        seed = self._item(req.item_id, "item_id") if req.item_id is not None else None
        history = state.history() if state is not None else UserHistory(
            None, np.empty(0, np.int64))
        lap("features")
        context = Context(surface=req.surface, query=req.query, seed_item=seed, explain=False)
        generator = self.generators[req.surface]
        cands = generator.generate(history, context)
        degraded += [f"candidates:{name}" for name in cands.failed_sources]
        lap("candidates")
        exclude = [self.item_index[i] for i in req.exclude if i in self.item_index]
        profile = state.profile if state is not None else {}
        filt = filter_candidates(cands.items, self.catalog, FilterRequest(
            watched=history.items, disliked_genres=state.disliked_genres if state else frozenset(),
            max_maturity=req.max_maturity or profile.get("max_maturity"),
            region=req.region or profile.get("region"),
            exclude=np.array(exclude + ([seed] if seed is not None else []), np.int64)))
        kept = cands.take(np.flatnonzero(filt.keep))
        lap("filters")
        scores = yield RankJob(kept, user_idx, state, req.surface, degraded)
        lap("rank")
        top = rerank(kept.items, scores, req.n, self.catalog, self.params.rerank)
        lap("rerank")
        shown = generator.credit(history, kept.take(top.rows).candidates)
        recs = [Recommendation(int(self.bundle.item_ids[c.item]), self.catalog.titles[c.item],
                               float(s), reason(c.provenance, self.catalog.titles, req.surface,
                                                req.query), c.sources)
                for c, s in zip(shown, top.scores, strict=True)]
        lap("response")
        return Result(req.surface, req.user_id, user_idx is None, recs, degraded,
                      self.bundle.version, timings, len(cands), filt.removed, top.relaxed)

    def warm_up(self) -> None:
        """One request with a generous deadline, so the first real request does not pay for
        the ranker's first call (Triton's Python backend loads the model lazily)."""
        deadline, self.params.rank_deadline_ms = self.params.rank_deadline_ms, 30_000.0
        try:
            user = int(self.bundle.user_ids[0]) if len(self.bundle.user_ids) else ANONYMOUS
            self.recommend(Request(user_id=user, n=10))
        finally:
            self.params.rank_deadline_ms = deadline

    def similar(self, item_id: int, n: int = 20) -> Result:
        """"More like this" for a title, for nobody in particular: the post-play sources on the
        cold-start path (no history, no ranker personalisation to speak of)."""
        return self.recommend(self._similar_request(item_id, n))

    async def similar_async(self, item_id: int, n: int = 20) -> Result:
        return await self.recommend_async(self._similar_request(item_id, n))

    @staticmethod
    def _similar_request(item_id: int, n: int) -> Request:
        return Request(user_id=ANONYMOUS, surface="post_play", n=n, item_id=item_id)

    # -- stages -----------------------------------------------------------------------------
    def _user(self, raw_id: int) -> tuple[int | None, UserState | None]:
        idx = self.user_index.get(int(raw_id))
        if idx is None:
            return None, None
        return idx, self.store.get(idx)

    def _item(self, raw_id: int, param: str) -> int:
        idx = self.item_index.get(int(raw_id))
        if idx is None:
            raise RecsysError(f"{param}={raw_id} is not a title in the catalog")
        return idx

    def _rank(self, job: RankJob) -> np.ndarray:
        """P(engaged) per candidate, or merge order (1, 1/2, 1/3...) when the ranker fails."""
        try:
            inputs = self._rank_inputs(job)
            if inputs is None:
                return job.fallback()
            return self.ranker.score(inputs, self.params.rank_deadline_ms / 1e3
                                     ).astype(np.float64)
        except Exception as err:  # noqa: BLE001 - any ranker failure degrades, never fails
            return self._ranker_failed(job, err)

    async def _rank_async(self, job: RankJob) -> np.ndarray:
        """``_rank`` awaiting the ranker (async gRPC to Triton)."""
        try:
            inputs = self._rank_inputs(job)
            if inputs is None:
                return job.fallback()
            scores = await self.ranker.score_async(inputs, self.params.rank_deadline_ms / 1e3)
            return scores.astype(np.float64)
        except Exception as err:  # noqa: BLE001 - any ranker failure degrades, never fails
            return self._ranker_failed(job, err)

    def _rank_inputs(self, job: RankJob) -> dict[str, np.ndarray] | None:
        """The ranker's five arrays for the kept candidates; None when there is nothing to rank
        or no ranker (then ``degraded`` names the rank stage)."""
        if not job.kept:
            return None
        if self.ranker is None:
            job.degraded.append("rank")
            return None
        batch = request_batch(self.bundle.builder, self.bundle.item_tables,
                              self.bundle.source_stats, None, job.user_idx, job.kept,
                              job.surface, time.time(), self._user_rows(job.user_idx, job.state))
        return {k: v.numpy() for k, v in batch.inputs().items()}

    def _ranker_failed(self, job: RankJob, err: Exception) -> np.ndarray:
        log.warning("ranker %s failed (%s: %s); serving candidate order",
                    getattr(self.ranker, "name", None), type(err).__name__, err)
        job.degraded.append("rank")
        return job.fallback()

    def _user_rows(self, user_idx: int | None, state: UserState | None) -> UserRows:
        """The user's ranker row, kept while their state is the same object: states are frozen
        and a store swaps in a new one on every change, so identity is the version. Building
        the row is pandas work under the GIL (~3 ms); a returning user skips it."""
        if state is None or user_idx is None or self.params.user_row_cache <= 0:
            return user_rows(self.bundle.builder, _events(state), user_idx)
        hit = self._row_cache.get(user_idx)
        if hit is not None and hit[0] is state:
            return hit[1]
        rows = user_rows(self.bundle.builder, _events(state), user_idx)
        with self._row_lock:
            self._row_cache[user_idx] = (state, rows)
            while len(self._row_cache) > self.params.user_row_cache:
                del self._row_cache[next(iter(self._row_cache))]  # oldest first
        return rows

    def _prefill_user_rows(self) -> None:
        """Every known user's ranker row, built in one vectorised pass at load (up to
        ``user_row_cache`` users): a request then never pays the per-user pandas work (~1.5 ms)
        unless that user's state changed since. Same rows as one user at a time (tested)."""
        limit = self.params.user_row_cache
        known = [(idx, state) for idx in range(len(self.bundle.user_ids))
                 if (state := self.store.get(idx)) is not None][:max(limit, 0)]
        if not known:
            return
        events = _events_of(known)
        users = np.array([idx for idx, _ in known], np.int64)
        ids, weights, dense = self.bundle.builder.user_rows_from_events(events, users)
        with self._row_lock:
            for j, (idx, state) in enumerate(known):
                self._row_cache[idx] = (state, (ids[j:j + 1], weights[j:j + 1],
                                                dense[j:j + 1]))

    # -- catalog changes (admin) ---------------------------------------------------------------
    _catalog_lock = threading.Lock()  # one catalog change at a time; requests take no lock

    def add_titles(self, items: pd.DataFrame) -> np.ndarray:
        """Append titles to the live catalog; returns their new item indices.

        ``items``: catalog rows with ``bundle.items``'s columns (``item_id``, new, and ``title``
        required; missing columns are unknown values). Every source that embeds new titles
        (``add_items``: content) indexes them, so search and post-play's content neighbours can
        return them at once; the ranker scores them from their metadata (its id table has no
        row for them: that slot is empty, as for any unknown id). Sources sized to the training
        catalog (ALS, co-watch, trending, two_tower) never return them until the next training
        run. The change is in memory and in this pipeline only (one Serve replica).

        Everything is built before anything is swapped in, and the content index, which is
        what makes a title reachable, comes last: a concurrent request sees either the old
        catalog or one that already has every new row. If embedding fails nothing changes.
        """
        with self._catalog_lock:
            rows = self._new_rows(items)
            embedders = self._title_embedders()
            start = len(self.bundle.item_ids)
            new = np.arange(start, start + len(rows), dtype=np.int64)
            raw = rows["item_id"].to_numpy(np.int64)
            before = (self.catalog, self.item_index, self.bundle.item_tables,
                      self.bundle.items, self.bundle.item_ids)
            self.catalog = self.catalog.extend(rows)
            self.bundle.item_tables = _with_item_rows(self.bundle.item_tables,
                                                      *self.bundle.builder.item_rows(rows))
            self.bundle.items = pd.concat([self.bundle.items, rows], ignore_index=True)
            self.bundle.item_ids = np.concatenate(
                [self.bundle.item_ids, raw.astype(self.bundle.item_ids.dtype)])
            added = dict(zip(raw.tolist(), new.tolist(), strict=True))
            self.item_index = {**self.item_index, **added}
            try:
                for source in embedders:
                    source.add_items(rows, new)
            except Exception:
                (self.catalog, self.item_index, self.bundle.item_tables, self.bundle.items,
                 self.bundle.item_ids) = before
                raise
            log.info("added %d title(s) to the catalog as item indices %d..%d", len(new),
                     new[0], new[-1])
            return new

    def _new_rows(self, items: pd.DataFrame) -> pd.DataFrame:
        """``items`` checked and laid out as ``bundle.items`` rows (its columns and dtypes), so
        every consumer of the catalog reads them as it reads the trained ones."""
        if not isinstance(items, pd.DataFrame) or items.empty:
            raise RecsysError("add_titles needs a non-empty DataFrame of catalog rows")
        columns = list(self.bundle.items.columns)
        unknown = sorted(set(items.columns) - set(columns))
        if unknown:
            raise RecsysError(f"unknown catalog column(s) {unknown}; the catalog has {columns}")
        for col in ("item_id", "title"):
            if col not in items.columns or items[col].isna().any():
                raise RecsysError(f"every new title needs {col}")
        if not all(isinstance(t, str) and t.strip() for t in items["title"]):
            raise RecsysError("title must be a non-empty string")
        raw = pd.to_numeric(items["item_id"], errors="coerce")
        if raw.isna().any() or (raw != raw.round()).any():
            raise RecsysError(f"item_id must be an integer, got {items['item_id'].tolist()}")
        repeated = sorted(raw[raw.duplicated()].astype(np.int64).unique().tolist())
        if repeated:
            raise RecsysError(f"item_id {repeated} given more than once")
        taken = [int(i) for i in raw if int(i) in self.item_index]
        if taken:
            raise DuplicateItemError(f"item_id {taken} already in the catalog")
        rows = items.reindex(columns=columns).reset_index(drop=True)
        rows["item_id"] = raw.astype(np.int64).to_numpy()
        for col, dtype in self.bundle.items.dtypes.items():
            if not pd.api.types.is_object_dtype(dtype):
                try:
                    rows[col] = rows[col].astype(dtype)
                except (TypeError, ValueError) as err:
                    raise RecsysError(f"{col}: {err}") from None
        return rows

    def _title_embedders(self) -> list:
        """The sources that can index a title they were not fitted on (``add_items``)."""
        found = [spec.source for spec in self.bundle.generator.sources.values()
                 if hasattr(spec.source, "add_items")]
        if not found:
            raise RecsysError("this bundle has no content source, so a new title would be "
                              "reachable from no surface; train with a content source "
                              "(candidates=default)")
        return found


def _with_item_rows(tables: FeatureTables, ids: np.ndarray, weights: np.ndarray,
                    dense: np.ndarray) -> FeatureTables:
    """``tables`` with item rows appended (a new object: readers keep a consistent one)."""
    return FeatureTables(tables.user_ids, tables.user_weights, tables.user_dense,
                         np.vstack([tables.item_ids, ids]),
                         np.vstack([tables.item_weights, weights]),
                         np.vstack([tables.item_dense, dense]))


def _events_of(users: list[tuple[int, UserState]]) -> pd.DataFrame:
    """Users' histories as the feature builder's event columns, ``user_idx`` included (no users:
    an empty frame with the same columns)."""
    states = [state for _, state in users]
    sizes = [len(state.items) for state in states]
    ratings = np.concatenate([np.empty(0), *(s.ratings for s in states)]).astype(np.float32)
    stamps = np.concatenate([np.empty(0), *(
        s.timestamps.astype(np.float64) if s.timestamps is not None
        else np.full(len(s.items), np.nan) for s in states)])
    return pd.DataFrame({
        "user_idx": np.repeat(np.array([idx for idx, _ in users], np.int64), sizes),
        "item_idx": np.concatenate([np.empty(0, np.int64), *(s.items for s in states)]).astype(
            np.int64),
        "rating": ratings, "timestamp": pd.array(stamps, "Float64").astype("Int64"),
        "event_type": pd.Categorical(np.where(np.isnan(ratings), "play", "rating")),
        "watch_fraction": np.full(len(ratings), np.nan, np.float32)})


def _events(state: UserState | None) -> pd.DataFrame:
    """One user's history as the feature builder's event columns (``user_rows`` sets the key)."""
    return _events_of([] if state is None else [(0, state)]).drop(columns="user_idx")
