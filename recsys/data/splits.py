"""Deterministic train/test splits of an interactions table, per user.

* ``random``: each user's events shuffled by ``seed``, the last ``fraction`` held out.
* ``temporal``: each user's latest ``fraction`` of events (by timestamp) held out.
* ``leave_last``: each user's single latest event held out.

Users with a single event stay entirely in train (nothing would be left to learn from).
Holdout size per user is ``floor(fraction * n + 0.5)`` capped at ``n - 1``, the convention most
published MovieLens numbers use.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from recsys import RecsysError
from recsys.data.schema import has_timestamps


class SplitKind(StrEnum):
    random = "random"
    temporal = "temporal"
    leave_last = "leave_last"
    last_days = "last_days"  # every event of the last `days` calendar days (event time)


@dataclass
class SplitConfig:
    """The ``split`` config group's schema (``seed`` follows the run seed in configs/split/)."""

    kind: SplitKind = SplitKind.random
    fraction: float = 0.2  # share of each user's events held out (random, temporal)
    seed: int = 42
    days: int = 1  # last_days: days held out, counted back from the newest event


@dataclass
class Split:
    train: pd.DataFrame
    test: pd.DataFrame

    def summary(self) -> str:
        return (f"train {len(self.train):,} events / test {len(self.test):,} events "
                f"({self.test['user_idx'].nunique():,} test users)")


def split_interactions(
    interactions: pd.DataFrame, kind: str, fraction: float = 0.2, seed: int = 42,
    days: int = 1,
) -> Split:
    """Split ``interactions`` (with a ``user_idx`` column) into train and test."""
    if kind not in set(SplitKind):
        raise RecsysError(f"unknown split '{kind}'; choose one of "
                          f"{', '.join(k.value for k in SplitKind)}")
    if kind in ("random", "temporal") and not 0.0 < fraction < 1.0:
        raise RecsysError(f"split fraction must be in (0, 1), got {fraction}")
    if kind in ("temporal", "leave_last", "last_days") and not has_timestamps(interactions):
        missing = int(interactions["timestamp"].isna().sum())
        raise RecsysError(
            f"a {kind} split needs a timestamp on every event, but {missing:,} of "
            f"{len(interactions):,} have none; use split=random for this dataset"
        )
    if kind == "last_days":
        return split_last_days(interactions, days)
    users = interactions["user_idx"].to_numpy()
    if kind == "random":
        order_key = np.random.default_rng(seed).random(len(interactions))
    else:
        # Ties in time keep file order, so the split is reproducible across runs.
        order_key = interactions["timestamp"].to_numpy(dtype=np.int64)
    # Rank of each event inside its user, 0 = earliest (or first in the shuffle).
    order = np.lexsort((np.arange(len(users)), order_key, users))
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    rank_sorted = np.arange(len(users)) - np.repeat(starts, counts)
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    n_per_user = np.repeat(counts, counts)
    n_user = np.empty_like(n_per_user)
    n_user[order] = n_per_user
    if kind == "leave_last":
        n_test = np.where(n_user > 1, 1, 0)
    else:
        n_test = np.minimum(np.floor(fraction * n_user + 0.5).astype(np.int64), n_user - 1)
    is_test = rank >= n_user - n_test
    return Split(
        train=interactions[~is_test].reset_index(drop=True),
        test=interactions[is_test].reset_index(drop=True),
    )


def split_last_days(interactions: pd.DataFrame, days: int) -> Split:
    """Hold out every event of the last ``days`` UTC calendar days up to the newest event: a
    daily retrain is judged on the day it did not see."""
    if days < 1:
        raise RecsysError(f"split.days must be >= 1, got {days}")
    ts = interactions["timestamp"].to_numpy(dtype=np.int64)
    cutoff = (int(ts.max()) // 86_400 - (days - 1)) * 86_400
    is_test = ts >= cutoff
    if is_test.all():
        raise RecsysError(f"split=last_days with days={days} holds out every event; the data "
                          "spans fewer days: lower split.days or read more (data.days)")
    return Split(train=interactions[~is_test].reset_index(drop=True),
                 test=interactions[is_test].reset_index(drop=True))
