"""Candidate-source features: where each source ranked a (user, item) pair, and how high.

The ranker learns to blend the sources, so each pair carries, per source, three numbers:
``present`` (the item is in that source's list for the user), ``1/log2(rank+2)`` and the source's
score standardised by that source's global mean/std (scores of different users share a scale
within a source; ranks are comparable across sources). A pair absent from a source's list gets
zeros. Offline the lists are computed for every user at once from each source's batch
``score()``; online the same numbers come from the candidate provenance
(``pair_dense_from_provenance``), so both paths share one definition.

``SourceLists.merged`` reproduces ``CandidateGenerator``'s per-source quotas of *new* items in
source order, batched over users, for training negatives and the offline evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.candidates.base import training_matrix
from recsys.candidates.history import top_k
from recsys.candidates.types import Candidate, CandidateSet, Provenance
from recsys.progress import progress_bar

PER_SOURCE = ("present", "rank", "score")


@dataclass
class SourceLists:
    """Per source, every user's top ``depth`` unseen items (best first) with scores."""

    names: list[str]
    quotas: dict[str, int]
    items: dict[str, np.ndarray]  # (n_users, depth) int64, -1 where the list is shorter
    scores: dict[str, np.ndarray]  # (n_users, depth) float32
    n_items: int
    score_mean: dict[str, float]
    score_std: dict[str, float]
    merge_depth: dict[str, int]  # list prefix the merge takes from (quota * overfetch)

    @property
    def width(self) -> int:
        return len(PER_SOURCE) * len(self.names)

    def pair_dense(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n, width) features of (user, item) pairs."""
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        out = np.zeros((len(users), self.width), np.float32)
        for s, name in enumerate(self.names):
            rank, score, found = self._lookup(name, users, items)
            out[:, 3 * s] = found & (rank < self.merge_depth[name])
            out[:, 3 * s + 1] = np.where(found, 1.0 / np.log2(rank + 2.0), 0.0)
            z = (score - self.score_mean[name]) / self.score_std[name]
            out[:, 3 * s + 2] = np.where(found, np.clip(z, -10, 10), 0.0)
        return out

    def pair_dense_from_provenance(
            self, candidates: CandidateSet | Sequence[Candidate] | Sequence[Sequence[Provenance]]
    ) -> np.ndarray:
        """The same features from candidate provenance (serving path), on the candidate set's
        columns: a few array operations per source, whatever the number of candidates.
        Also takes ``Candidate`` objects or bare provenance lists (one per row)."""
        if not isinstance(candidates, CandidateSet):
            rows = [c if isinstance(c, Candidate) else Candidate(-1, list(c)) for c in candidates]
            candidates = CandidateSet.from_candidates(rows, self.names)
        out = np.zeros((len(candidates), self.width), np.float32)
        row = {name: s for s, name in enumerate(candidates.sources)}
        for j, name in enumerate(self.names):
            s = row.get(name)
            if s is None:
                continue
            found = candidates.found[s]
            z = (candidates.scores[s] - self.score_mean[name]) / self.score_std[name]
            out[:, 3 * j] = found
            out[:, 3 * j + 1] = np.where(found, 1.0 / np.log2(candidates.ranks[s] + 2.0), 0.0)
            out[:, 3 * j + 2] = np.where(found, np.clip(z, -10, 10), 0.0)
        return out

    def merged(self, user: int) -> np.ndarray:
        """The generator's merged candidate set for one known user (source order, quotas)."""
        taken: list[np.ndarray] = []
        seen = np.empty(0, np.int64)
        for name in self.names:
            row = self.items[name][user][: self.merge_depth[name]]
            row = row[row >= 0]
            new = row[~np.isin(row, seen)][: self.quotas[name]]
            taken.append(new)
            seen = np.concatenate([seen, new])
        return seen

    def _lookup(self, name: str, users: np.ndarray, items: np.ndarray):
        keys, ranks, scores = self._index(name)
        want = users * self.n_items + items
        pos = np.clip(np.searchsorted(keys, want), 0, max(len(keys) - 1, 0))
        found = (keys[pos] == want) if len(keys) else np.zeros(len(want), bool)
        return ranks[pos], scores[pos], found

    def _index(self, name: str):
        cache = self.__dict__.setdefault("_indexes", {})
        if name not in cache:
            items = self.items[name]
            n_users, depth = items.shape
            valid = items >= 0
            users = np.repeat(np.arange(n_users, dtype=np.int64), depth).reshape(items.shape)
            keys = (users * self.n_items + items)[valid]
            ranks = np.broadcast_to(np.arange(depth), items.shape)[valid]
            scores = self.scores[name][valid]
            order = np.argsort(keys, kind="stable")
            cache[name] = (keys[order], ranks[order].astype(np.float32), scores[order])
        return cache[name]


def source_lists(sources: Mapping[str, tuple[object, int]], history: sp.csr_matrix,
                 seen: sp.csr_matrix, overfetch: float = 2.0, batch_size: int = 1024,
                 progress: bool = True, feature_depth: int | None = None) -> SourceLists:
    """Score every user with every source (``score(users, history)``, ``seen`` for a source
    fitted on every event) and keep each user's top ``quota * overfetch`` unseen items: the
    lists the online generator would merge."""
    n_users, n_items = history.shape
    names = list(sources)
    items_out, scores_out, means, stds = {}, {}, {}, {}
    for name, (model, quota) in sources.items():
        depth = max(int(quota * overfetch), feature_depth or 0)
        items = np.full((n_users, depth), -1, np.int64)
        scores = np.zeros((n_users, depth), np.float32)
        for start in progress_bar(range(0, n_users, batch_size),
                                  desc=f"source lists {name}", enabled=progress):
            users = np.arange(start, min(n_users, start + batch_size))
            s = np.asarray(model.score(users, training_matrix(model, history, seen)),
                           np.float32).copy()
            rows = seen[users].tocoo()
            s[rows.row, rows.col] = -np.inf
            top = top_k(s, depth)
            top_scores = np.take_along_axis(s, top, axis=1)
            ok = np.isfinite(top_scores)
            items[users, : top.shape[1]] = np.where(ok, top, -1)
            scores[users, : top.shape[1]] = np.where(ok, top_scores, 0.0)
        valid = scores[items >= 0]
        items_out[name], scores_out[name] = items, scores
        means[name] = float(valid.mean()) if len(valid) else 0.0
        stds[name] = float(max(valid.std(), 1e-6)) if len(valid) else 1.0
    return SourceLists(names, {n: int(q) for n, (_, q) in sources.items()}, items_out,
                       scores_out, n_items, means, stds,
                       {n: int(q * overfetch) for n, (_, q) in sources.items()})
