"""Trending from the live store: the training-time trending list plus what is gaining
momentum now, so a title everyone starts playing rises within ``title_refresh_s``.

score_i = base_i + mass * live_i / sum(live)

``base`` is the bundle's trending (decayed popularity at the end of the training data),
``live`` the store's decayed popularity at the wall clock (``recsys.events.aggregates``), and
``mass`` the base's total: live momentum weighs as much as the whole training-time list, and
with no recent events (every live value decayed to nothing) the list is the base exactly, the
scale the ranker's source features were fitted on. Titles added after training have no base,
so live events are how they start to trend. The store is read by ``LiveTitles``, once per
refresh for every reader of title features.
"""

from __future__ import annotations

import numpy as np

from recsys.candidates.history import result
from recsys.candidates.types import Context, SourceResult, UserHistory
from recsys.events.aggregates import TitleFeatures


class OnlineTrending:
    name = "trending"

    def __init__(self, base: object) -> None:
        self.base = base
        self._scores: np.ndarray | None = None  # None: the trained list as it is

    def base_scores(self, n_items: int) -> np.ndarray:
        base = np.zeros(n_items, np.float64)
        decayed = np.asarray(self.base.decayed, np.float64)[:n_items]
        base[:len(decayed)] = decayed
        return base

    def update(self, live: TitleFeatures, at: np.ndarray, n_items: int) -> None:
        """The store's title popularity (``LiveTitles`` reads it every ``title_refresh_s``;
        ``at``: each store row's item index, -1 for a title this replica lacks)."""
        scores = self.base_scores(n_items)
        ok = (at >= 0) & (live.popularity > 0)
        total = live.popularity[ok].sum()
        if total > 0:
            mass = scores.sum() or 1.0
            np.add.at(scores, at[ok], mass * live.popularity[ok] / total)
        self._scores = scores

    def scores(self) -> np.ndarray:
        return self._scores if self._scores is not None else self.base_scores(
            len(self.base.decayed))

    def candidates(self, user: UserHistory, context: Context, k: int) -> SourceResult:
        scores = self.scores()
        return result(self.name, np.where(scores > 0, scores, -np.inf), user.items, k)

    def __getattr__(self, name: str):  # save, score, windows: the trained source's
        if name == "base":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.base, name)
