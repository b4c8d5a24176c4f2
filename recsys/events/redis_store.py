"""The feature store on Redis: the ``FeatureStore`` of ``store.py`` for replicas on several
hosts, with the SQLite store's semantics (``dump`` of the same events is equal, floats aside).

Layout under ``ns:store:`` (``ns`` = ``cfg.namespace``; the log's keys are beside it, so
``clear`` can never touch the log): ``applied:{g}`` (hash event_id -> ingest_ms of the markers
of dedup window ``g``, ``store.marker_generation``) with ``applied:gens`` (a sorted set of the
windows that have one: a window's hash is dropped whole when it expires), ``hist:{user}``
(a list of compact JSON rows ``[ts_ms, event_id, item_id, kind, value, watch_fraction]``),
``users`` (hash user -> version), ``titles`` (hash item -> JSON ``TitleRow`` fields),
``hour:{h}`` (hash item -> events in that hour) with ``hours`` (a sorted set of the hours
that have one), ``added`` (a stream of added titles with ids ``0-{seq}``), ``added:items``
(hash item -> seq: a title is added once) and ``added:seq`` (the last seq: it survives
``clear``, as SQLite's AUTOINCREMENT does, so a replica's ``after`` cursor stays valid).

``apply`` is all-or-nothing: it reads the applied markers and the touched rows, computes
``plan_batch`` (the logic every backend shares) and writes everything in one ``MULTI``/``EXEC``.
One processor writes at a time: it holds the lease ``ns:store:writer`` (``SET PX``, refreshed in
every batch's transaction), and the transaction ``WATCH``es it, so a second writer that slipped
in makes the first one's ``EXEC`` fail (``WriterConflict``) instead of applying a batch twice. A
writer that stops releases the lease in ``close``; one that dies loses it after ``LEASE_MS``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis

from recsys.events.aggregates import (
    HOUR_MS,
    N_TITLE_FIELDS,
    BatchPlan,
    TitleFeatures,
    TitleRow,
    UserEvents,
    hour_reach_ms,
    plan_batch,
    title_features,
)
from recsys.events.log import LogUnavailable
from recsys.events.redis_conn import close_quietly, connect, glob_escape, require_url, translated
from recsys.events.redis_store_scripts import (
    LOOKUP_MARKERS,
    PRUNE_HOURS,
    PRUNE_MARKERS,
    RELEASE,
)
from recsys.events.settings import EventsConfig
from recsys.events.sqlite_log import dumps
from recsys.events.store import Applied, is_duplicate, marker_cutoff_ms, marker_generation

LEASE_MS = 10_000
WEEK_H = 168
USERS_PER_TRIP = 500  # histories per pipelined round trip


class WriterConflict(LogUnavailable):
    """Another processor holds the store's writer lease: this one waits (retry later)."""


