"""The event log on Redis Streams, for router replicas on several hosts (the ``EventLog``
contract of ``log.py``, with SqliteEventLog's semantics).

Keys under ``cfg.namespace`` (``ns``): ``ns:log:{p}`` one stream per user partition, each entry
one field ``r`` (the record as compact JSON); ``ns:seen:{id}`` the dedup marks; ``ns:dead`` the
dead letters (newest first), ``ns:dead:late`` the ids dead-lettered as late. A consumer is a
consumer group of that name on every stream.

- Append: one Lua script per batch, so the dedup check and the ``XADD`` are atomic against a
  crash and other replicas. A mark (``SET NX PX``) expires ``dedup_days`` after the record's
  ingest time, SQLite's window. A client retry of a batch the server ran reports duplicates.
- Read: ``XREADGROUP``; a consumer's first read in this process takes back its own pending
  entries first (id ``0``: delivered before a restart, never acknowledged), then new ones
  (``>``). ``commit`` is ``XACK``; ``Entry.position`` is ``(stream, id)``. What the server
  delivered beyond ``max_n`` waits here for the next read (and is pending there for a restart).
- Scan: the streams merged by ``(ingest_ms, partition, id)``; ``heapq.merge`` never reorders
  one stream, so every user's events stay in log order.

Durability (the server runs with the AOF, ``recsys.runtime.redis_server``): Redis writes each
command to the AOF, i.e. to the kernel, before it replies, so with ``appendfsync everysec`` an
acknowledged append survives ``kill -9`` of redis-server; a power loss or kernel crash can drop
the last ~1 s (fsynced once a second). ``always`` fsyncs before every reply and survives that
too, at a throughput cost. (While a slow disk is still fsyncing, ``everysec`` may postpone the
write by up to 2 s; on such disks use ``always``.)
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import redis

from recsys.events.log import Appended, DeadLetter, Entry, partition_of
from recsys.events.redis_conn import (
    SOCKET_TIMEOUT_S,
    close_quietly,
    connect,
    require_url,
    stream_id,
    translated,
)
from recsys.events.settings import EventsConfig
from recsys.events.sqlite_log import dumps

# KEYS: per record its seen key then its stream; ARGV: now_ms, window_ms, per record
# ingest_ms and body. Returns the 0-based indices of the duplicates.
APPEND = """
local now, window, dups, batch = tonumber(ARGV[1]), tonumber(ARGV[2]), {}, {}
for i = 1, #KEYS / 2 do
  local seen, ingest = KEYS[2 * i - 1], ARGV[1 + 2 * i]
  local ttl, fresh = tonumber(ingest) + window - now, false
  if not batch[seen] and ttl >= 1 then
    fresh = redis.call('SET', seen, ingest, 'NX', 'PX', ttl) ~= false
  elseif not batch[seen] then
    fresh = redis.call('EXISTS', seen) == 0
  end
  batch[seen] = true
  if fresh then redis.call('XADD', KEYS[2 * i], '*', 'r', ARGV[2 + 2 * i])
  else dups[#dups + 1] = i - 1 end
end
return dups
"""
# KEYS: the dead list, the late set; ARGV: per letter "1" (late, with an id) or "0", its
# event id, its JSON. A late event is kept once per event id, every other letter each time.
DEAD_LETTER = """
for i = 1, #ARGV, 3 do
  if ARGV[i] == '0' or redis.call('SADD', KEYS[2], ARGV[i + 1]) == 1 then
    redis.call('LPUSH', KEYS[1], ARGV[i + 2]) end
end
return 1
"""
RECOVER_COUNT = 1000  # pending entries per stream per round trip after a restart
MAX_BLOCK_MS = int(SOCKET_TIMEOUT_S * 1000) - 1000  # a block must end before the socket times out


class RedisEventLog:
    """``EventLog`` on the Redis at ``cfg.redis_url`` (module doc). Any thread may append;
    one consumer reads and commits from one thread at a time."""

    def __init__(self, cfg: EventsConfig) -> None:
        self.cfg = cfg
        self.url = require_url(cfg)
        self._r = connect(self.url)
        self._reader = connect(self.url, retries=0)  # see recsys.events.redis_conn
        ns = cfg.namespace
        self.streams = [f"{ns}:log:{p}" for p in range(max(int(cfg.partitions), 1))]
        self._seen, self._dead, self._late = f"{ns}:seen:", f"{ns}:dead", f"{ns}:dead:late"
        self._append = self._r.register_script(APPEND)
        self._dead_letter = self._r.register_script(DEAD_LETTER)
        self._groups: set[str] = set()  # consumers whose groups exist on every stream
        self._recovered: set[str] = set()  # consumers that took back their pending entries
        self._buffer: dict[str, deque[Entry]] = {}  # delivered by the server, not yet returned

    def _do(self, what: str) -> contextlib.AbstractContextManager[None]:
        return translated(self.url, what)

    # -- producers ----------------------------------------------------------------------------
    def append(self, records: Sequence[dict[str, Any]]) -> Appended:
        """Store the records whose ``event_id`` is new (in the window and in the batch), in one
        script: in the AOF when this returns (module doc)."""
        if not records:
            return Appended(0, [])
        keys: list[str] = []
        args: list[Any] = [int(time.time() * 1000), int(self.cfg.dedup_days * 86_400_000)]
        for r in records:
            keys += [self._seen + str(r["event_id"]),
                     self.streams[partition_of(r, len(self.streams))]]
            args += [int(r["ingest_ms"]), dumps(r)]
        with self._do("append"):
            duplicates = [int(i) for i in self._append(keys=keys, args=args)]
        return Appended(len(records) - len(duplicates), duplicates)

    # -- consumers ----------------------------------------------------------------------------
    def _ensure_groups(self, consumer: str) -> None:
        """The consumer group on every stream, from the first entry (``MKSTREAM``: a stream
        nobody appended to yet exists from now on)."""
        if consumer in self._groups:
            return
        pipe = self._r.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xgroup_create(stream, consumer, id="0", mkstream=True)
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result
        self._groups.add(consumer)

    def _entries(self, reply: Any) -> list[tuple[str, list[Entry]]]:
        """``XREADGROUP``'s reply as entries per stream (a deleted entry has no fields)."""
        return [(stream, [Entry((stream, i), json.loads(f["r"])) for i, f in items if f])
                for stream, items in reply or []]

    def _recover(self, consumer: str) -> list[Entry]:
        """This consumer's pending entries on every stream (delivered, never acknowledged), in
        stream order: what it read before a restart, or what a failed read delivered."""
        cursors = dict.fromkeys(self.streams, "0")
        found: list[list[Entry]] = [[] for _ in self.streams]
        while cursors:
            reply = self._reader.xreadgroup(consumer, consumer, cursors, count=RECOVER_COUNT)
            got = dict(self._entries(reply))
            for stream in list(cursors):
                entries = got.get(stream, [])
                if not entries:
                    del cursors[stream]
                    continue
                found[self.streams.index(stream)].extend(entries)
                cursors[stream] = entries[-1].position[1]
        return list(heapq.merge(*found, key=self._order))

    def _order(self, entry: Entry) -> tuple[int, int, tuple[int, int]]:
        stream, entry_id = entry.position
        return (int(entry.record.get("ingest_ms", 0)), self.streams.index(stream),
                stream_id(entry_id))

    def read(self, consumer: str, max_n: int, block_ms: int = 0) -> list[Entry]:
        """Up to ``max_n`` records ``consumer`` has not been given in this process: its pending
        ones first after a restart, then new ones, waiting up to ``block_ms`` for them."""
        deadline = time.monotonic() + block_ms / 1000
        buffer = self._buffer.setdefault(consumer, deque())
        with self._do("read"):
            self._ensure_groups(consumer)
            try:
                if consumer not in self._recovered:
                    buffer.clear()  # the pending entries include whatever waited here
                    buffer.extend(self._recover(consumer))
                    self._recovered.add(consumer)
                while not buffer:
                    left_ms = int((deadline - time.monotonic()) * 1000)
                    block = min(left_ms, MAX_BLOCK_MS) if left_ms > 0 else None
                    reply = self._reader.xreadgroup(
                        consumer, consumer, dict.fromkeys(self.streams, ">"),
                        count=max(int(max_n), 1), block=block)
                    per_stream = [entries for _, entries in self._entries(reply)]
                    buffer.extend(heapq.merge(*per_stream, key=self._order))
                    if block is None or time.monotonic() >= deadline:
                        break
            except redis.exceptions.RedisError as err:
                if "NOGROUP" in str(err):  # the server lost its data: create them again
                    self._groups.discard(consumer)
                self._recovered.discard(consumer)  # a lost reply may have delivered entries
                raise
        return [buffer.popleft() for _ in range(min(max(int(max_n), 0), len(buffer)))]

    def rewind(self, consumer: str) -> None:
        """Its pending entries (delivered, not committed) come first again at the next read."""
        self._recovered.discard(consumer)

    def commit(self, consumer: str, entries: Sequence[Entry]) -> None:
        """``consumer`` has applied ``entries``: ``XACK``. Exactly these, where SQLite's offset
        also covers every earlier record: an entry delivered and never committed (its batch
        failed to apply) stays pending and comes back after a restart instead of being skipped.
        """
        acks: dict[str, list[str]] = {}
        for stream, entry_id in (e.position for e in entries):
            acks.setdefault(stream, []).append(entry_id)
        if not acks:
            return
        with self._do("commit"):
            pipe = self._r.pipeline(transaction=False)
            for stream, ids in acks.items():
                pipe.xack(stream, consumer, *ids)
            pipe.execute()

    def scan(self, batch: int = 10_000) -> Iterator[list[Entry]]:
        """Every record, merged by ``(ingest_ms, partition, id)`` (module doc)."""
        batch = max(int(batch), 1)
        merged = heapq.merge(*(self._stream(s, batch) for s in self.streams), key=self._order)
        while chunk := list(itertools.islice(merged, batch)):
            yield chunk

    def _stream(self, stream: str, page: int, start: str = "-") -> Iterator[Entry]:
        while True:
            with self._do("scan"):
                items = self._r.xrange(stream, start, "+", count=page)
            if not items:
                return
            for entry_id, fields in items:
                if fields:
                    yield Entry((stream, entry_id), json.loads(fields["r"]))
            start = "(" + items[-1][0]

    def lag(self, consumer: str) -> int:
        """Entries ``consumer`` has not acknowledged: never delivered (the group's ``lag``)
        plus delivered but not committed (its ``pending``); all of them without a group."""
        with self._do("lag"):
            pipe = self._r.pipeline(transaction=False)
            for stream in self.streams:
                pipe.xlen(stream).xinfo_groups(stream)
            replies = pipe.execute(raise_on_error=False)
            total = 0
            for stream, length, groups in zip(self.streams, replies[::2], replies[1::2],
                                              strict=True):
                if isinstance(length, Exception):
                    raise length
                group = None if isinstance(groups, Exception) else next(
                    (g for g in groups if g["name"] == consumer), None)
                if group is None:
                    total += int(length)
                    continue
                undelivered = group.get("lag")
                if undelivered is None:  # the server cannot tell (entries were deleted): count
                    undelivered = sum(1 for _ in self._stream(
                        stream, RECOVER_COUNT, "(" + group["last-delivered-id"]))
                total += int(undelivered) + int(group["pending"])
        return total

    def count(self) -> int:
        with self._do("count"):
            pipe = self._r.pipeline(transaction=False)
            for stream in self.streams:
                pipe.xlen(stream)
            return int(sum(pipe.execute()))

    # -- dead letters -------------------------------------------------------------------------
    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Keep refused events (a late event once, however often it is delivered)."""
        if not letters:
            return
        args: list[str] = []
        for d in letters:
            once = d.reason == "late" and d.event_id is not None
            args += ["1" if once else "0", str(d.event_id or ""),
                     dumps([d.reason, d.detail, d.payload, int(d.received_ms), d.event_id])]
        with self._do("dead_letter"):
            self._dead_letter(keys=[self._dead, self._late], args=args)

    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """The newest first."""
        if limit == 0:
            return []
        start = max(int(offset), 0)
        end = -1 if limit < 0 else start + int(limit) - 1
        with self._do("dead_letters"):
            rows = self._r.lrange(self._dead, start, end)
        return [DeadLetter(*json.loads(row)) for row in rows]

    def dead_letter_count(self) -> int:
        with self._do("dead_letter_count"):
            return int(self._r.llen(self._dead))

    def ping(self) -> None:
        with self._do("ping"):
            self._r.ping()

    def close(self) -> None:
        close_quietly(self._r)
        close_quietly(self._reader)
