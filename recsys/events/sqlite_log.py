"""The embedded event log: one SQLite file in WAL mode (``events.db``), no server.

Every process of one machine (the router replicas that append, the stream processor that
reads) opens the same file; SQLite serialises the writers (``BEGIN IMMEDIATE``), so sequence
numbers grow in commit order and a reader never sees a later record before an earlier one. One
total order keeps every user's events in order, which is what partitioning by user is for.

Power-loss policy: WAL with ``synchronous=NORMAL`` (default): a committed batch survives any
process being killed, since it is in the WAL file; a power loss may drop the last commits.
``sqlite_sync=full`` fsyncs the WAL on every commit and survives a power loss too.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from recsys import RecsysError
from recsys.events.log import Appended, DeadLetter, Entry, LogUnavailable, partition_of
from recsys.events.settings import EventsConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY AUTOINCREMENT, part INTEGER NOT NULL,
    event_id TEXT NOT NULL, ingest_ms INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen_0 (h INTEGER PRIMARY KEY, event_id TEXT NOT NULL,
    ingest_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen_1 (h INTEGER PRIMARY KEY, event_id TEXT NOT NULL,
    ingest_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen_epochs (slot INTEGER PRIMARY KEY, epoch INTEGER NOT NULL);
DROP TABLE IF EXISTS seen;
CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY AUTOINCREMENT, reason TEXT NOT NULL,
    detail TEXT NOT NULL, event_id TEXT, received_ms INTEGER NOT NULL, payload TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS dead_once ON dead (event_id, reason) WHERE reason = 'late';
"""


def connect(path: Path, sync: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, waiting on locks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync.upper()}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def live_file(cfg: EventsConfig, folder: str | None, name: str) -> Path:
    """``<folder>/<name>`` for the embedded backends (``cfg.path`` wins over ``folder``)."""
    root = cfg.path or folder
    if not root:
        raise RecsysError("serve.events.path is not set: the folder for the SQLite event "
                          "log and feature store")
    return Path(root) / name


def dumps(value: Any) -> str:
    """Compact JSON (pydantic-core's encoder: half the time of the stdlib's per record)."""
    return to_json(value).decode()


