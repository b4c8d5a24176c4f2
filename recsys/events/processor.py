"""The stream processor: reads the log at least once, applies each batch to the feature store
(idempotently, by ``event_id``) and commits its position only after the store has the batch.

A crash between the apply and the commit redelivers the batch; the store sees its events as
duplicates, so every acknowledged event is counted exactly once. An event that reached the log
more than ``lateness_s`` after it happened (ingest time minus event time, both in the record,
so replay decides it the same way) is late: counted, dead-lettered once, never applied.
Backfilled history is exempt: it is old by definition.

``python -m recsys.stream`` runs one on its own; the serving stack runs one as a Ray actor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys.events.log import DeadLetter, EventLog, LogUnavailable
from recsys.events.records import ORIGIN_API, TITLE_ADDED
from recsys.events.settings import EventsConfig
from recsys.events.store import FeatureStore

log = logging.getLogger(__name__)
CONSUMER = "processor"
RETRY_S = 0.5  # between attempts while the log or the store is down


def split_late(records: Sequence[dict[str, Any]], cfg: EventsConfig
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(on time, late) by the lateness bound (module doc)."""
    bound_ms = cfg.lateness_s * 1000
    on_time, late = [], []
    for r in records:
        too_late = (r.get("origin") == ORIGIN_API and r["type"] != TITLE_ADDED
                    and r["ingest_ms"] - r["ts_ms"] > bound_ms)
        (late if too_late else on_time).append(r)
    return on_time, late


@dataclass
class ProcessorStats:
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    batches: int = 0
    errors: int = 0
    # ingest -> applied, ms, of the latest events (event-to-feature freshness)
    freshness_ms: deque = field(default_factory=lambda: deque(maxlen=100_000))

    def summary(self) -> dict[str, Any]:
        fresh = np.array(self.freshness_ms, np.float64)
        pct = (lambda q: float(np.percentile(fresh, q))) if len(fresh) else (lambda q: None)
        return {"applied": self.applied, "duplicates": self.duplicates, "late": self.late,
                "batches": self.batches, "errors": self.errors,
                "freshness_p50_ms": pct(50), "freshness_p99_ms": pct(99)}


class StreamProcessor:
    def __init__(self, event_log: EventLog, store: FeatureStore, cfg: EventsConfig,
                 consumer: str = CONSUMER) -> None:
        self.log, self.store, self.cfg, self.consumer = event_log, store, cfg, consumer
        self.stats = ProcessorStats()

    def step(self, block_ms: int = 0) -> int:
        """Read, apply and commit one batch; the number of records it held."""
        entries = self.log.read(self.consumer, self.cfg.processor_batch, block_ms)
        if not entries:
            return 0
        records = [e.record for e in entries]
        on_time, late = split_late(records, self.cfg)
        now_ms = int(time.time() * 1000)
        try:
            self.log.dead_letter([DeadLetter(
                "late", f"timestamp: arrived {(r['ingest_ms'] - r['ts_ms']) / 1000:.0f} s "
                f"after it happened (bound {self.cfg.lateness_s:.0f} s)", r, now_ms,
                str(r["event_id"])) for r in late])
            result = self.store.apply(on_time)
            self.log.commit(self.consumer, entries)
        except BaseException:
            self.log.rewind(self.consumer)  # this batch again next time, never skipped
            raise
        done_ms = time.time() * 1000
        s = self.stats
        s.applied += result.applied
        s.duplicates += result.duplicates
        s.late += len(late)
        s.batches += 1
        s.freshness_ms.extend(done_ms - r["ingest_ms"] for r in on_time
                              if r.get("origin") == ORIGIN_API)
        return len(entries)

    def drain(self, timeout_s: float = 60.0) -> int:
        """Apply everything in the log now (tests, backfill, ``make run``); records seen."""
        deadline, total = time.monotonic() + timeout_s, 0
        while time.monotonic() < deadline:
            n = self.step()
            total += n
            if n == 0 and self.log.lag(self.consumer) == 0:
                return total
        raise TimeoutError(f"the processor did not catch up within {timeout_s:.0f} s")

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set; an unavailable log or store is waited out, never fatal."""
        while not stop.is_set():
            try:
                self.step(self.cfg.processor_poll_ms)
            except Exception as err:  # noqa: BLE001 - a backend that is down comes back
                self.stats.errors += 1
                if not isinstance(err, LogUnavailable):
                    log.warning("stream processor: %s: %s; retrying", type(err).__name__, err)
                stop.wait(RETRY_S)


def replay(event_log: EventLog, store: FeatureStore, cfg: EventsConfig) -> int:
    """Rebuild ``store`` from the whole log, as the processor would have built it; records
    read. (Late events were dead-lettered when they were first processed: not again.)"""
    store.clear()
    total = 0
    for entries in event_log.scan(cfg.processor_batch):
        on_time, _ = split_late([e.record for e in entries], cfg)
        store.apply(on_time)
        total += len(entries)
    return total
