"""Titles added through ``POST /v1/items`` reach every replica through the store: the router
appends them to the log, the stream processor applies them, and each replica's
``CatalogSync`` adds what it does not have yet (at start, so a restarted replica has them too,
then every ``interval_s`` and on demand).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import pandas as pd

from recsys.events.store import FeatureStore
from recsys.serving.catalog_admin import add_titles

if TYPE_CHECKING:
    from recsys.serving.request_path import RequestPath

log = logging.getLogger(__name__)


class CatalogSync:
    def __init__(self, path: RequestPath, store: FeatureStore) -> None:
        self.path, self.store = path, store
        self.seq = 0  # the store's added-title sequence this replica has
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def sync(self) -> int:
        """Add the store's titles this replica lacks; how many it added."""
        with self._lock:
            new = self.store.added_titles(self.seq)
            if not new:
                return 0
            index = self.path.live.item_index
            titles = [t for _, t in new if int(t["item_id"]) not in index]
            if titles:
                add_titles(self.path, pd.DataFrame(titles))
            self.seq = new[-1][0]
            return len(titles)

    def start(self, interval_s: float = 0.5) -> None:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.sync()
                except Exception as err:  # noqa: BLE001 - the store may be down: next time
                    log.debug("catalog sync failed: %s", err)

        threading.Thread(target=loop, name="catalog-sync", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