def id_hash(event_id: str) -> int:
    """A stable signed 64-bit key for an event id: an integer primary key is the cheapest
    index SQLite has (the text id is kept beside it, so a hash collision is never taken for
    a duplicate)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big",
                          signed=True)


class SqliteEventLog:
    """``EventLog`` in ``<folder>/events.db`` (``cfg.path`` wins over ``folder``)."""

    def __init__(self, cfg: EventsConfig, folder: str | None = None) -> None:
        self.cfg = cfg
        self.path = live_file(cfg, folder, "events.db")
        self._conn = connect(self.path, str(cfg.sqlite_sync))
        self._conn.executescript(SCHEMA)
        # the consumers' positions in a file of their own: a commit never takes the log's
        # write lock, so appends and the processor do not wait on each other (SQLite's busy
        # handler sleeps for milliseconds at a time: in one file it halved HTTP ingest)
        self._offsets = connect(self.path.with_name("offsets.db"), str(cfg.sqlite_sync))
        self._offsets.execute("CREATE TABLE IF NOT EXISTS offsets (consumer TEXT PRIMARY KEY, "
                              "seq INTEGER NOT NULL)")
        self._lock = threading.Lock()  # one connection, shared by this process's threads
        self._cursor: dict[str, int] = {}

    # -- producers ----------------------------------------------------------------------------
    def append(self, records: Sequence[dict[str, Any]]) -> Appended:
        """Store the records whose ``event_id`` is new (in the window and in the batch), in one
        transaction: durable when this returns."""
        if not records:
            return Appended(0, [])
        now = int(time.time() * 1000)
        window_start = now - int(self.cfg.dedup_days * 86_400_000)
        ids = [str(r["event_id"]) for r in records]
        try:
            return self._append(records, ids, window_start)
        except sqlite3.OperationalError as err:  # locked past the timeout, disk full, I/O
            raise LogUnavailable(f"SQLite log {self.path}: {err}") from err

    def _append(self, records: Sequence[dict[str, Any]], ids: list[str], window_start: int
                ) -> Appended:
        hashes = [id_hash(i) for i in ids]
        now_ms = int(time.time() * 1000)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = self._seen_table(now_ms)
                recent = self._recent(sorted(set(hashes)), window_start)
                fresh, seen_rows, duplicates, taken = [], [], [], set()
                for i, (event_id, h, record) in enumerate(zip(ids, hashes, records,
                                                              strict=True)):
                    if event_id in taken or recent.get(h) == event_id:
                        duplicates.append(i)
                        continue
                    taken.add(event_id)
                    fresh.append(record)
                    seen_rows.append((h, event_id, int(record["ingest_ms"])))
                conn.executemany(
                    "INSERT INTO log (part, event_id, ingest_ms, body) VALUES (?, ?, ?, ?)",
                    [(partition_of(r, self.cfg.partitions), str(r["event_id"]),
                      int(r["ingest_ms"]), dumps(r)) for r in fresh])
                # OR IGNORE: an id whose hash another id in the window has (p ~ 1e-19 a pair)
                # is stored, and only its own retry could then be stored again
                conn.executemany(f"INSERT OR IGNORE INTO {current} VALUES (?, ?, ?)",
                                 seen_rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return Appended(len(fresh), duplicates)

    def _seen_table(self, now_ms: int) -> str:
        """The dedup table this window-long epoch writes to: two tables take turns, and the
        one whose epoch is two windows old is emptied when its turn comes again (a DELETE of
        a whole table, instant), so expiring ids costs no index on their time."""
        window_ms = max(int(self.cfg.dedup_days * 86_400_000), 1)
        epoch = now_ms // window_ms
        slot = epoch % 2
        held = self._conn.execute("SELECT epoch FROM seen_epochs WHERE slot = ?",
                                  (slot,)).fetchone()
        if held is None or held[0] != epoch:
            self._conn.execute(f"DELETE FROM seen_{slot}")
            self._conn.execute("INSERT OR REPLACE INTO seen_epochs VALUES (?, ?)",
                               (slot, epoch))
        return f"seen_{slot}"

    def _recent(self, hashes: list[int], window_start: int) -> dict[int, str]:
        """hash -> event id of the ids taken since ``window_start`` among ``hashes``."""
        found: dict[int, str] = {}
        for start in range(0, len(hashes), 900):
            part = hashes[start:start + 900]
            marks = ",".join("?" * len(part))
            for table in ("seen_0", "seen_1"):
                found.update(self._conn.execute(
                    f"SELECT h, event_id FROM {table} WHERE h IN ({marks}) AND ingest_ms >= ?",
                    (*part, window_start)).fetchall())
        return found

    # -- consumers ----------------------------------------------------------------------------
    def read(self, consumer: str, max_n: int, block_ms: int = 0) -> list[Entry]:
        """The next records after what ``consumer`` read in this process (after its last
        commit, on the first call): polled, since SQLite has no notifications."""
        deadline = time.monotonic() + block_ms / 1000
        while True:
            with self._lock:
                after = self._cursor.get(consumer)
                if after is None:
                    after = self._committed(consumer)
                rows = self._conn.execute(
                    "SELECT seq, body FROM log WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, int(max_n))).fetchall()
                if rows:
                    self._cursor[consumer] = rows[-1][0]
                    return [Entry(seq, json.loads(body)) for seq, body in rows]
            if time.monotonic() >= deadline:
                return []
            time.sleep(min(0.005, max(deadline - time.monotonic(), 0)))

    def commit(self, consumer: str, entries: Sequence[Entry]) -> None:
        """``consumer`` has applied everything up to the last of ``entries``."""
        if not entries:
            return
        last = max(int(e.position) for e in entries)
        with self._lock:
            self._offsets.execute(
                "INSERT INTO offsets VALUES (?, ?) ON CONFLICT (consumer) DO UPDATE SET "
                "seq = max(seq, excluded.seq)", (consumer, last))

    def rewind(self, consumer: str) -> None:
        with self._lock:
            self._cursor.pop(consumer, None)

    def scan(self, batch: int = 10_000) -> Iterator[list[Entry]]:
        """Every record, in log order (replay)."""
        after = 0
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT seq, body FROM log WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, batch)).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [Entry(seq, json.loads(body)) for seq, body in rows]

    def lag(self, consumer: str) -> int:
        with self._lock:
            last = self._conn.execute("SELECT coalesce(max(seq), 0) FROM log").fetchone()[0]
            committed = self._committed(consumer)
        return int(last) - committed

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM log").fetchone()[0])

    def _committed(self, consumer: str) -> int:
        row = self._offsets.execute("SELECT seq FROM offsets WHERE consumer = ?",
                                 (consumer,)).fetchone()
        return int(row[0]) if row else 0

    # -- dead letters -------------------------------------------------------------------------
    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Keep refused events (a late event once, however often it is delivered)."""
        if not letters:
            return
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO dead (reason, detail, event_id, received_ms, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                [(d.reason, d.detail, d.event_id, d.received_ms, dumps(d.payload))
                 for d in letters])

    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """The newest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT reason, detail, payload, received_ms, event_id FROM dead "
                "ORDER BY id DESC LIMIT ? OFFSET ?", (int(limit), int(offset))).fetchall()
        return [DeadLetter(r, d, json.loads(p), ms, e) for r, d, p, ms, e in rows]

    def dead_letter_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM dead").fetchone()[0])

    def ping(self) -> None:
        with self._lock:
            self._conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._offsets.close()
