"""Per-user serving state behind one store interface.

The request path reads a user's history and preferences only through ``UserStore`` so the
training-time snapshot (``InMemoryUserStore.from_events``) can later be fed live events through
``append`` without the request path knowing where state comes from.

Disliked genres: a genre is disliked when the user gave at least ``min_dislikes`` titles of that
genre a rating <= ``dislike_threshold`` AND the user's mean rating over all rated titles of that
genre is <= ``dislike_threshold``. Both conditions are needed: one bad rating is noise, and many
low ratings among many high ones is a picky fan, not a dislike. Genres the user named explicitly
(``profile["disliked_genres"]``) are added to the derived ones.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd

from recsys import RecsysError
from recsys.candidates.types import UserHistory

PROFILE_FIELDS = ("max_maturity", "region", "disliked_genres")


@dataclass(frozen=True)
class UserState:
    """One user's snapshot. Frozen: updates build a new state, so readers never see half."""

    user_idx: int | None
    items: np.ndarray  # (n,) int64 item indices, oldest first
    ratings: np.ndarray  # (n,) float32, NaN where none
    timestamps: np.ndarray | None  # (n,) int64 Unix seconds; None when any is unknown
    disliked_genres: frozenset[str] = frozenset()
    profile: dict[str, Any] = field(default_factory=dict)

    def history(self) -> UserHistory:
        """The candidates' view of this user (sources never see the profile)."""
        return UserHistory(self.user_idx, self.items, self.ratings, self.timestamps)


class UserStore(Protocol):
    """Where the request path gets user state; live events come in through ``append``."""

    def get(self, user_idx: int) -> UserState | None: ...

    def append(self, user_idx: int, item_idx: int, rating: float | None,
               timestamp: int | None) -> None: ...

    def set_profile(self, user_idx: int, **fields: Any) -> None: ...

    def for_user(self, raw_id: int, user_idx: int | None
                 ) -> tuple[UserState | None, list[str]]:
        """The request path's read: a user's state by raw id (``user_idx``: the models' index,
        None for a user they never saw) and the stages that fell back (``features:store``
        when the live store could not be read and the last state known was served)."""
        ...


def _derive_dislikes(users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                     genres: pd.Series, threshold: float, min_count: int) -> dict[int, frozenset]:
    """User -> derived disliked genres, vectorised over (user, genre) pairs (rule in module doc)."""
    rated = ~np.isnan(ratings)
    frame = pd.DataFrame({"user": users[rated], "rating": ratings[rated],
                          "genre": genres.iloc[items[rated]].to_numpy()})
    frame = frame.explode("genre").dropna(subset=["genre"])
    if frame.empty:
        return {}
    frame["low"] = frame["rating"] <= threshold
    stats = frame.groupby(["user", "genre"]).agg(low=("low", "sum"), mean=("rating", "mean"))
    hit = stats[(stats["low"] >= min_count) & (stats["mean"] <= threshold)].reset_index()
    return {int(u): frozenset(g["genre"]) for u, g in hit.groupby("user")}


