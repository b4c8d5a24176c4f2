"""The real-time features, as pure functions of events: the one definition that the online
store (``recsys.events.store``) serves and that training computes offline from the log
(``recsys.events.offline``), so the two cannot drift apart.

State kept per user: the watch history (plays and ratings: title, value, watch fraction, event
time). Per title: counters, hour buckets and a decayed popularity. Everything a reader asks for
is derived at a point in time ``now`` from that state, using only events *before* ``now``:

- user (a rated title counts as watched, so "plays" below are plays and ratings): plays in
  the last 7 days, completion rate (plays with ``watch_fraction >=
  watch_complete``), recent genres (most frequent over the last ``recent_plays`` history
  events, ties by name), the current session (events no more than ``session_gap_s`` apart, the
  last within ``session_gap_s`` of ``now``) and its plays, and the binge flag: at least
  ``binge_plays`` plays of one genre within the last ``binge_window_s``;
- title: decayed popularity ``sum 0.5 ** ((now - t) / half_life)`` over engagement events
  (play, rating, click, add to list: an impression is not popularity), counts in the last
  1 h / 24 h / 7 d (hour buckets: every hour that overlaps the window counts whole, so a
  window reaches up to an hour further back), plays, completion rate.

Counters and buckets are integers, so any order of the same events gives the same values; the
decayed popularity is a float sum (equal to rounding for another order).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from recsys.events.settings import EventsConfig

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
HISTORY_TYPES = frozenset({"play", "rating"})  # a user's watch history
POPULARITY_TYPES = frozenset({"play", "rating", "click", "add_to_list"})
WINDOWS_H = (1, 24, 168)


@dataclass(frozen=True)
class UserEvents:
    """One user's watch history, in event-time order (ties by ``event_id``)."""

    ts_ms: np.ndarray  # int64
    item_id: np.ndarray  # int64 raw ids
    kind: np.ndarray  # str: "play" | "rating"
    value: np.ndarray  # float64 rating, NaN for plays
    watch_fraction: np.ndarray  # float64, NaN for ratings
    version: int = 0  # history events applied so far: a reader's cache key

    @classmethod
    def from_rows(cls, rows: Sequence[tuple], version: int = 0) -> UserEvents:
        """From ``(ts_ms, event_id, item_id, kind, value, watch_fraction)`` rows, any order."""
        rows = sorted(rows, key=lambda r: (r[0], r[1]))
        return cls(np.array([r[0] for r in rows], np.int64),
                   np.array([r[2] for r in rows], np.int64),
                   np.array([r[3] for r in rows], dtype=object),
                   np.array([np.nan if r[4] is None else r[4] for r in rows], np.float64),
                   np.array([np.nan if r[5] is None else r[5] for r in rows], np.float64),
                   version)


@dataclass(frozen=True)
class UserFeatures:
    watch_count_7d: int
    completion_rate: float
    recent_genres: tuple[str, ...]
    session_plays: int
    binge: bool


def user_features(events: UserEvents, now_ms: int, genres_of: Callable[[int], Sequence[str]],
                  cfg: EventsConfig) -> UserFeatures:
    """A user's features at ``now_ms`` from their events before it (module doc)."""
    before = events.ts_ms < now_ms
    ts, items = events.ts_ms[before], events.item_id[before]
    plays = events.kind[before] == "play"
    wf = events.watch_fraction[before]
    count_7d = int((ts >= now_ms - 7 * DAY_MS).sum())
    completion = float((wf[plays] >= cfg.watch_complete).mean()) if plays.any() else 0.0
    recent = Counter(g for i in items[-cfg.recent_plays:].tolist() for g in genres_of(i))
    top = tuple(g for g, _ in sorted(recent.items(), key=lambda kv: (-kv[1], kv[0])))
    gap_ms = cfg.session_gap_s * 1000
    session_plays = 0
    if len(ts) and now_ms - ts[-1] <= gap_ms:
        breaks = np.flatnonzero(np.diff(ts) > gap_ms)
        start = int(breaks[-1]) + 1 if len(breaks) else 0
        session_plays = len(ts) - start
    window = ts >= now_ms - cfg.binge_window_s * 1000
    per_genre = Counter(g for i in items[window].tolist() for g in genres_of(i))
    binge = bool(per_genre) and max(per_genre.values()) >= cfg.binge_plays
    return UserFeatures(count_7d, completion, top[:cfg.recent_genres], session_plays, binge)


@dataclass
class TitleRow:
    """One title's stored counters (integers but for the rating sum, a sum of the dataset's
    steps, and the decayed popularity at ``pop_ref_ms``)."""

    events: int = 0  # engagement events
    plays: int = 0
    completes: int = 0
    rating_sum: float = 0.0
    rating_n: int = 0
    pop_ref_ms: int = 0
    pop: float = 0.0
    engaged: int = 0  # the ranker's label: rated >= engaged_rating, or a completed play

    def add(self, record: dict[str, Any], cfg: EventsConfig) -> None:
        kind, t = record["type"], int(record["ts_ms"])
        self.events += 1
        if kind == "play":
            self.plays += 1
            complete = int(record.get("watch_fraction", 0.0) >= cfg.watch_complete)
            self.completes += complete
            self.engaged += complete
        elif kind == "rating":
            self.rating_sum += float(record["value"])
            self.rating_n += 1
            self.engaged += int(float(record["value"]) >= cfg.engaged_rating)
        half_life_ms = cfg.popularity_half_life_days * DAY_MS
        if self.pop == 0.0:
            self.pop_ref_ms, self.pop = t, 1.0
        elif t >= self.pop_ref_ms:
            self.pop = self.pop * 0.5 ** ((t - self.pop_ref_ms) / half_life_ms) + 1.0
            self.pop_ref_ms = t
        else:
            self.pop += 0.5 ** ((self.pop_ref_ms - t) / half_life_ms)


