"""The real-time features computed offline from the log, for training: the same functions the
online store serves (``recsys.events.aggregates``), over the same accepted events (the
store's dedup rule, the processor's lateness bound), point in time: an event's features come
from the events before it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from recsys.events.aggregates import (
    HISTORY_TYPES,
    TitleFeatures,
    TitleRow,
    UserEvents,
    UserFeatures,
    plan_batch,
    title_features,
)
from recsys.events.processor import split_late
from recsys.events.settings import EventsConfig
from recsys.events.store import is_duplicate


def accepted(records: Iterable[dict[str, Any]], cfg: EventsConfig) -> list[dict[str, Any]]:
    """The log's records (in log order) that the store applies: on time, and not a
    duplicate of one applied earlier."""
    on_time, _ = split_late(list(records), cfg)
    seen: dict[str, int] = {}
    out = []
    for r in on_time:
        event_id, ingest = str(r["event_id"]), int(r["ingest_ms"])
        if not is_duplicate(seen.get(event_id), ingest, cfg):
            seen[event_id] = ingest
            out.append(r)
    return out


def user_histories(records: Sequence[dict[str, Any]]) -> dict[int, UserEvents]:
    """Each user's watch history from accepted records, as the store keeps it."""
    rows: dict[int, list[tuple]] = defaultdict(list)
    for r in records:
        if r["type"] in HISTORY_TYPES:
            rows[int(r["user_id"])].append((int(r["ts_ms"]), str(r["event_id"]),
                                            int(r["item_id"]), r["type"], r.get("value"),
                                            r.get("watch_fraction")))
    return {u: UserEvents.from_rows(v, len(v)) for u, v in rows.items()}


def point_in_time_user_features(records: Sequence[dict[str, Any]],
                                genres_of: Callable[[int], Sequence[str]], cfg: EventsConfig
                                ) -> dict[str, UserFeatures]:
    """event_id -> the user's features at that event's time (from events before it)."""
    from recsys.events.aggregates import user_features

    histories = user_histories(records)
    empty = UserEvents.from_rows([])
    return {str(r["event_id"]): user_features(histories.get(int(r["user_id"]), empty),
                                              int(r["ts_ms"]), genres_of, cfg)
            for r in records if "user_id" in r}


def offline_title_features(records: Sequence[dict[str, Any]], now_ms: int, cfg: EventsConfig
                           ) -> TitleFeatures:
    """Every title's features at ``now_ms`` from accepted records (all of them: the caller
    passes the events before ``now_ms`` for a point-in-time value)."""
    plan = plan_batch(records, {}, cfg)
    items = sorted(plan.titles)
    rows = np.array([list(vars(plan.titles[i]).values()) for i in items], np.float64)
    hours = np.array([(i, h, n) for (i, h), n in plan.hours.items()], np.int64)
    return title_features(np.array(items, np.int64), rows.reshape(-1, len(vars(TitleRow()))),
                          hours, now_ms, cfg)
