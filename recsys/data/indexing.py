"""Contiguous integer indices for raw ids, the row numbers of embedding tables.

Raw MovieLens ids have gaps (movieId runs to 193,609 for 9,742 titles); embedding tables and
sparse matrices want 0..n-1. ``IdIndex`` keeps the mapping both ways and saves with the model so
served ids round-trip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


class IdIndex:
    """Bijection raw id <-> contiguous index, ordered by raw id for determinism.

    >>> idx = IdIndex.from_ids([30, 10, 20, 10])
    >>> idx.to_index([20, 30]).tolist(), idx.to_raw([0]).tolist()
    ([1, 2], [10])
    """

    def __init__(self, raw_ids: np.ndarray):
        self.raw_ids = np.asarray(raw_ids, dtype=np.int64)  # (n,) sorted, unique
        self._lookup = pd.Index(self.raw_ids)

    @classmethod
    def from_ids(cls, *id_arrays) -> IdIndex:
        values = np.concatenate([np.asarray(a, dtype=np.int64) for a in id_arrays])
        return cls(np.unique(values))

    def __len__(self) -> int:
        return len(self.raw_ids)

    def to_index(self, raw_ids, missing: str = "raise") -> np.ndarray:
        """Indices of ``raw_ids``; unknown ids raise KeyError, or give -1 if missing="ignore"."""
        positions = self._lookup.get_indexer(np.asarray(raw_ids, dtype=np.int64))
        if missing == "raise" and (positions < 0).any():
            unknown = np.asarray(raw_ids)[positions < 0][:5].tolist()
            raise KeyError(f"unknown ids {unknown}")
        return positions.astype(np.int64)

    def to_raw(self, indices) -> np.ndarray:
        return self.raw_ids[np.asarray(indices, dtype=np.int64)]

    def save(self, path: Path) -> None:
        pd.DataFrame({"raw_id": self.raw_ids}).to_parquet(path, index=False)

    @classmethod
    def load(cls, path: Path) -> IdIndex:
        return cls(pd.read_parquet(path)["raw_id"].to_numpy())