def hour_cutoff(max_ingest_ms: int, cfg: EventsConfig) -> int:
    """Hour buckets before this hour can be dropped: no window a reader asks for reaches them
    (7 days back from the newest ingest, plus the lateness bound). By the records' ingest
    time, not the clock, so replay drops the same buckets."""
    return (int(max_ingest_ms) - hour_reach_ms(cfg)) // HOUR_MS


def hour_reach_ms(cfg: EventsConfig) -> int:
    """How far back from the newest ingest a window can still reach: the longest window plus
    the lateness bound."""
    return max(WINDOWS_H) * HOUR_MS + int(cfg.lateness_s * 1000)


@dataclass
class BatchPlan:
    """What applying a batch of new (deduplicated, on-time) records changes: the same plan
    for every store backend, which only writes it."""

    history: list[tuple] = field(default_factory=list)  # (user, ts, id, item, kind, v, wf)
    versions: Counter = field(default_factory=Counter)  # user -> history events added
    titles: dict[int, TitleRow] = field(default_factory=dict)  # touched titles, new values
    hours: Counter = field(default_factory=Counter)  # (item, hour) -> events added
    added_titles: list[dict[str, Any]] = field(default_factory=list)  # catalog additions


def plan_batch(records: Sequence[dict[str, Any]], current: dict[int, TitleRow],
               cfg: EventsConfig) -> BatchPlan:
    """The changes of ``records`` (in apply order) given the touched titles' ``current``
    rows (missing = new title); ``current`` is not modified."""
    plan = BatchPlan()
    for r in records:
        kind = r["type"]
        if kind == "title_added":
            plan.added_titles.append(r["title"])
            continue
        if kind in HISTORY_TYPES:
            user = int(r["user_id"])
            plan.history.append((user, int(r["ts_ms"]), str(r["event_id"]), int(r["item_id"]),
                                 kind, r.get("value"), r.get("watch_fraction")))
            plan.versions[user] += 1
        if kind in POPULARITY_TYPES:
            item = int(r["item_id"])
            row = plan.titles.get(item)
            if row is None:
                old = current.get(item)
                row = plan.titles[item] = TitleRow(**vars(old)) if old else TitleRow()
            row.add(r, cfg)
            plan.hours[(item, int(r["ts_ms"]) // HOUR_MS)] += 1
    return plan


@dataclass(frozen=True)
class TitleFeatures:
    """Per title (``item_id`` order as stored): the values at one ``now``."""

    item_id: np.ndarray
    popularity: np.ndarray  # decayed at now
    count_1h: np.ndarray
    count_24h: np.ndarray
    count_7d: np.ndarray
    plays: np.ndarray
    completion_rate: np.ndarray
    # the ranker's item activity inputs (``recsys.ranking.activity``): all-time counts
    events: np.ndarray
    engaged: np.ndarray
    rating_sum: np.ndarray
    rating_n: np.ndarray


N_TITLE_FIELDS = len(fields(TitleRow))


def rows_of(ids: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``keys``, its row in ``ids`` and whether it is there (a sorted search, no
    Python per key)."""
    if not len(ids):
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
    order = np.argsort(ids, kind="stable")
    at = order[np.searchsorted(ids, keys, sorter=order).clip(0, len(ids) - 1)]
    return at, ids[at] == keys


def title_features(item_id: np.ndarray, rows: np.ndarray, hours: np.ndarray, now_ms: int,
                   cfg: EventsConfig) -> TitleFeatures:
    """``rows``: (n, N_TITLE_FIELDS) TitleRow fields per ``item_id``; ``hours``: (m, 3)
    ``item, hour, n``."""
    half_life_ms = cfg.popularity_half_life_days * DAY_MS
    item_id = np.asarray(item_id, np.int64)
    rows = np.asarray(rows, np.float64).reshape(-1, N_TITLE_FIELDS)
    ref, pop = rows[:, 5], rows[:, 6]
    popularity = pop * np.power(0.5, (now_ms - ref) / half_life_ms)
    hours = np.asarray(hours, np.int64).reshape(-1, 3)
    at, known = rows_of(item_id, hours[:, 0])
    last = (now_ms - 1) // HOUR_MS  # the hour of the latest event before now
    counts = []
    for w in WINDOWS_H:
        inside = known & (hours[:, 1] >= (now_ms - w * HOUR_MS) // HOUR_MS) & (
            hours[:, 1] <= last)
        counts.append(np.bincount(at[inside], weights=hours[inside, 2],
                                  minlength=len(item_id)).astype(np.int64))
    plays = rows[:, 1].astype(np.int64)
    completion = np.where(plays > 0, rows[:, 2] / np.maximum(plays, 1), 0.0)
    return TitleFeatures(item_id, popularity, *counts, plays, completion,
                         rows[:, 0].astype(np.int64), rows[:, 7].astype(np.int64), rows[:, 3],
                         rows[:, 4].astype(np.int64))
