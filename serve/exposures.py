"""Exposure logging in the router: every response with a user becomes an ``impression`` record
(``recsys.experiments.exposures``) in the event log, off the response path.

Records are gathered for ``FLUSH_S`` (or ``FLUSH_AT`` records) and appended in one batch on the
router's writer thread, so a response never waits for a durable write and the log sees one
transaction per batch instead of one per request. The price: a router killed between two
flushes loses that moment's exposures (at most ``FLUSH_S`` of them), which the report would see
as engagement without an exposure; a log that is down drops the batch and counts it
(``recsys_exposures_dropped_total``), never failing a request.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any

from recsys.events.log import EventLog, LogUnavailable
from serve import metrics

log = logging.getLogger(__name__)
FLUSH_S = 0.05
FLUSH_AT = 500


class ExposureWriter:
    def __init__(self, event_log: EventLog, writer: Executor) -> None:
        self.log, self.writer = event_log, writer
        self.pending: list[dict[str, Any]] = []
        self._flush: asyncio.TimerHandle | None = None

    def add(self, record: dict[str, Any]) -> None:
        """Queue one exposure; called on the router's event loop."""
        self.pending.append(record)
        if len(self.pending) >= FLUSH_AT:
            self.flush()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        batch, self.pending = self.pending, []
        if batch:
            asyncio.get_running_loop().run_in_executor(self.writer, self.append, batch)

    def append(self, batch: list[dict[str, Any]]) -> None:
        try:
            self.log.append(batch)
            metrics.EXPOSURES.inc(len(batch))
        except LogUnavailable as err:
            metrics.EXPOSURES_DROPPED.inc(len(batch))
            log.warning("%d exposures not logged: %s", len(batch), err)
