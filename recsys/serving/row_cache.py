"""The ranker's user rows for one replica, built once and kept while the user is unchanged.

A user's row (history bag, liked genres, demographics, activity statistics) is pandas work
under the GIL, the largest per-user cost of the rank stage's inputs. States are frozen and a
store swaps in a new one on every change, so the state object's identity is its version: a row
is kept with the state it was built from and rebuilt when the user's state is another object.
At load, every known user's row is built in one vectorised pass (``prefill``), the same rows as
one user at a time (tested); a user the ranker never saw shares one row (no id, no history).
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from recsys.ranking.features import FeatureBuilder
from recsys.serving.ranker_inputs import UserRows, user_rows
from recsys.serving.state import UserState, UserStore


class UserRowCache:
    """``limit``: users whose row is kept, oldest evicted first (0 = build every time)."""

    def __init__(self, builder: FeatureBuilder, limit: int) -> None:
        self.builder, self.limit = builder, int(limit)
        self._rows: dict[int, tuple[UserState, UserRows]] = {}
        self._lock = threading.Lock()  # writers only: a read is one dict lookup
        self._anonymous: UserRows | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def cached(self, user_idx: int) -> tuple[UserState, UserRows] | None:
        """The kept (state, row) of a user, if any."""
        return self._rows.get(user_idx)

    def get(self, user_idx: int | None, state: UserState | None) -> UserRows:
        """The row of a user (``user_idx`` None: the cold-start row, the same for everyone)."""
        if self.limit <= 0:
            return user_rows(self.builder, events_of_user(state), user_idx)
        if user_idx is None and state is not None and len(state.items):
            return user_rows(self.builder, events_of_user(state), None)  # a new user's events
        if user_idx is None:
            if self._anonymous is None:
                self._anonymous = user_rows(self.builder, events_of_user(None), None)
            return self._anonymous
        if state is None:  # known to the ranker, nothing in the store: nothing to key on
            return user_rows(self.builder, events_of_user(None), user_idx)
        hit = self._rows.get(user_idx)
        if hit is not None and hit[0] is state:
            return hit[1]
        rows = user_rows(self.builder, events_of_user(state), user_idx)
        with self._lock:
            self._rows[user_idx] = (state, rows)
            while len(self._rows) > self.limit:
                del self._rows[next(iter(self._rows))]  # oldest first
        return rows

    def prefill(self, store: UserStore, n_users: int) -> None:
        """Every known user's row (up to ``limit`` users) in one pass, so a request never pays
        the per-user pandas work unless that user's state changed since."""
        known = [(idx, state) for idx in range(n_users)
                 if (state := store.get(idx)) is not None][:max(self.limit, 0)]
        if not known:
            return
        users = np.array([idx for idx, _ in known], np.int64)
        ids, weights, dense = self.builder.user_rows_from_events(events_of_users(known), users)
        with self._lock:
            for j, (idx, state) in enumerate(known):
                self._rows[idx] = (state, (ids[j:j + 1], weights[j:j + 1], dense[j:j + 1]))


def events_of_users(users: list[tuple[int, UserState]]) -> pd.DataFrame:
    """Users' histories as the feature builder's event columns, ``user_idx`` included (no users:
    an empty frame with the same columns)."""
    states = [state for _, state in users]
    sizes = [len(state.items) for state in states]
    ratings = np.concatenate([np.empty(0), *(s.ratings for s in states)]).astype(np.float32)
    stamps = np.concatenate([np.empty(0), *(
        s.timestamps.astype(np.float64) if s.timestamps is not None
        else np.full(len(s.items), np.nan) for s in states)])
    return pd.DataFrame({
        "user_idx": np.repeat(np.array([idx for idx, _ in users], np.int64), sizes),
        "item_idx": np.concatenate([np.empty(0, np.int64), *(s.items for s in states)]).astype(
            np.int64),
        "rating": ratings, "timestamp": pd.array(stamps, "Float64").astype("Int64"),
        "event_type": pd.Categorical(np.where(np.isnan(ratings), "play", "rating")),
        "watch_fraction": np.full(len(ratings), np.nan, np.float32)})


def events_of_user(state: UserState | None) -> pd.DataFrame:
    """One user's history as the feature builder's event columns (``user_rows`` sets the key)."""
    return events_of_users([] if state is None else [(0, state)]).drop(columns="user_idx")