class InMemoryUserStore:
    """``UserStore`` in a dict, loaded from training interactions.

    Thread-safe: mutations hold a lock and swap in a new frozen ``UserState``; ``get`` is a
    single dict read, so it needs no lock and always returns a consistent snapshot.
    """

    def __init__(self, genres: pd.Series, dislike_threshold: float = 2.0,
                 min_dislikes: int = 2) -> None:
        self._genres = genres.reset_index(drop=True)  # row i = genres of item index i
        self._threshold = dislike_threshold
        self._min = min_dislikes
        self._states: dict[int, UserState] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_events(cls, events: pd.DataFrame, items: pd.DataFrame,
                    dislike_threshold: float = 2.0, min_dislikes: int = 2) -> InMemoryUserStore:
        """Store from interactions (``user_idx``, ``item_idx``, ``rating``, ``timestamp``) and
        the catalog by item index (``Dataset.items_by_index()``). Events without a timestamp
        sort last within their user, and that user's ``timestamps`` is None."""
        store = cls(items["genres"], dislike_threshold, min_dislikes)
        users = events["user_idx"].to_numpy(np.int64)
        ts_missing = events["timestamp"].isna().to_numpy()
        ts = events["timestamp"].astype("Float64").fillna(np.inf).to_numpy(np.float64)
        order = np.lexsort((ts, users))  # stable: ties keep input order
        users = users[order]
        item_arr = events["item_idx"].to_numpy(np.int64)[order]
        ratings = events["rating"].to_numpy(np.float32, na_value=np.nan)[order]
        ts_int = np.where(ts_missing, 0, ts).astype(np.int64)[order]
        ts_missing = ts_missing[order]
        store._check_items(item_arr)
        disliked = _derive_dislikes(users, item_arr, ratings, store._genres,
                                    dislike_threshold, min_dislikes)
        uniq, starts = np.unique(users, return_index=True)
        bounds = np.append(starts, len(users))
        for j, u in enumerate(uniq.tolist()):
            s = slice(bounds[j], bounds[j + 1])
            store._states[u] = UserState(
                user_idx=u, items=item_arr[s], ratings=ratings[s],
                timestamps=None if ts_missing[s].any() else ts_int[s],
                disliked_genres=disliked.get(u, frozenset()))
        return store

    def __len__(self) -> int:
        return len(self._states)

    def get(self, user_idx: int) -> UserState | None:
        return self._states.get(int(user_idx))

    def for_user(self, raw_id: int, user_idx: int | None
                 ) -> tuple[UserState | None, list[str]]:
        """The training snapshot knows users by index only: a new user has no state."""
        return (self.get(user_idx) if user_idx is not None else None), []

    def append(self, user_idx: int, item_idx: int, rating: float | None,
               timestamp: int | None) -> None:
        """Add one event as the user's newest; unknown users get a fresh state."""
        self._check_items(np.array([item_idx]))
        with self._lock:
            old = self._states.get(int(user_idx)) or self._empty(int(user_idx))
            ts = None  # one unknown timestamp makes the whole history untimed, as from_frame
            if old.timestamps is not None and timestamp is not None:
                ts = np.append(old.timestamps, np.int64(timestamp))
            new = replace(old, items=np.append(old.items, np.int64(item_idx)),
                          ratings=np.append(old.ratings, np.float32(
                              np.nan if rating is None else rating)), timestamps=ts)
            self._states[new.user_idx] = self.with_dislikes(new)

    def set_profile(self, user_idx: int, **fields: Any) -> None:
        """Merge profile fields (``max_maturity``, ``region``, ``disliked_genres``)."""
        unknown = sorted(set(fields) - set(PROFILE_FIELDS))
        if unknown:
            raise RecsysError(f"Unknown profile field(s) {unknown}; allowed: {PROFILE_FIELDS}.")
        if "disliked_genres" in fields:
            fields["disliked_genres"] = frozenset(fields["disliked_genres"] or ())
        with self._lock:
            old = self._states.get(int(user_idx)) or self._empty(int(user_idx))
            new = replace(old, profile={**old.profile, **fields})
            self._states[new.user_idx] = self.with_dislikes(new)

    def _empty(self, user_idx: int) -> UserState:
        return UserState(user_idx, np.empty(0, np.int64), np.empty(0, np.float32),
                         np.empty(0, np.int64))

    def with_dislikes(self, state: UserState) -> UserState:
        """Re-derive one user's disliked genres and add the explicit ones."""
        derived = _derive_dislikes(np.zeros(len(state.items), np.int64), state.items,
                                   state.ratings, self._genres, self._threshold, self._min)
        explicit = state.profile.get("disliked_genres", frozenset())
        return replace(state, disliked_genres=derived.get(0, frozenset()) | explicit)

    def _check_items(self, items: np.ndarray) -> None:
        if len(items) and (items.min() < 0 or items.max() >= len(self._genres)):
            raise RecsysError(f"Item index out of range: the catalog has {len(self._genres)} "
                              "items; was the store built from the same dataset?")