class RedisFeatureStore:
    """``FeatureStore`` on the Redis at ``cfg.redis_url`` (module doc)."""

    def __init__(self, cfg: EventsConfig) -> None:
        self.cfg = cfg
        self.url = require_url(cfg)
        self._r = connect(self.url)
        self.prefix = f"{cfg.namespace}:store:"
        self.lease_key = self.prefix + "writer"
        self._token = uuid.uuid4().hex  # this writer's lease value
        self._release = self._r.register_script(RELEASE)
        self._prune = self._r.register_script(PRUNE_HOURS)
        self._lookup = self._r.register_script(LOOKUP_MARKERS)
        self._prune_markers = self._r.register_script(PRUNE_MARKERS)

    def _k(self, *parts: Any) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    def _do(self, what: str) -> contextlib.AbstractContextManager[None]:
        return translated(self.url, what)

    # -- the writer ---------------------------------------------------------------------------
    def apply(self, records: Sequence[dict[str, Any]]) -> Applied:
        if not records:
            return Applied(0, 0)
        with self._do("apply"), self._r.pipeline(transaction=True) as tx:
            try:
                tx.watch(self.lease_key)
                fresh, plan, added, cutoff = self._plan(records)
                tx.multi()
                tx.set(self.lease_key, self._token, px=LEASE_MS)
                if fresh:
                    self._write(tx, fresh, plan, added, cutoff)
                newest = max(int(r["ingest_ms"]) for r in records)
                self._prune(keys=[self._k("max_ingest_ms"), self._k("hours")],
                            args=[newest, hour_reach_ms(self.cfg), self._k("hour", "")],
                            client=tx)
                self._prune_markers(keys=[self._k("applied", "gens")],
                                    args=[self._k("applied", ""),
                                          marker_generation(cutoff, self.cfg)], client=tx)
                tx.execute()
            except redis.exceptions.WatchError:
                raise WriterConflict(f"redis at {self.url}: another processor took the store's "
                                     "writer lease during this batch; not applied") from None
        return Applied(len(fresh), len(records) - len(fresh))

    def _plan(self, records: Sequence[dict[str, Any]]
              ) -> tuple[list[dict[str, Any]], BatchPlan, list[tuple[int, int, dict[str, Any]]],
                         int]:
        """Everything ``apply`` reads, in one round trip after the ``WATCH``, the plan and the
        markers' cutoff (``marker_cutoff_ms``)."""
        ids = sorted({str(r["event_id"]) for r in records})
        items = sorted({int(r["item_id"]) for r in records if "item_id" in r})
        titled = sorted({int(r["title"]["item_id"]) for r in records if "title" in r})
        pipe = self._r.pipeline(transaction=False)
        pipe.get(self.lease_key)
        self._lookup(keys=[self._k("applied", "gens")], args=[self._k("applied", ""), *ids],
                     client=pipe)
        for key, fields in ((self._k("titles"), items), (self._k("added", "items"), titled)):
            if fields:
                pipe.hmget(key, [str(f) for f in fields])
            else:
                pipe.echo("")  # HMGET needs a field: keep the replies' positions
        pipe.get(self._k("added", "seq"))
        pipe.get(self._k("max_ingest_ms"))
        holder, applied, rows, known, seq, stored_newest = pipe.execute()
        if holder not in (None, self._token):
            raise WriterConflict(f"redis at {self.url}: another processor holds the store's "
                                 f"writer lease ({self.lease_key}); not applied")
        newest = max(int(stored_newest or 0), *(int(r["ingest_ms"]) for r in records))
        cutoff = marker_cutoff_ms(newest, self.cfg)
        seen = {i: int(v) for i, v in zip(ids, applied, strict=True)
                if v is not None and int(v) >= cutoff}
        fresh = []
        for r in records:  # as SqliteFeatureStore._fresh: the first new occurrence
            event_id, ingest = str(r["event_id"]), int(r["ingest_ms"])
            if not is_duplicate(seen.get(event_id), ingest, self.cfg):
                seen[event_id] = ingest
                fresh.append(r)
        current = {item: TitleRow(*json.loads(row))
                   for item, row in zip(items, rows or [], strict=False) if row}
        plan = plan_batch(fresh, current, self.cfg)
        taken = {item for item, s in zip(titled, known or [], strict=False) if s is not None}
        added: list[tuple[int, int, dict[str, Any]]] = []
        next_seq = int(seq or 0)
        for title in plan.added_titles:  # INSERT OR IGNORE: the first body of an item wins
            item = int(title["item_id"])
            if item not in taken:
                taken.add(item)
                next_seq += 1
                added.append((next_seq, item, title))
        return fresh, plan, added, cutoff

    def _write(self, tx: redis.client.Pipeline, fresh: list[dict[str, Any]], plan: BatchPlan,
               added: list[tuple[int, int, dict[str, Any]]], cutoff: int) -> None:
        markers: dict[int, dict[str, int]] = {}
        for r in fresh:
            if int(r["ingest_ms"]) >= cutoff:
                markers.setdefault(marker_generation(r["ingest_ms"], self.cfg), {})[
                    str(r["event_id"])] = int(r["ingest_ms"])
        for gen, mapping in markers.items():
            tx.hset(self._k("applied", gen), mapping=mapping)
        if markers:
            tx.zadd(self._k("applied", "gens"), {str(g): g for g in markers})
        per_user: dict[int, list[str]] = {}
        for user, *row in plan.history:
            per_user.setdefault(user, []).append(dumps(row))
        for user, rows in per_user.items():
            tx.rpush(self._k("hist", user), *rows)
        for user, n in plan.versions.items():
            tx.hincrby(self._k("users"), str(user), int(n))
        if plan.titles:
            tx.hset(self._k("titles"), mapping={
                str(item): dumps(list(vars(row).values())) for item, row in plan.titles.items()})
        for (item, hour), n in plan.hours.items():
            tx.hincrby(self._k("hour", hour), str(item), int(n))
        if plan.hours:
            tx.zadd(self._k("hours"), {str(h): h for _, h in plan.hours})
        for seq, item, title in added:
            tx.hset(self._k("added", "items"), str(item), seq)
            tx.xadd(self._k("added"), {"item": item, "body": dumps(title)}, id=f"0-{seq}")
        if added:
            tx.set(self._k("added", "seq"), added[-1][0])

    # -- readers ------------------------------------------------------------------------------
    def user_version(self, user_id: int) -> int:
        """One ``HGET``: every request asks."""
        with self._do("user_version"):
            version = self._r.hget(self._k("users"), str(int(user_id)))
        return int(version or 0)

    def user_events(self, user_id: int) -> UserEvents:
        with self._do("user_events"), self._r.pipeline(transaction=True) as tx:
            tx.hget(self._k("users"), str(int(user_id)))  # the version and rows of one snapshot
            tx.lrange(self._k("hist", int(user_id)), 0, -1)
            version, rows = tx.execute()
        return UserEvents.from_rows([json.loads(r) for r in rows], int(version or 0))

    def all_user_events(self) -> dict[int, UserEvents]:
        """Every user's history (a replica's start), ``USERS_PER_TRIP`` users a round trip,
        each user's version read with their rows (one snapshot per user)."""
        out: dict[int, UserEvents] = {}
        with self._do("all_user_events"):
            users = sorted(int(u) for u in self._r.hkeys(self._k("users")))
            for start in range(0, len(users), USERS_PER_TRIP):
                chunk = users[start:start + USERS_PER_TRIP]
                with self._r.pipeline(transaction=True) as tx:
                    tx.hmget(self._k("users"), [str(u) for u in chunk])
                    for user in chunk:
                        tx.lrange(self._k("hist", user), 0, -1)
                    versions, *histories = tx.execute()
                for user, version, rows in zip(chunk, versions, histories, strict=True):
                    out[user] = UserEvents.from_rows([json.loads(r) for r in rows],
                                                     int(version or 0))
        return out

    def title_features(self, now_ms: int) -> TitleFeatures:
        """Every title's row and the last week's hour buckets, in one transaction."""
        now_h = int(now_ms) // HOUR_MS
        hours = range(now_h - WEEK_H + 1, now_h + 1)  # the only ones title_features counts
        with self._do("title_features"), self._r.pipeline(transaction=True) as tx:
            tx.hgetall(self._k("titles"))
            for hour in hours:
                tx.hgetall(self._k("hour", hour))
            titles, *buckets = tx.execute()
        items = sorted(int(i) for i in titles)
        table = np.array([json.loads(titles[str(i)]) for i in items], np.float64).reshape(
            -1, N_TITLE_FIELDS)
        counts = np.array([(int(i), hour, int(n)) for hour, bucket in zip(hours, buckets,
                                                                          strict=True)
                           for i, n in bucket.items()], np.int64).reshape(-1, 3)
        return title_features(np.array(items, np.int64), table, counts, now_ms, self.cfg)

    def added_titles(self, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        with self._do("added_titles"):
            rows = self._r.xrange(self._k("added"), f"(0-{max(int(after), 0)}", "+")
        return [(int(entry_id.split("-")[1]), json.loads(f["body"])) for entry_id, f in rows]

    def dump(self) -> dict[str, Any]:
        """Everything stored, in ``SqliteFeatureStore.dump``'s structure and order."""
        with self._do("dump"):
            with self._r.pipeline(transaction=True) as tx:
                for name in ("users", "titles"):
                    tx.hgetall(self._k(name))
                tx.zrange(self._k("hours"), 0, -1)
                tx.xrange(self._k("added"), "-", "+")
                tx.zrange(self._k("applied", "gens"), 0, -1)
                users, titles, hours, added, gens = tx.execute()
            with self._r.pipeline(transaction=True) as tx:
                for user in users:
                    tx.lrange(self._k("hist", user), 0, -1)
                for hour in hours:
                    tx.hgetall(self._k("hour", hour))
                for gen in gens:
                    tx.hgetall(self._k("applied", gen))
                replies = tx.execute()
        histories = replies[:len(users)]
        buckets = replies[len(users):len(users) + len(hours)]
        applied: dict[str, int] = {}
        for markers in replies[len(users) + len(hours):]:  # an id's newest marker, as SQLite
            for event_id, ms in markers.items():
                applied[event_id] = max(int(ms), applied.get(event_id, int(ms)))
        return {
            "history": sorted((int(u), *json.loads(r)) for u, rows in zip(users, histories,
                                                                          strict=True)
                              for r in rows),
            "users": sorted((int(u), int(v)) for u, v in users.items()),
            "titles": sorted((int(i), *json.loads(row)) for i, row in titles.items()),
            "title_hours": sorted((int(i), int(h), int(n)) for h, bucket in zip(hours, buckets,
                                                                                strict=True)
                                  for i, n in bucket.items()),
            "added_titles": sorted((int(f["item"]), f["body"]) for _, f in added),
            "applied": sorted(applied.items()),
        }

    def clear(self) -> None:
        """Remove this namespace's store (never its log, and not ``added:seq``), as the writer:
        a store another processor is writing is not cleared under it."""
        keep = {self._k("added", "seq"), self.lease_key}
        with self._do("clear"), self._r.pipeline(transaction=True) as tx:
            try:
                tx.watch(self.lease_key)
                if tx.get(self.lease_key) not in (None, self._token):
                    raise WriterConflict(f"redis at {self.url}: another processor holds the "
                                         "store's writer lease; not cleared")
                keys = [k for k in self._r.scan_iter(glob_escape(self.prefix) + "*", count=1000)
                        if k not in keep]
                tx.multi()
                for start in range(0, len(keys), 1000):
                    tx.delete(*keys[start:start + 1000])
                tx.set(self.lease_key, self._token, px=LEASE_MS)
                tx.execute()
            except redis.exceptions.WatchError:
                raise WriterConflict(f"redis at {self.url}: another processor took the store's "
                                     "writer lease; not cleared") from None

    def ping(self) -> None:
        with self._do("ping"):
            self._r.ping()

    def close(self) -> None:
        """Release the writer lease if this store holds it, and the connections."""
        with contextlib.suppress(LogUnavailable), self._do("close"):
            self._release(keys=[self.lease_key], args=[self._token])
        close_quietly(self._r)
