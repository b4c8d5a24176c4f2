"""MostPopular: every user gets the titles with the most training interactions.

The floor every personalised model must clear, and the fallback for users with no history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys.candidates.base import read_meta, write_meta


class MostPopular:
    name = "popular"

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None  # (n_items,) interactions per item in train

    def fit(self, train: sp.csr_matrix, **_: object) -> MostPopular:
        self.counts = np.asarray((train > 0).sum(axis=0), dtype=np.float32).ravel()
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        if self.counts is None:
            raise RuntimeError("MostPopular.score called before fit")
        return np.broadcast_to(self.counts, (len(users), len(self.counts))).copy()

    def save(self, directory: Path) -> None:
        write_meta(directory, model=self.name)
        np.save(directory / "counts.npy", self.counts)

    @classmethod
    def load(cls, directory: Path) -> MostPopular:
        assert read_meta(directory)["model"] == cls.name
        model = cls()
        model.counts = np.load(directory / "counts.npy")
        return model
