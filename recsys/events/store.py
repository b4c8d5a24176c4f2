"""The online feature store: the state the stream processor keeps from the log, read by every
serving replica. One interface, two backends (SQLite embedded, Redis), the same as the log's.

Writes come from one processor at a time, in batches: ``apply`` stores a batch's new events
(by ``event_id``: a redelivered event is a duplicate, so at-least-once delivery counts each
event once) and everything derived from them atomically, so a crash leaves the batch either
wholly applied or not at all. What a reader derives from the state is in
``recsys.events.aggregates`` (the same functions training uses offline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from recsys.events.aggregates import TitleFeatures, UserEvents
from recsys.events.settings import Backend, EventsConfig


@dataclass(frozen=True)
class Applied:
    applied: int  # new events applied
    duplicates: int  # already applied (a redelivery, or an id repeated in the window)


class FeatureStore(Protocol):
    def apply(self, records: Sequence[dict[str, Any]]) -> Applied: ...

    def user_version(self, user_id: int) -> int: ...

    def user_events(self, user_id: int) -> UserEvents: ...

    def all_user_events(self) -> dict[int, UserEvents]: ...

    def title_features(self, now_ms: int) -> TitleFeatures: ...

    def added_titles(self, after: int = 0) -> list[tuple[int, dict[str, Any]]]: ...

    def dump(self) -> dict[str, Any]: ...

    def clear(self) -> None: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def open_store(cfg: EventsConfig, folder: str | None = None, rebuild: bool = False
               ) -> FeatureStore:
    """The configured backend's store (``folder`` as for ``open_log``); ``rebuild``: for a
    replay, which empties it anyway (an older layout is then no error)."""
    if cfg.backend == Backend.redis:
        from recsys.events.redis_store import RedisFeatureStore

        return RedisFeatureStore(cfg)
    from recsys.events.sqlite_store import SqliteFeatureStore

    return SqliteFeatureStore(cfg, folder, rebuild)


def dedup_window_ms(cfg: EventsConfig) -> int:
    return max(int(cfg.dedup_days * 86_400_000), 1)


def is_duplicate(previous_ingest_ms: int | None, ingest_ms: int, cfg: EventsConfig) -> bool:
    """An event applied before within the dedup window (by ingest time: an id the log took
    again after the window is a new event, and replay decides it the same way)."""
    return (previous_ingest_ms is not None
            and ingest_ms - previous_ingest_ms < dedup_window_ms(cfg))


def marker_generation(ingest_ms: int, cfg: EventsConfig) -> int:
    """The dedup window an applied marker falls in (markers expire a window at a time)."""
    return int(ingest_ms) // dedup_window_ms(cfg)


def marker_cutoff_ms(newest_ingest_ms: int, cfg: EventsConfig) -> int:
    """Applied markers ingested before this are dropped (and ignored): the start of the window
    before the newest ingest's, so a marker lives one to two windows past its ingest.

    Why that is enough: the log never takes an ``event_id`` twice within a window, so a
    marker only has to catch the redelivery of its own record, which comes while the processor
    is behind; a processor more than ``dedup_days`` behind the newest ingest could apply a
    redelivered record twice. By ingest time, not the clock, so replay drops the same ones.
    """
    return (marker_generation(newest_ingest_ms, cfg) - 1) * dedup_window_ms(cfg)
