"""User state from the shared online store: what every serving replica reads, so a play
posted to ``/v1/events`` reaches the watched filter and the history-based sources of every
replica as soon as the stream processor has applied it.

Each request asks the store for the user's version (one small read); only when it moved is the
history read again and the state rebuilt, so unchanged users cost one lookup and keep their
state object (the row cache keys on its identity). At start, every user's history comes in one
read (``prefill``). A user the models never saw is served from their own events (new users are
normal: the sources fold them in). When the store cannot be read, the last state this replica
knew is served and ``features:store`` is named in ``degraded``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np
import pandas as pd

from recsys.events.aggregates import UserEvents
from recsys.events.store import FeatureStore
from recsys.serving.live_catalog import LiveCatalog
from recsys.serving.state import InMemoryUserStore, UserState

log = logging.getLogger(__name__)
DEGRADED = "features:store"


class LiveUserStore:
    """``UserStore`` over a ``FeatureStore``; ``limit``: users whose state a replica keeps."""

    def __init__(self, store: FeatureStore, user_ids: np.ndarray, limit: int = 1_000_000
                 ) -> None:
        self.store, self.limit = store, int(limit)
        self.user_ids = np.asarray(user_ids)
        self.user_index = {int(u): i for i, u in enumerate(self.user_ids.tolist())}
        self._catalog: Callable[[], LiveCatalog] | None = None
        self._rule: tuple[object, InMemoryUserStore] | None = None  # (catalog, dislike rule)
        self._states: dict[int, tuple[tuple[int, int], UserState]] = {}  # raw -> (key, state)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def attach(self, catalog: Callable[[], LiveCatalog]) -> None:
        """The replica's current catalog (it grows as titles are added), then ``prefill``:
        called by the request path it serves."""
        self._catalog = catalog
        self.prefill()

    def item_index(self) -> dict[int, int]:
        return self._catalog().item_index

    def genres(self) -> pd.Series:
        return self._catalog().items["genres"]

    def prefill(self) -> None:
        """Every user's state from one read of the store (vectorised, as training's)."""
        histories = self.store.all_user_events()
        if not histories:
            return
        index = self.item_index()
        raw_users = list(histories)
        frames = []
        for pos, raw in enumerate(raw_users):
            ev = histories[raw]
            frames.append(pd.DataFrame({"user_idx": pos, "item_idx": ev.item_id,
                                        "rating": ev.value, "timestamp": ev.ts_ms // 1000}))
        events = pd.concat(frames, ignore_index=True)
        events["item_idx"] = events["item_idx"].map(index)
        events = events.dropna(subset=["item_idx"]).astype({"item_idx": np.int64})
        events["timestamp"] = events["timestamp"].astype("Int64")
        built = InMemoryUserStore.from_events(events, pd.DataFrame({"genres": self.genres()}))
        n_items = len(index)
        with self._lock:
            for pos, raw in enumerate(raw_users):
                state = built.get(pos)
                if state is not None:
                    state = UserState(self.user_index.get(raw), state.items, state.ratings,
                                      state.timestamps, state.disliked_genres)
                    self._states[raw] = ((histories[raw].version, n_items), state)

    def get(self, user_idx: int) -> UserState | None:
        """A known user's state as last read (the row cache's prefill)."""
        hit = self._states.get(int(self.user_ids[user_idx]))
        return hit[1] if hit else None

    def for_user(self, raw_id: int, user_idx: int | None
                 ) -> tuple[UserState | None, list[str]]:
        raw_id = int(raw_id)
        hit = self._states.get(raw_id)
        try:
            version = self.store.user_version(raw_id)
            if version == 0:
                return None, []
            key = (version, len(self.item_index()))
            if hit is not None and hit[0] == key:
                return hit[1], []
            events = self.store.user_events(raw_id)
            state = self.build(raw_id, user_idx, events)
        except Exception as err:  # noqa: BLE001 - a store that is down degrades, never fails
            log.warning("user store unavailable (%s: %s); serving the last state known",
                        type(err).__name__, err)
            return (hit[1] if hit else None), [DEGRADED]
        with self._lock:
            self._states[raw_id] = ((events.version, key[1]), state)
            while len(self._states) > self.limit:
                del self._states[next(iter(self._states))]
        return state, []

    def build(self, raw_id: int, user_idx: int | None, events: UserEvents) -> UserState:
        """One user's state from their history (titles this replica does not have yet are
        left out until it does)."""
        index = self.item_index()
        known = np.array([i in index for i in events.item_id.tolist()], bool)
        items = np.array([index[i] for i in events.item_id[known].tolist()], np.int64)
        state = UserState(user_idx, items, events.value[known].astype(np.float32),
                          (events.ts_ms[known] // 1000).astype(np.int64))
        return self.dislikes().with_dislikes(state)

    def dislikes(self) -> InMemoryUserStore:
        """The disliked-genre rule over the current catalog, built once per catalog snapshot
        (not per rebuilt user: that is a request's work)."""
        live = self._catalog()
        if self._rule is None or self._rule[0] is not live.catalog:
            self._rule = (live.catalog, InMemoryUserStore(live.items["genres"]))
        return self._rule[1]
