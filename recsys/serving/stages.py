"""What flows between the request path's stages (``recsys.serving.request_path``): the request,
each stage's output, and the result, as small dataclasses. Every one of them belongs to one
request, so concurrent requests share nothing but the replica's read-only state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from recsys.candidates.generator import CandidateGenerator
from recsys.candidates.types import CandidateSet, UserHistory
from recsys.serving.live_catalog import LiveCatalog
from recsys.serving.ranker_inputs import UserRows
from recsys.serving.state import UserState

STAGES = ("features", "candidates", "filters", "rank", "rerank", "response")
ANONYMOUS = -(2**62)  # a user id no dataset uses: the cold-start path
T = TypeVar("T")


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
    request_id: str = ""  # the response's id: seeds an interleaved draft, ties exposures


@dataclass
class Features:
    """features -> candidates: who asks, from where, with the ranker's user inputs."""

    req: Request
    live: LiveCatalog  # the catalog snapshot every later stage of this request reads
    user_idx: int | None  # None: a user the models never saw (cold start)
    state: UserState | None
    history: UserHistory
    seed: int | None  # item index of ``req.item_id``
    user_row: UserRows | None  # the ranker's user row; None when no ranker is configured
    degraded: list[str] = field(default_factory=list)  # ["features:store"]: last state known


@dataclass
class Candidates:
    """candidates -> filters: the merged set, in merge order."""

    merged: CandidateSet
    generator: CandidateGenerator  # the surface's: it credits the shown titles later
    source_ms: dict[str, float]  # latency per source (and ``<source>:credit``), this request
    degraded: list[str]  # ``candidates:<source>`` for each source that failed


@dataclass
class Kept:
    """filters -> rank: the candidates no filter removed, still in merge order."""

    kept: CandidateSet
    removed: dict[str, int]  # filter -> candidates it removed

    def merge_order(self) -> np.ndarray:
        """Merge order as scores (1, 1/2, 1/3...): what a request gets without the ranker."""
        return 1.0 / np.arange(1, len(self.kept) + 1, dtype=np.float64)


@dataclass
class Ranked:
    """rank -> rerank: a score per kept candidate."""

    kept: CandidateSet
    scores: np.ndarray  # (len(kept),) float64 P(engaged), or merge order on fallback
    degraded: list[str]  # ["rank"] when the ranker was missing, failed or too slow


@dataclass
class Recommendation:
    item_id: int
    title: str
    score: float
    reason: str
    sources: list[str]
    arm: str | None = None  # interleaving: the arm (team) this slot is credited to


@dataclass
class Result:
    surface: str
    user_id: int
    cold_start: bool
    items: list[Recommendation]
    degraded: list[str]
    version: str
    timings_ms: dict[str, float]  # per stage, in STAGES order
    candidates: int  # merged candidates before filtering
    filtered: dict[str, int]
    diversity_relaxed: bool = False  # too few candidates to meet the genre quota (rerank.py)
    source_timings_ms: dict[str, float] = field(default_factory=dict)  # per candidate source
    request_id: str = ""
    known: bool = False  # a user the served models were trained on
    experiments: list[dict[str, str]] = field(default_factory=list)  # experiment, arm, kind

    def as_dict(self) -> dict:
        """Plain dicts one level down (what crosses a Serve handle or becomes an exposure):
        ``dataclasses.asdict`` would deep-copy every item, which is slow per request."""
        out = dict(vars(self))
        out["items"] = [vars(item) for item in self.items]
        return out


class StageClock:
    """One request's stage timings: ``lap`` records the ms since the previous lap."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str, output: T) -> T:
        """Record ``stage`` as just finished (its ``output`` computed) and pass it on."""
        now = time.perf_counter()
        self.ms[stage] = (now - self._last) * 1e3
        self._last = now
        return output
