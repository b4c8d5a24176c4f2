"""The embedded feature store: ``features.db`` (SQLite, WAL) beside the event log, read by
every replica process of the machine.

Each ``apply`` is one ``BEGIN IMMEDIATE`` transaction: the dedup check, the history rows, the
users' versions, the touched titles (read and rewritten inside the transaction) and the hour
buckets, so a killed processor leaves a batch applied wholly or not at all, and two
processors by mistake would still not double-count.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from recsys import RecsysError
from recsys.events.aggregates import (
    HOUR_MS,
    TitleFeatures,
    TitleRow,
    UserEvents,
    hour_cutoff,
    plan_batch,
    title_features,
)
from recsys.events.settings import EventsConfig
from recsys.events.sqlite_log import connect, dumps, live_file
from recsys.events.store import Applied, is_duplicate, marker_cutoff_ms

SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY, ingest_ms INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (user_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
    event_id TEXT NOT NULL, item_id INTEGER NOT NULL, kind TEXT NOT NULL, value REAL,
    watch_fraction REAL);
CREATE INDEX IF NOT EXISTS history_by_user ON history (user_id);
CREATE TABLE IF NOT EXISTS users (user_id INTEGER PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS titles (item_id INTEGER PRIMARY KEY, events INTEGER, plays INTEGER,
    completes INTEGER, rating_sum REAL, rating_n INTEGER, pop_ref_ms INTEGER, pop REAL,
    engaged INTEGER);
CREATE TABLE IF NOT EXISTS title_hours (item_id INTEGER NOT NULL, hour INTEGER NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (item_id, hour)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS title_hours_by_hour ON title_hours (hour);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS added_titles (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER UNIQUE NOT NULL, body TEXT NOT NULL);
"""
SQL_VARIABLES = 900  # under the 999 host parameters of the oldest SQLite builds
TITLE_COLUMNS = "events, plays, completes, rating_sum, rating_n, pop_ref_ms, pop, engaged"
QMARKS_TITLES = ", ".join("?" * (1 + len(TITLE_COLUMNS.split(","))))
HISTORY_COLUMNS = "ts_ms, event_id, item_id, kind, value, watch_fraction"


def chunks(values: list, size: int = SQL_VARIABLES) -> list[list]:
    """``values`` in pieces an ``IN (?, ...)`` list can hold on any SQLite build."""
    return [values[i:i + size] for i in range(0, len(values), size)]


