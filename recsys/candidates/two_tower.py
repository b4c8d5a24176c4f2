"""Two-tower retrieval: the ranker's item-tower vectors in a FAISS index, queried with the
user-tower vector, so the ranker's own notion of similarity becomes one more candidate source.

The retrieval score is the ranker's ``<u, v>`` term. Vectors come from ``ranking.retrieval``
(which runs the towers over the feature rows); a user the towers never saw is encoded through
``encode`` (history -> vector), which the serving stack supplies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys.candidates.base import read_meta, write_meta
from recsys.candidates.types import NO_ITEM, Context, SourceResult, UserHistory
from recsys.index import VectorIndex


class TwoTowerRetrieval:
    name = "two_tower"

    def __init__(self, user_vectors: np.ndarray, item_vectors: np.ndarray,
                 factory: str = "Flat",
                 encode: Callable[[UserHistory], np.ndarray] | None = None) -> None:
        self.user_vectors = np.ascontiguousarray(user_vectors, np.float32)
        self.item_vectors = np.ascontiguousarray(item_vectors, np.float32)
        self.factory = factory
        self.encode = encode
        self.index = VectorIndex(factory, metric="ip").build(
            self.item_vectors, np.arange(len(self.item_vectors), dtype=np.int64))

    def fit(self, train: sp.csr_matrix, **_: object) -> TwoTowerRetrieval:
        return self  # vectors come trained from the ranker

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return self.user_vectors[np.asarray(users)] @ self.item_vectors.T

    def candidates(self, user: UserHistory, context: Context, k: int) -> SourceResult:
        if user.user_idx is not None and user.user_idx < len(self.user_vectors):
            query = self.user_vectors[user.user_idx]
        elif self.encode is not None:
            query = np.asarray(self.encode(user), np.float32).reshape(-1)
        else:
            return SourceResult.empty(self.name)
        exclude = np.unique(np.asarray(user.items, np.int64))
        scores, ids = self.index.search(query[None, :], k + len(exclude))
        keep = (ids[0] >= 0) & ~np.isin(ids[0], exclude)
        items = ids[0][keep][:k].astype(np.int64)
        return SourceResult(self.name, items, scores[0][keep][:k].astype(np.float32),
                            np.full(len(items), NO_ITEM, np.int64))

    def save(self, directory: Path) -> None:
        write_meta(directory, model=self.name, factory=self.factory)
        np.savez(directory / "vectors.npz", users=self.user_vectors, items=self.item_vectors)
        self.index.save(directory / "index")

    @classmethod
    def load(cls, directory: Path) -> TwoTowerRetrieval:
        meta = read_meta(directory)
        arrays = np.load(directory / "vectors.npz")
        return cls(arrays["users"], arrays["items"], meta["factory"])
