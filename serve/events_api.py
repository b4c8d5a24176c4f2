"""``POST /v1/events`` in the router: size limits, the write key, parsing, then the ingest
(``recsys.events.ingest``: per-event checks, the durable append, dead letters).

Status codes: 202 once the batch's valid events are durable (the body counts accepted,
duplicate and rejected events, and lists each rejected one by index, field and reason); 413
above ``max_batch_events`` / ``max_batch_bytes``; 422 for a body that is not a JSON array of
events, or when every event was rejected; 401 / 403 without a write key (``serve/auth.py``);
503 with ``Retry-After`` while the log is down (nothing was acknowledged: retry the batch, its
event ids make that safe).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from recsys.events.ingest import EVENTS, Ingest, schema_errors
from recsys.events.log import Appended, LogUnavailable, open_log
from recsys.events.records import title_record
from recsys.events.settings import EventsConfig
from recsys.events.store import open_store
from serve import metrics
from serve.auth import ApiKeys, AuthError

RETRY_AFTER_S = "1"
KNOWN_REFRESH_S = 0.5  # an unknown title id re-reads the store's added titles at most this often


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def auth_error(err: AuthError) -> JSONResponse:
    return error(err.status, err.message,
                 {"WWW-Authenticate": "Bearer"} if err.status == 401 else None)


def unavailable(err: Exception) -> JSONResponse:
    return error(503, f"the event log is unavailable ({err}); nothing was stored: retry",
                 {"Retry-After": RETRY_AFTER_S})


class KnownTitles:
    """The catalog's raw ids as the router knows them: the bundle's, plus the titles added
    since (read from the store when an id is not known yet)."""

    def __init__(self, bundle_dir: Path, store: Any) -> None:
        self.ids = set(np.load(bundle_dir / "ids.npz")["item_ids"].tolist())
        self.store, self.seq, self.read_at = store, 0, 0.0
        self._lock = threading.Lock()

    def __contains__(self, item_id: int) -> bool:
        if item_id in self.ids:
            return True
        if time.monotonic() - self.read_at > KNOWN_REFRESH_S:
            self.refresh()
        return item_id in self.ids

    def refresh(self) -> None:
        with self._lock:
            self.read_at = time.monotonic()
            new = self.store.added_titles(self.seq)
            if new:
                self.ids.update(int(t["item_id"]) for _, t in new)
                self.seq = new[-1][0]


def rating_scale(bundle_dir: Path) -> tuple[float, float]:
    """The dataset's rating range (from the training events the bundle holds)."""
    ratings = pd.read_parquet(bundle_dir / "events.parquet", columns=["rating"])["rating"]
    ratings = ratings.dropna()
    return (float(ratings.min()), float(ratings.max())) if len(ratings) else (0.0, 5.0)


class EventsEndpoint:
    def __init__(self, cfg: EventsConfig, folder: str, bundle_dir: Path, keys: ApiKeys) -> None:
        self.cfg, self.keys = cfg, keys
        self.log = open_log(cfg, folder)
        self.store = open_store(cfg, folder)
        self.known = KnownTitles(bundle_dir, self.store)
        self.ingest = Ingest(self.log, cfg, self.known.__contains__, rating_scale(bundle_dir))

    async def body(self, request: Request) -> bytes | JSONResponse:
        """The request body within ``max_batch_bytes`` (a 413 naming the limit otherwise)."""
        limit = self.cfg.max_batch_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return error(413, f"the body is {int(declared)} bytes; the limit is {limit} bytes "
                              f"(serve.events.max_batch_bytes): split the batch")
        body = await request.body()
        if len(body) > limit:
            return error(413, f"the body is {len(body)} bytes; the limit is {limit} bytes "
                              f"(serve.events.max_batch_bytes): split the batch")
        return body

    def post(self, body: bytes) -> JSONResponse:
        """A parsed, checked, durably appended batch (module doc for the status codes)."""
        try:
            parsed, rejected = list(EVENTS.validate_json(body)), []
            items: list[Any] | None = None
        except ValidationError:
            try:
                items = json.loads(body)
            except ValueError as err:
                return JSONResponse({"detail": [{"parameter": "body", "message":
                                     f"not JSON: {err}"}]}, status_code=422)
            if not isinstance(items, list):
                return JSONResponse({"detail": [{"parameter": "body", "message":
                                     "expected a JSON array of events"}]}, status_code=422)
            parsed, rejected = schema_errors(items)
        n = len(parsed)
        if n > self.cfg.max_batch_events:
            return error(413, f"the batch has {n} events; the limit is "
                              f"{self.cfg.max_batch_events} (serve.events.max_batch_events)")
        if n == 0:
            return JSONResponse({"detail": [{"parameter": "body", "message":
                                 "the batch is empty"}]}, status_code=422)
        try:
            out = self.ingest.submit(parsed, rejected, items)
        except LogUnavailable as err:
            metrics.EVENTS_UNAVAILABLE.inc()
            return unavailable(err)
        metrics.observe_events(out.accepted, out.duplicates, (r.reason for r in out.rejected))
        body_out = {"accepted": out.accepted, "duplicates": out.duplicates,
                    "rejected": [r.as_dict() for r in out.rejected]}
        status = 422 if out.accepted == 0 and out.duplicates == 0 else 202
        return JSONResponse(body_out, status_code=status)

    def append_titles(self, rows: list[dict[str, Any]]) -> Appended:
        """Titles of ``POST /v1/items`` into the log (a repeated id is a duplicate); the
        router's known titles have them at once."""
        now_ms = int(time.time() * 1000)
        out = self.log.append([title_record(f"title:{r['item_id']}", r, now_ms) for r in rows])
        fresh = set(range(len(rows))) - set(out.duplicates)
        self.known.ids.update(rows[i]["item_id"] for i in fresh)
        return out

    async def applied(self, item_ids: list[int], timeout_s: float = 10.0) -> None:
        """Until the stream processor has put the titles in the store (or ``timeout_s``: they
        are durable in the log either way, and every replica adds them once applied)."""
        wanted, seq = set(item_ids), 0
        deadline = time.monotonic() + timeout_s
        while wanted and time.monotonic() < deadline:
            new = self.store.added_titles(seq)
            if new:
                wanted -= {int(t["item_id"]) for _, t in new}
                seq = new[-1][0]
            if wanted:
                await asyncio.sleep(0.02)
