"""Trending from the live store: the training-time trending list plus what is gaining
momentum now, so a title everyone starts playing rises within ``title_refresh_s``.

score_i = base_i + mass * live_i / sum(live)

``base`` is the bundle's trending (decayed popularity at the end of the training data),
``live`` the store's decayed popularity at the wall clock (``recsys.events.aggregates``), and
``mass`` the base's total: live momentum weighs as much as the whole training-time list, and
with no recent events (every live value decayed to nothing) the list is the base exactly, the
scale the ranker's source features were fitted on. Titles added after training have no base,
so live events are how they start to trend.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from recsys.candidates.history import result
from recsys.candidates.types import Context, SourceResult, UserHistory
from recsys.events.store import FeatureStore

log = logging.getLogger(__name__)


class OnlineTrending:
    name = "trending"

    def __init__(self, base: object, store: FeatureStore, item_index: Callable[[], dict],
                 refresh_s: float = 1.0) -> None:
        self.base, self.store, self.item_index = base, store, item_index
        self.refresh_s = float(refresh_s)
        self._scores: np.ndarray | None = None
        self._read_at = -np.inf
        self._lock = threading.Lock()

    def scores(self) -> np.ndarray:
        """Per item index, re-read from the store at most every ``refresh_s`` (a failed read
        keeps the last scores)."""
        now = time.monotonic()
        if self._scores is not None and now - self._read_at < self.refresh_s:
            return self._scores
        with self._lock:
            if self._scores is None or now - self._read_at >= self.refresh_s:
                self._read_at = now
                try:
                    self._scores = self.combined(int(time.time() * 1000))
                except Exception as err:  # noqa: BLE001 - keep serving the last list
                    log.warning("trending: store unavailable (%s); keeping the last list", err)
                    if self._scores is None:
                        self._scores = self.base_scores(len(self.item_index()))
        return self._scores

    def base_scores(self, n_items: int) -> np.ndarray:
        base = np.zeros(n_items, np.float64)
        decayed = np.asarray(self.base.decayed, np.float64)[:n_items]
        base[:len(decayed)] = decayed
        return base

    def combined(self, now_ms: int) -> np.ndarray:
        index = self.item_index()
        scores = self.base_scores(len(index))
        live = self.store.title_features(now_ms)
        at = np.array([index.get(int(i), -1) for i in live.item_id.tolist()], np.int64)
        ok = (at >= 0) & (live.popularity > 0)
        total = live.popularity[ok].sum()
        if total > 0:
            mass = scores.sum() or 1.0
            np.add.at(scores, at[ok], mass * live.popularity[ok] / total)
        return scores

    def candidates(self, user: UserHistory, context: Context, k: int) -> SourceResult:
        scores = self.scores()
        return result(self.name, np.where(scores > 0, scores, -np.inf), user.items, k)

    def __getattr__(self, name: str):  # save, score, windows: the trained source's
        return getattr(self.base, name)
