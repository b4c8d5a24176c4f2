"""User profiles for content retrieval: a weighted mean of the embeddings of titles a user liked.

    weight(event) = like(rating) * 0.5 ** ((latest - t) / half_life)
    like(rating)  = max(rating - rating_center, 0)   for a rated event
                  = implicit_weight                  for an event without a rating (play, click)

``latest`` is the user's own latest event, not the wall clock: MovieLens is historical, and only
relative age matters to a normalised mean anyway (a common factor cancels). So a 5-star rating
weighs 2.5 and a 4-star 1.5 (with the default centre 2.5), a rating at or below the centre
weighs nothing (a disliked title must not pull the profile towards itself), and a title rated
one half-life before the user's latest event counts half. Events without a timestamp (the ml-1m
reconstruction has some) are taken to be as old as the user's earliest dated event, as
``Trending`` does; a user with no dated event gets no decay. Repeated events of one title add up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.candidates.types import UserHistory

DAY_S = 86_400


@dataclass(frozen=True)
class ProfileWeights:
    rating_center: float = 2.5  # ratings at or below weigh nothing
    implicit_weight: float = 1.0  # weight of an event without a rating
    half_life_days: float | None = 365.0  # None: no recency decay

    def weights(self, ratings: np.ndarray, timestamps: np.ndarray, latest: np.ndarray,
                earliest: np.ndarray) -> np.ndarray:
        """(n,) weights of events; every argument (n,) float, NaN = unknown."""
        ratings = np.asarray(ratings, np.float64)
        like = np.where(np.isnan(ratings), self.implicit_weight,
                        np.clip(ratings - self.rating_center, 0.0, None))
        if self.half_life_days is None:
            return like
        ts = np.where(np.isnan(timestamps), earliest, timestamps)
        age_days = np.clip((latest - ts) / DAY_S, 0.0, None)
        decay = np.where(np.isnan(age_days), 1.0, 0.5 ** (age_days / self.half_life_days))
        return like * decay

    def for_history(self, user: UserHistory) -> tuple[np.ndarray, np.ndarray]:
        """(items (H,) int64 distinct, weights (H,) float64 > 0) of one user's liked titles."""
        items = np.asarray(user.items, np.int64)
        if len(items) == 0:
            return items, np.empty(0)
        ratings = (np.full(len(items), np.nan) if user.ratings is None
                   else np.asarray(user.ratings, np.float64))
        ts = (np.full(len(items), np.nan) if user.timestamps is None
              else np.asarray(user.timestamps, np.float64))
        dated = ts[~np.isnan(ts)]
        latest = np.full(len(items), dated.max() if len(dated) else np.nan)
        earliest = np.full(len(items), dated.min() if len(dated) else np.nan)
        w = self.weights(ratings, ts, latest, earliest)
        distinct, inverse = np.unique(items, return_inverse=True)
        summed = np.bincount(inverse, weights=w, minlength=len(distinct))
        keep = summed > 0
        return distinct[keep], summed[keep]

    def for_events(self, events: pd.DataFrame) -> np.ndarray:
        """(len(events),) weights of interaction rows (``user_idx``, ``rating``, ``timestamp``),
        each relative to its own user's latest event."""
        ts = events["timestamp"].astype("float64").to_numpy()
        by_user = pd.Series(ts, index=events.index).groupby(events["user_idx"].to_numpy())
        latest = by_user.transform("max").to_numpy()
        earliest = by_user.transform("min").to_numpy()
        return self.weights(events["rating"].to_numpy(np.float64), ts, latest, earliest)
