"""The durable event log, behind one interface with two backends: SQLite (embedded, WAL, the
default) and Redis Streams (several replicas or hosts).

Delivery contract, the same for both:
- ``append`` returns only once the batch is durable (committed / written to the AOF), so an
  acknowledged event survives ``kill -9`` of any process (the backends' power-loss policy is
  ``EventsConfig.sqlite_sync`` / ``redis_fsync``).
- Idempotent: an ``event_id`` the log took in the last ``dedup_days`` (by ingest time) is not
  stored again; ``append`` says which ones were duplicates.
- Partitioned by user (``partition_of``): one user's events keep their order.
- ``read`` delivers at least once: what a consumer has not ``commit``-ted comes again after
  its restart, so the consumer must apply idempotently (the store does, by ``event_id``).

A Kafka backend would be one more class with these methods (a topic partitioned by user, a
consumer group committing offsets after apply); none ships, because none could be tested here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from recsys.events.settings import Backend, EventsConfig


class LogUnavailable(Exception):
    """The log cannot take or give events right now (the server is down): retry later."""


@dataclass(frozen=True)
class Appended:
    accepted: int  # new records stored
    duplicates: list[int]  # indices (in the appended batch) of event_ids already in the log


@dataclass(frozen=True)
class Entry:
    """One delivered record and where it sits in the log (backend-specific, for ``commit``)."""

    position: Any
    record: dict[str, Any]


@dataclass(frozen=True)
class DeadLetter:
    """An event the system refused or could not apply, kept for an operator to read."""

    reason: str  # e.g. "invalid", "unknown_item", "future", "late"
    detail: str  # the field and the message
    payload: Any  # what was received (the event as posted, or the log record)
    received_ms: int
    event_id: str | None = None


class EventLog(Protocol):
    def append(self, records: Sequence[dict[str, Any]]) -> Appended: ...

    def read(self, consumer: str, max_n: int, block_ms: int = 0) -> list[Entry]: ...

    def commit(self, consumer: str, entries: Sequence[Entry]) -> None: ...

    def rewind(self, consumer: str) -> None:
        """The next ``read`` starts again after ``consumer``'s last commit (a batch that failed
        to apply is delivered again, never skipped)."""
        ...

    def scan(self, batch: int = 10_000) -> Iterator[list[Entry]]: ...

    def lag(self, consumer: str) -> int: ...

    def count(self) -> int: ...

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None: ...

    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]: ...

    def dead_letter_count(self) -> int: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def partition_of(record: dict[str, Any], partitions: int) -> int:
    """The partition of a record: its user's (a title record: its item's)."""
    key = record.get("user_id", record.get("item_id", 0))
    return int(key) % max(int(partitions), 1)


def open_log(cfg: EventsConfig, folder: str | None = None) -> EventLog:
    """The configured backend's log; ``folder``: where the SQLite files live when
    ``cfg.path`` is not set."""
    if cfg.backend == Backend.redis:
        from recsys.events.redis_log import RedisEventLog

        return RedisEventLog(cfg)
    from recsys.events.sqlite_log import SqliteEventLog

    return SqliteEventLog(cfg, folder)
