"""Trending: time-decayed popularity, the fallback for users the other sources know nothing of.

score_i = sum over events e of item i of 0.5 ** ((now - t_e) / half_life)

"now" is a parameter (default: the latest event in the training data, since MovieLens is
historical). Windowed counts (events in the last 1 and 7 days before "now") are kept as well:
features for the ranker and the "Trending now" row. Events without a timestamp (the ml-1m
reconstruction has some) count as if they happened at the earliest known time: they are known to
be old, so they add a little all-time popularity and nothing to the recent windows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import RecsysError
from recsys.candidates.history import result
from recsys.candidates.types import Context, SourceResult, UserHistory

DAY_S = 86_400


class Trending:
    name = "trending"

    def __init__(self, half_life_days: float = 30.0, now: int | None = None,
                 windows_days: tuple[int, ...] = (1, 7)) -> None:
        if half_life_days <= 0:
            raise RecsysError(f"half_life_days must be positive, got {half_life_days}")
        self.half_life_days = half_life_days
        self.now = now
        self.windows_days = tuple(windows_days)
        self.decayed: np.ndarray | None = None  # (n_items,) decayed event counts at self.now
        self.window_counts: dict[int, np.ndarray] = {}  # days -> (n_items,) counts

    def fit(self, train: sp.csr_matrix, *, events: pd.DataFrame | None = None,
            **_: object) -> Trending:
        if events is None:
            raise RecsysError("Trending needs the training events (with timestamps) to fit")
        n_items = train.shape[1]
        ts = events["timestamp"]
        if ts.notna().sum() == 0:
            raise RecsysError("Trending needs timestamps, and no training event has one")
        times = ts.fillna(ts.min()).to_numpy(np.int64)
        self.now = int(times.max()) if self.now is None else int(self.now)
        items = events["item_idx"].to_numpy()
        known = times <= self.now  # events after "now" have not happened yet
        age_days = (self.now - times[known]) / DAY_S
        weights = np.power(0.5, age_days / self.half_life_days)
        self.decayed = np.bincount(items[known], weights=weights, minlength=n_items)
        self.window_counts = {
            d: np.bincount(items[known & (times > self.now - d * DAY_S)], minlength=n_items)
            for d in self.windows_days
        }
        return self

    def _require_fit(self) -> np.ndarray:
        if self.decayed is None:
            raise RuntimeError("Trending used before fit")
        return self.decayed

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        decayed = self._require_fit().astype(np.float32)
        return np.broadcast_to(decayed, (len(users), len(decayed))).copy()

    def candidates(self, user: UserHistory, context: Context, k: int) -> SourceResult:
        decayed = self._require_fit()
        scores = np.where(decayed > 0, decayed, -np.inf)  # never seen = not trending
        return result(self.name, scores, user.items, k)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "half_life_days": self.half_life_days, "now": self.now,
                "windows_days": list(self.windows_days)}
        (directory / "meta.json").write_text(json.dumps(meta, indent=2))
        np.savez(directory / "trending.npz", decayed=self.decayed,
                 **{f"window_{d}": c for d, c in self.window_counts.items()})

    @classmethod
    def load(cls, directory: Path) -> Trending:
        meta = json.loads((directory / "meta.json").read_text())
        model = cls(meta["half_life_days"], meta["now"], tuple(meta["windows_days"]))
        arrays = np.load(directory / "trending.npz")
        model.decayed = arrays["decayed"]
        model.window_counts = {d: arrays[f"window_{d}"] for d in model.windows_days}
        return model
