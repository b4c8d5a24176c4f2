"""History into the log: a dataset's interactions (MovieLens, the synthetic generator's output,
a bundle's training events) as backfill records, so the store and the demo start from real
history and training later reads one log.

Event ids are derived from the content (user, title, type, time, and the occurrence of that
combination), so loading the same history twice stores it once. Events without a timestamp
(the ml-1m reconstruction has some) get the earliest known time: they are known to be old.
A synthetic ``search`` row names the title found, so it is kept as a click from the search
surface (a search record carries a query and no title).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from recsys.events.log import EventLog
from recsys.events.records import ORIGIN_BACKFILL

BATCH = 5_000


def backfill_records(interactions: pd.DataFrame, source: str) -> Iterator[list[dict[str, Any]]]:
    """Batches of log records from canonical interactions (``user_id``, ``item_id``,
    ``rating``, ``timestamp``, ``event_type``, ``watch_fraction``)."""
    ts = interactions["timestamp"]
    earliest = int(ts.min()) if ts.notna().any() else 0
    seconds = ts.astype("Float64").fillna(earliest).to_numpy(np.float64)
    users = interactions["user_id"].to_numpy(np.int64)
    items = interactions["item_id"].to_numpy(np.int64)
    kinds = interactions["event_type"].astype(str).to_numpy()
    ratings = interactions["rating"].to_numpy(np.float64, na_value=np.nan)
    watched = interactions["watch_fraction"].to_numpy(np.float64, na_value=np.nan)
    ingest_ms = int(time.time() * 1000)
    seen: Counter = Counter()
    batch: list[dict[str, Any]] = []
    for u, i, kind, t, r, w in zip(users.tolist(), items.tolist(), kinds.tolist(),
                                   seconds.tolist(), ratings.tolist(), watched.tolist(),
                                   strict=True):
        key = (u, i, kind, int(t))
        seen[key] += 1
        record: dict[str, Any] = {
            "event_id": f"{source}:{u}:{i}:{kind}:{int(t)}:{seen[key]}", "type": kind,
            "user_id": u, "item_id": i, "ts_ms": int(t * 1000), "ingest_ms": ingest_ms,
            "origin": ORIGIN_BACKFILL}
        if kind == "rating":
            record["value"] = r
        elif kind == "play":
            record["watch_fraction"] = 0.0 if w != w else w
        elif kind == "search":
            record.update(type="click", surface="search")
        batch.append(record)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def bundle_interactions(events: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray
                        ) -> pd.DataFrame:
    """A bundle's training events (indices) as canonical interactions (raw ids)."""
    return pd.DataFrame({
        "user_id": np.asarray(user_ids)[events["user_idx"].to_numpy(np.int64)],
        "item_id": np.asarray(item_ids)[events["item_idx"].to_numpy(np.int64)],
        "rating": events["rating"], "timestamp": events["timestamp"],
        "event_type": events["event_type"], "watch_fraction": events["watch_fraction"]})


def backfill(event_log: EventLog, interactions: pd.DataFrame, source: str,
             progress: Any = None) -> tuple[int, int]:
    """Append the history to the log; (stored, already there)."""
    stored = duplicates = 0
    for batch in backfill_records(interactions, source):
        out = event_log.append(batch)
        stored += out.accepted
        duplicates += len(out.duplicates)
        if progress is not None:
            progress.update(len(batch))
    return stored, duplicates
