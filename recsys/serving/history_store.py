"""A read-only ``UserStore`` over a fixed table of events in raw ids: every user's history as
of some moment, in one bundle's item indices.

Why: to judge two artefact versions on the same held-out users (a retrain's gate), each
version's request path must see the history those users had at the cutoff, including users
one of the versions never trained on (they are new to it, as they would be when it serves).
Titles a bundle does not have are left out of its view of the history.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys import RecsysError
from recsys.serving.state import UserState


class HistoryUserStore:
    """``events``: user_id, item_id, rating (NaN for none), timestamp (Unix s), raw ids."""

    def __init__(self, events: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray
                 ) -> None:
        items = {int(raw): i for i, raw in enumerate(item_ids)}
        users = {int(raw): i for i, raw in enumerate(user_ids)}
        frame = events.assign(item_idx=events["item_id"].map(items)).dropna(subset=["item_idx"])
        frame = frame.sort_values(["user_id", "timestamp"], kind="stable")
        self._by_raw: dict[int, UserState] = {}
        for raw, rows in frame.groupby("user_id", sort=False):
            ts = rows["timestamp"].astype("Int64")
            self._by_raw[int(raw)] = UserState(
                users.get(int(raw)), rows["item_idx"].to_numpy(np.int64),
                rows["rating"].to_numpy(np.float32, na_value=np.nan),
                None if ts.isna().any() else ts.to_numpy(np.int64))
        self._by_idx = {s.user_idx: s for s in self._by_raw.values() if s.user_idx is not None}

    def get(self, user_idx: int) -> UserState | None:
        return self._by_idx.get(int(user_idx))

    def for_user(self, raw_id: int, user_idx: int | None
                 ) -> tuple[UserState | None, list[str]]:
        return self._by_raw.get(int(raw_id)), []

    def append(self, user_idx: int, item_idx: int, rating: float | None,
               timestamp: int | None) -> None:
        raise RecsysError("HistoryUserStore is read-only: it replays a fixed history")

    def set_profile(self, user_idx: int, **fields: Any) -> None:
        raise RecsysError("HistoryUserStore is read-only: it replays a fixed history")
