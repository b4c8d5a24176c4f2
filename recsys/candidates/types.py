"""Typed inputs and outputs of candidate generation.

A source answers ``candidates(user, context, k) -> SourceResult``: up to ``k`` item indices with
scores, and for each the item of the user's history that pushed it most (``because``, -1 if
none). That ``because`` is where "Because you watched X" comes from, so it is kept through the
merge (``Candidate.provenance`` lists every source that found the item).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import pandas as pd

NO_ITEM = -1  # ``because`` value when a source has no single history item to credit

SURFACES = ("home", "search", "post_play")


@dataclass(frozen=True)
class Context:
    """Where and when the request comes from."""

    surface: str = "home"  # home | search | post_play
    query: str | None = None  # free text (search surface)
    seed_item: int | None = None  # item index just watched (post-play surface)
    now: int | None = None  # Unix seconds; None = the source's own notion of "now"
    # False: sources skip crediting a history item (``because`` stays NO_ITEM where it would
    # come from the history) and the caller asks ``credit`` for the few titles it shows. The
    # request path does this: credits for ~600 candidates cost more than all the retrieval.
    explain: bool = True


@dataclass
class UserHistory:
    """What a source may know of a user: known users by index, new users by their few events.

    ``user_idx`` is None for a user the models were not trained on (cold start): sources then
    work from ``items`` alone (ALS folds them in, content builds a profile, trending ignores).
    """

    user_idx: int | None
    items: np.ndarray  # (n,) int64 item indices of past events
    ratings: np.ndarray | None = None  # (n,) float32 explicit ratings, NaN where none
    timestamps: np.ndarray | None = None  # (n,) int64 Unix seconds, for recency weighting

    @classmethod
    def from_frame(cls, events: pd.DataFrame, user_idx: int | None) -> UserHistory:
        """History from canonical interactions rows of one user (``item_idx`` column)."""
        ts = events["timestamp"]
        return cls(
            user_idx=user_idx,
            items=events["item_idx"].to_numpy(np.int64),
            ratings=events["rating"].to_numpy(np.float32),
            timestamps=None if ts.isna().any() else ts.to_numpy(np.int64),
        )


@dataclass
class SourceResult:
    """One source's answer, best first. Arrays share length <= k."""

    source: str
    items: np.ndarray  # (n,) int64 item indices
    scores: np.ndarray  # (n,) float32, comparable within this source only
    because: np.ndarray  # (n,) int64 history item index credited, NO_ITEM if none

    @classmethod
    def empty(cls, source: str) -> SourceResult:
        return cls(source, np.empty(0, np.int64), np.empty(0, np.float32),
                   np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.items)


class Provenance(NamedTuple):
    """One source's word on one candidate. A named tuple, not a dataclass: a request makes
    ~1,500 of them, and a frozen dataclass's constructor costs three times as much."""

    source: str
    score: float
    rank: int  # 0-based rank within that source
    because: int = NO_ITEM


@dataclass
class Candidate:
    item: int
    provenance: list[Provenance] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        return [p.source for p in self.provenance]


@dataclass
class CandidateSet:
    """The merged candidates for one request, in merge order, held as columns.

    One row per candidate (``items``) and one row of the ``(S, n)`` matrices per source, in the
    generator's source order: ``found`` (that source returned the candidate), its ``scores``,
    ``ranks`` (0-based, within that source's answer) and ``because`` (history item credited,
    ``NO_ITEM`` if none). Columns, not objects, because a request merges ~1,500 source answers
    into ~700 candidates and every later stage (filters, ranker features, rerank) is an array
    operation; ``candidates`` builds the ``Candidate`` objects for the rows someone reads one by
    one (the titles a response shows, tests, offline tools).
    """

    user_idx: int | None
    items: np.ndarray  # (n,) int64 item indices
    sources: tuple[str, ...]  # the generator's source names, the matrices' row order
    found: np.ndarray  # (S, n) bool
    scores: np.ndarray  # (S, n) float64 (each source's float32 score, exactly)
    ranks: np.ndarray  # (S, n) int64
    because: np.ndarray  # (S, n) int64
    failed_sources: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, user_idx: int | None, sources: Sequence[str]) -> CandidateSet:
        s = len(sources)
        return cls(user_idx, np.empty(0, np.int64), tuple(sources), np.zeros((s, 0), bool),
                   np.zeros((s, 0)), np.zeros((s, 0), np.int64), np.zeros((s, 0), np.int64))

    @classmethod
    def from_candidates(cls, candidates: Sequence[Candidate], sources: Sequence[str],
                        user_idx: int | None = None) -> CandidateSet:
        """Columns from ``Candidate`` objects (provenance of a source not in ``sources`` is
        dropped)."""
        out = cls.empty(user_idx, sources)
        n, row = len(candidates), {name: s for s, name in enumerate(out.sources)}
        out.items = np.array([c.item for c in candidates], np.int64)
        out.found = np.zeros((len(row), n), bool)
        out.scores, out.ranks = np.zeros((len(row), n)), np.zeros((len(row), n), np.int64)
        out.because = np.full((len(row), n), NO_ITEM, np.int64)
        for j, cand in enumerate(candidates):
            for p in cand.provenance:
                s = row.get(p.source)
                if s is not None:
                    out.found[s, j] = True
                    out.scores[s, j], out.ranks[s, j], out.because[s, j] = (p.score, p.rank,
                                                                            p.because)
        return out

    def take(self, rows: np.ndarray) -> CandidateSet:
        """The candidates at ``rows`` (positions), in that order."""
        rows = np.asarray(rows, np.int64)
        return CandidateSet(self.user_idx, self.items[rows], self.sources, self.found[:, rows],
                            self.scores[:, rows], self.ranks[:, rows], self.because[:, rows],
                            list(self.failed_sources))

    @property
    def candidates(self) -> list[Candidate]:
        """One ``Candidate`` per row, provenance in source order."""
        names = self.sources
        found, scores = self.found.T.tolist(), self.scores.T.tolist()
        ranks, because = self.ranks.T.tolist(), self.because.T.tolist()
        return [Candidate(item, [Provenance(names[s], scores[j][s], ranks[j][s], because[j][s])
                                 for s in range(len(names)) if found[j][s]])
                for j, item in enumerate(self.items.tolist())]

    def __len__(self) -> int:
        return len(self.items)


@runtime_checkable
class CandidateSource(Protocol):
    """A retrieval source: trained with ``fit``, persisted with ``save``/``load``."""

    name: str

    def candidates(self, user: UserHistory, context: Context, k: int) -> SourceResult: ...


@runtime_checkable
class CreditingSource(Protocol):
    """A source that can say, after the fact, which history item pushed each title: what
    ``candidates`` leaves out under ``Context(explain=False)``. Same answer as the eager path."""

    def credit(self, user: UserHistory, items: np.ndarray) -> np.ndarray: ...
