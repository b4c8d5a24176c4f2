"""Title features from the live store, read once per ``title_refresh_s`` by each replica: the
trending list (``OnlineTrending``) and the ranker's item activity columns (events, engaged
events, mean rating, engaged share: ``recsys.ranking.activity``), so a title's popularity and
engagement move with the events instead of staying where training left them.

The activity columns are computed as training computes them, from the same counts: right after
the store is backfilled with the bundle's training events they equal the trained columns
(tested), and live events then move them. Titles with no event have the columns of a title no
one watched, as in training. A ranker fitted with other engagement thresholds than the
store's (``serve.events.watch_complete`` / ``engaged_rating``) keeps its trained columns.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from recsys.events.aggregates import TitleFeatures, rows_of
from recsys.events.store import FeatureStore
from recsys.ranking.activity import activity_columns
from recsys.ranking.features import FeatureBuilder, FeatureTables
from recsys.serving import catalog_admin

if TYPE_CHECKING:
    from recsys.serving.online_trending import OnlineTrending
    from recsys.serving.request_path import RequestPath

log = logging.getLogger(__name__)


def item_activity(features: TitleFeatures, at: np.ndarray, n_items: int) -> np.ndarray:
    """(n_items, 4) raw activity columns per item index (``at``: each store row's item index,
    -1 for a title this replica lacks), as training computes them."""
    ok = at >= 0
    counts = np.zeros((4, n_items))
    for column, values in enumerate((features.events, features.engaged, features.rating_sum,
                                     features.rating_n)):
        counts[column, at[ok]] = values[ok]
    return activity_columns(*counts)


class LiveTitles:
    def __init__(self, path: RequestPath, store: FeatureStore,
                 trending: list[OnlineTrending], refresh_s: float) -> None:
        self.path, self.store, self.trending = path, store, trending
        self.refresh_s = float(refresh_s)
        events = path.cfg.events
        p = path.bundle.builder.p
        self.activity = (p.rating_threshold == events.engaged_rating
                         and p.watch_threshold == events.watch_complete)
        if not self.activity:
            log.warning("the ranker's engagement thresholds (%s, %s) are not the store's (%s, "
                        "%s): serving its trained item activity columns", p.rating_threshold,
                        p.watch_threshold, events.engaged_rating, events.watch_complete)
        self._stop = threading.Event()

    def refresh(self, now_ms: int | None = None) -> None:
        """One read of the store: trending's live scores and the item activity columns."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        features = self.store.title_features(now_ms)
        with catalog_admin.lock:  # a title added meanwhile must not be lost, nor this swap
            live = self.path.live
            at, known = rows_of(live.item_ids, features.item_id)  # store row -> item index
            at = np.where(known, at, -1)
            for source in self.trending:
                source.update(features, at, live.n_items)
            if self.activity:
                self.path.live = with_item_dense(live, self.path.bundle.builder, item_activity(
                    features, at, live.n_items))

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.refresh_s):
                try:
                    self.refresh()
                except Exception as err:  # noqa: BLE001 - the store may be down: keep the last
                    log.debug("title features refresh failed: %s", err)

        threading.Thread(target=loop, name="live-titles", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def with_item_dense(live, builder: FeatureBuilder, stats: np.ndarray):
    """``live`` with its ranker item rows' dense columns from ``stats`` (normalised as fitted)."""
    dense = ((stats - builder.item_dense_mean) / builder.item_dense_std).astype(np.float32)
    t = live.item_tables
    tables = FeatureTables(t.user_ids, t.user_weights, t.user_dense, t.item_ids,
                           t.item_weights, dense)
    return dataclasses.replace(live, item_tables=tables)
