"""Activity counts, the ranker's dense user and item features: events, engaged events, mean
rating and engaged share per user or per item, from the training events alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from recsys.ranking.features import FeatureParams


def engaged(events: pd.DataFrame, rating_threshold: float = 4.0,
            watch_threshold: float = 0.7) -> np.ndarray:
    """The label: rating >= threshold for rated events, watch fraction >= 0.7 for plays."""
    rating = events["rating"].to_numpy(np.float32)
    watched = events["watch_fraction"].to_numpy(np.float32)
    return np.where(~np.isnan(rating), rating >= rating_threshold,
                    ~np.isnan(watched) & (watched >= watch_threshold))


USER_DENSE = ("log_events", "log_engaged", "mean_rating", "engaged_share")
ITEM_DENSE = ("log_events", "log_engaged", "mean_rating", "engaged_share")


def activity(events: pd.DataFrame, key: str, n: int, p: FeatureParams) -> np.ndarray:
    """(n, 4) counts per user or item: the USER_DENSE / ITEM_DENSE columns."""
    idx = events[key].to_numpy(np.int64)
    count = np.bincount(idx, minlength=n).astype(np.float64)
    pos = np.bincount(idx, weights=engaged(events, p.rating_threshold, p.watch_threshold)
                      .astype(np.float64), minlength=n)
    rating = events["rating"].to_numpy(np.float64)
    rated = ~np.isnan(rating)
    rsum = np.bincount(idx[rated], weights=rating[rated], minlength=n)
    rcount = np.bincount(idx[rated], minlength=n)
    return activity_columns(count, pos, rsum, rcount)


def activity_columns(count: np.ndarray, engaged_n: np.ndarray, rating_sum: np.ndarray,
                     rating_n: np.ndarray) -> np.ndarray:
    """The four columns from the counts: what training computes from its events and serving
    from the live store's (``recsys.serving.live_titles``)."""
    mean_rating = np.where(rating_n > 0, rating_sum / np.maximum(rating_n, 1) - 3.0, 0.0)
    share = np.where(count > 0, engaged_n / np.maximum(count, 1), 0.0)
    return np.stack([np.log1p(count), np.log1p(engaged_n), mean_rating, share], 1)


def item_stats(events: pd.DataFrame, n_items: int, p: FeatureParams) -> np.ndarray:
    return activity(events, "item_idx", n_items, p)


def user_stats(events: pd.DataFrame, p: FeatureParams, n: int | None = None) -> np.ndarray:
    """(n, 4) USER_DENSE columns; ``n`` defaults to the largest user index + 1."""
    n = int(events["user_idx"].max()) + 1 if n is None and len(events) else (n or 0)
    return activity(events, "user_idx", n, p)


def moments(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return stats.mean(0), np.maximum(stats.std(0), 1e-6)