class SqliteFeatureStore:
    """``FeatureStore`` in ``<folder>/features.db`` (``cfg.path`` wins over ``folder``);
    ``rebuild``: a store in another version's layout is emptied (for a replay) instead of
    refused."""

    def __init__(self, cfg: EventsConfig, folder: str | None = None, rebuild: bool = False
                 ) -> None:
        self.cfg = cfg
        self.path = live_file(cfg, folder, "features.db")
        self._conn = connect(self.path, str(cfg.sqlite_sync))
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()
        columns = [r[1] for r in self._conn.execute("PRAGMA table_info(titles)")]
        if columns != ["item_id", *TITLE_COLUMNS.split(", ")] and rebuild:
            self.clear()  # a replay refills it
        elif columns != ["item_id", *TITLE_COLUMNS.split(", ")]:
            raise RecsysError(f"{self.path} was written by another version of recsys; rebuild "
                              f"it from the log: python -m recsys.stream replay (with the same "
                              f"serve.events settings)")

    def apply(self, records: Sequence[dict[str, Any]]) -> Applied:
        if not records:
            return Applied(0, 0)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = 'max_ingest_ms'"
                                   ).fetchone()
                newest = max(int(row[0]) if row else 0, *(int(r["ingest_ms"]) for r in records))
                cutoff = marker_cutoff_ms(newest, self.cfg)
                fresh = self._fresh(records, cutoff)
                items = sorted({int(r["item_id"]) for r in fresh if "item_id" in r})
                current = {row[0]: TitleRow(*row[1:]) for part in chunks(items)
                           for row in conn.execute(
                               f"SELECT item_id, {TITLE_COLUMNS} FROM titles WHERE item_id IN "
                               f"({','.join('?' * len(part))})", part)}
                plan = plan_batch(fresh, current, self.cfg)
                conn.executemany("INSERT OR REPLACE INTO applied VALUES (?, ?)",
                                 [(str(r["event_id"]), int(r["ingest_ms"])) for r in fresh
                                  if int(r["ingest_ms"]) >= cutoff])
                conn.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 plan.history)
                conn.executemany(
                    "INSERT INTO users VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                    "version = version + excluded.version", list(plan.versions.items()))
                conn.executemany(f"INSERT OR REPLACE INTO titles VALUES ({QMARKS_TITLES})",
                                 [(item, *vars(row).values()) for item, row in plan.titles.items()])
                conn.executemany(
                    "INSERT INTO title_hours VALUES (?, ?, ?) ON CONFLICT (item_id, hour) "
                    "DO UPDATE SET n = n + excluded.n",
                    [(item, hour, n) for (item, hour), n in plan.hours.items()])
                self._prune(newest, cutoff)
                conn.executemany("INSERT OR IGNORE INTO added_titles (item_id, body) "
                                 "VALUES (?, ?)",
                                 [(int(t["item_id"]), dumps(t)) for t in plan.added_titles])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return Applied(len(fresh), len(records) - len(fresh))

    def _prune(self, newest: int, cutoff: int) -> None:
        """Drop the hour buckets no window reaches any more (``hour_cutoff``) and, when the
        marker window moves on (once per ``dedup_days`` of ingest time: a scan of the
        markers), the expired applied markers (``marker_cutoff_ms``)."""
        conn = self._conn
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('max_ingest_ms', ?)", (newest,))
        conn.execute("DELETE FROM title_hours WHERE hour < ?",
                     (hour_cutoff(newest, self.cfg),))
        row = conn.execute("SELECT value FROM meta WHERE key = 'marker_cutoff_ms'").fetchone()
        if row is None or int(row[0]) < cutoff:
            conn.execute("DELETE FROM applied WHERE ingest_ms < ?", (cutoff,))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('marker_cutoff_ms', ?)",
                         (cutoff,))

    def _fresh(self, records: Sequence[dict[str, Any]], cutoff: int) -> list[dict[str, Any]]:
        """The records not applied before (``is_duplicate``; markers before ``cutoff`` have
        expired), first occurrence in the batch."""
        ids = sorted({str(r["event_id"]) for r in records})
        seen: dict[str, int] = {}
        for part in chunks(ids):
            seen.update(self._conn.execute(
                f"SELECT event_id, ingest_ms FROM applied WHERE event_id IN "
                f"({','.join('?' * len(part))})", part).fetchall())
        fresh = []
        seen = {event_id: ms for event_id, ms in seen.items() if ms >= cutoff}
        for r in records:
            event_id, ingest = str(r["event_id"]), int(r["ingest_ms"])
            if not is_duplicate(seen.get(event_id), ingest, self.cfg):
                seen[event_id] = ingest
                fresh.append(r)
        return fresh

    # -- readers ------------------------------------------------------------------------------
    def user_version(self, user_id: int) -> int:
        with self._lock:
            row = self._conn.execute("SELECT version FROM users WHERE user_id = ?",
                                     (int(user_id),)).fetchone()
        return int(row[0]) if row else 0

    def user_events(self, user_id: int) -> UserEvents:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")  # the version and the rows of one snapshot
            try:
                row = conn.execute("SELECT version FROM users WHERE user_id = ?",
                                   (int(user_id),)).fetchone()
                rows = conn.execute(f"SELECT {HISTORY_COLUMNS} FROM history WHERE user_id = ?",
                                    (int(user_id),)).fetchall()
            finally:
                conn.execute("COMMIT")
        return UserEvents.from_rows(rows, int(row[0]) if row else 0)

    def all_user_events(self) -> dict[int, UserEvents]:
        """Every user's history (a replica's start), in one read."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                versions = dict(conn.execute("SELECT user_id, version FROM users").fetchall())
                rows = conn.execute(f"SELECT user_id, {HISTORY_COLUMNS} FROM history "
                                    "ORDER BY user_id").fetchall()
            finally:
                conn.execute("COMMIT")
        out: dict[int, UserEvents] = {}
        start = 0
        for end in range(1, len(rows) + 1):
            if end == len(rows) or rows[end][0] != rows[start][0]:
                user = rows[start][0]
                out[user] = UserEvents.from_rows([r[1:] for r in rows[start:end]],
                                                 versions.get(user, 0))
                start = end
        return out

    def title_features(self, now_ms: int) -> TitleFeatures:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                rows = conn.execute(f"SELECT item_id, {TITLE_COLUMNS} FROM titles "
                                    "ORDER BY item_id").fetchall()
                hours = conn.execute("SELECT item_id, hour, n FROM title_hours WHERE hour >= ?",
                                     ((now_ms - 168 * HOUR_MS) // HOUR_MS,)).fetchall()
            finally:
                conn.execute("COMMIT")
        ids = np.array([r[0] for r in rows], np.int64)  # int64 ids: never through a float
        table = np.array([r[1:] for r in rows], np.float64).reshape(len(rows), -1)
        return title_features(ids, table, np.array(hours, np.int64).reshape(-1, 3), now_ms,
                              self.cfg)

    def added_titles(self, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute("SELECT seq, body FROM added_titles WHERE seq > ? "
                                      "ORDER BY seq", (int(after),)).fetchall()
        return [(seq, json.loads(body)) for seq, body in rows]

    def dump(self) -> dict[str, Any]:
        """Everything stored, canonically ordered: two stores of the same events dump equal
        (replay's oracle)."""
        with self._lock:
            q = self._conn.execute
            return {
                "history": sorted(q("SELECT user_id, " + HISTORY_COLUMNS + " FROM history")),
                "users": sorted(q("SELECT user_id, version FROM users")),
                "titles": sorted(q(f"SELECT item_id, {TITLE_COLUMNS} FROM titles")),
                "title_hours": sorted(q("SELECT item_id, hour, n FROM title_hours")),
                "added_titles": sorted(q("SELECT item_id, body FROM added_titles")),
                "applied": sorted(q("SELECT event_id, ingest_ms FROM applied")),
            }

    def clear(self) -> None:
        """Empty, in this version's layout (so a replay also upgrades an older store)."""
        with self._lock:
            self._conn.executescript("BEGIN IMMEDIATE; DROP TABLE IF EXISTS applied; "
                                     "DROP TABLE IF EXISTS history;"
                                     "DROP TABLE IF EXISTS users; DROP TABLE IF EXISTS titles; "
                                     "DROP TABLE IF EXISTS title_hours; "
                                     "DROP TABLE IF EXISTS added_titles; "
                                     "DROP TABLE IF EXISTS meta;"
                                     "COMMIT;" + SCHEMA)

    def ping(self) -> None:
        with self._lock:
            self._conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
