"""The event log and feature store contracts on both backends, SQLite and a real redis-server;
the two against each other on one synthetic stream; Redis under SIGKILL, its writer lease."""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recsys.events.aggregates import DAY_MS, HOUR_MS
from recsys.events.log import DeadLetter, EventLog, LogUnavailable, open_log
from recsys.events.processor import StreamProcessor, replay
from recsys.events.records import ORIGIN_API, ORIGIN_BACKFILL, title_record
from recsys.events.redis_store import WriterConflict
from recsys.events.settings import Backend, EventsConfig
from recsys.events.store import Applied, FeatureStore, open_store
from recsys.runtime.redis_server import RedisHandle

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)


def _sqlite_cfg(folder: Path, **overrides: Any) -> EventsConfig:
    return EventsConfig(backend=Backend.sqlite, path=str(folder), partitions=4, **overrides)


def _redis_cfg(url: str, namespace: str | None = None, **overrides: Any) -> EventsConfig:
    return EventsConfig(backend=Backend.redis, redis_url=url, partitions=4,
                        namespace=namespace or f"t{uuid.uuid4().hex[:8]}", **overrides)


@pytest.fixture(params=["sqlite", "redis"])
def make_cfg(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., EventsConfig]:
    """A config factory for one backend; every config of one test shares its storage."""
    if request.param == "redis":
        url, namespace = request.getfixturevalue("redis_url"), f"t{uuid.uuid4().hex[:8]}"
        return lambda **kw: _redis_cfg(url, namespace, **kw)  # one namespace per test
    return lambda **kw: _sqlite_cfg(tmp_path / "live", **kw)


@pytest.fixture
def opened() -> Iterator[Callable[[EventsConfig], tuple[EventLog, FeatureStore]]]:
    """Open a log and a store; everything the test opened is closed after it."""
    with contextlib.ExitStack() as stack:
        yield lambda cfg: (stack.enter_context(contextlib.closing(open_log(cfg))),
                           stack.enter_context(contextlib.closing(open_store(cfg))))


def event(event_id: str, user: int, item: int = 1, kind: str = "click", ts_ms: int = NOW,
          ingest_ms: int | None = None, origin: str = ORIGIN_API, **extra: Any) -> dict[str, Any]:
    """A log record; ingested now unless ``ingest_ms``."""
    ingest_ms = int(time.time() * 1000) if ingest_ms is None else ingest_ms
    return {"event_id": event_id, "type": kind, "user_id": user, "item_id": item,
            "ts_ms": ts_ms, "ingest_ms": ingest_ms, "origin": origin, **extra}


def synthetic_stream(seed: int = 7, n: int = 500) -> list[list[dict[str, Any]]]:
    """~``n`` events in batches: plays, ratings, clicks, lists, impressions, searches, added
    titles (one item twice: the first body wins), users out of event-time order, late API
    events, old backfill, and redeliveries within and across batches."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for i in range(n):
        kind = rng.choice(["play", "play", "play", "rating", "rating", "click", "add_to_list",
                           "impression", "search"])
        late = rng.random() < 0.1
        age = rng.randrange(26 * HOUR_MS, 3 * DAY_MS) if late else rng.randrange(0, 20 * HOUR_MS)
        r = event(f"e{i}", rng.randrange(30), rng.randrange(40), kind, NOW - age,
                  NOW - rng.randrange(0, 5_000),
                  ORIGIN_BACKFILL if rng.random() < 0.15 else ORIGIN_API)
        if kind == "search":
            r["query"] = r.pop("item_id") and "space"
        elif kind == "play":
            r["watch_fraction"] = rng.choice([0.1, 0.5, 0.7, 0.9, 1.0])
        elif kind == "rating":
            r["value"] = rng.choice([1.0, 2.5, 3.0, 4.5, 5.0])
        records.append(r)
    for k in range(6):
        title = {"item_id": 100 + k % 4, "title": f"Title {k}", "genres": ["Drama"]}
        records.insert(rng.randrange(len(records)), title_record(f"title-{k}", title, NOW))
    for r in rng.sample(records, 40):  # redeliveries: a copy later in the stream
        records.insert(rng.randrange(records.index(r), len(records) + 1), dict(r))
    cuts = sorted(rng.sample(range(1, len(records)), len(records) // 25))
    return [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]


def assert_same_dump(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Equal, except the titles' float columns (rating sum, popularity) within rounding."""
    assert a.keys() == b.keys()
    for key in a:
        if key != "titles":
            assert a[key] == b[key], key
    for col in range(8):  # item, events, plays, completes, rating sum, rating n, ref, pop
        left, right = ([r[col] for r in d["titles"]] for d in (a, b))
        assert left == (pytest.approx(right, rel=1e-12) if col in (4, 7) else right), col


def scanned(log: EventLog, batch: int = 37) -> list[dict[str, Any]]:
    return [e.record for entries in log.scan(batch) for e in entries]


def drained(log: EventLog, consumer: str, max_n: int) -> Iterator[dict[str, Any]]:
    while entries := log.read(consumer, max_n):
        yield from (e.record for e in entries)
        log.commit(consumer, entries)


# -- the log ----------------------------------------------------------------------------------
def test_append_dedups_within_and_across_batches(make_cfg, opened):
    log, _ = opened(make_cfg())
    a, b, c = event("a", 1), event("b", 2), event("c", 3)
    assert log.append([a, b, dict(a)]).duplicates == [2]
    out = log.append([dict(b), c])
    assert (out.accepted, out.duplicates, log.count(), log.append([]).accepted) == (1, [0], 3, 0)


def test_an_id_past_the_dedup_window_is_new(make_cfg, opened):
    window_s = 0.4
    log, store = opened(make_cfg(dedup_days=window_s / 86_400))
    assert log.append([event("a", 1)]).accepted == 1
    assert log.append([event("a", 1)]).duplicates == [0]
    time.sleep(window_s + 0.3)
    assert (log.append([event("a", 1)]).accepted, log.count()) == (1, 2)
    first = event("s", 1, ingest_ms=NOW)
    assert store.apply([first, dict(first)]).applied == 1
    assert store.apply([event("s", 1, ingest_ms=NOW + 1_000)]).applied == 1  # past the window


def test_acknowledged_events_survive_a_new_log_object(make_cfg, opened):
    log, _ = opened(make_cfg())
    log.append([event(f"e{i}", i) for i in range(25)])
    log.close()
    again, _ = opened(make_cfg())
    ids = sorted(r["event_id"] for r in scanned(again))
    assert again.count() == 25 and ids == sorted(f"e{i}" for i in range(25))


def test_read_is_at_least_once_until_commit(make_cfg, opened):
    cfg = make_cfg()
    log, _ = opened(cfg)
    log.append([event(f"e{i}", i) for i in range(12)])
    first = log.read("proc", 100)
    assert len(first) == 12 and log.lag("proc") == 12
    assert log.read("proc", 100) == []  # this process was given them already
    restarted, _ = opened(cfg)  # a crash before commit: everything again
    again = restarted.read("proc", 100)
    assert sorted(map(repr, again)) == sorted(map(repr, first))
    restarted.commit("proc", again)
    after, _ = opened(cfg)
    assert after.read("proc", 100) == [] and (restarted.lag("proc"), after.lag("proc")) == (0, 0)
    assert after.lag("someone-else") == 12


def test_one_users_events_keep_their_order(make_cfg, opened):
    log, _ = opened(make_cfg())
    rng = random.Random(3)
    sent = [event(f"e{i}", rng.randrange(20), ts_ms=NOW - rng.randrange(10**6))
            for i in range(240)]
    for start in range(0, 240, 40):
        log.append(sent[start:start + 40])

    def per_user(records: list[dict[str, Any]]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for r in records:
            out.setdefault(r["user_id"], []).append(r["event_id"])
        return out

    assert per_user(list(drained(log, "proc", 17))) == per_user(scanned(log)) == per_user(sent)


def test_scan_yields_every_record_exactly_once(make_cfg, opened):
    log, _ = opened(make_cfg())
    for b in range(5):
        log.append([event(f"{b}-{i}", i % 9) for i in range(50)])
    ids = [r["event_id"] for r in scanned(log, batch=23)]
    assert len(ids) == len(set(ids)) == log.count() == 250
    assert all(len(entries) <= 23 for entries in log.scan(23))


def test_dead_letters_round_trip_and_late_ones_are_kept_once(make_cfg, opened):
    log, _ = opened(make_cfg())
    letters = [DeadLetter("invalid", "user_id: not an id", {"user_id": "x"}, NOW),
               DeadLetter("late", "timestamp: 2 days", {"event_id": "l1", "n": 1}, NOW, "l1"),
               DeadLetter("unknown_item", "item_id: 99", [1, 2], NOW + 1, "u1")]
    log.dead_letter(letters)
    log.dead_letter([letters[1], letters[0]])  # a redelivered late event, a repeated refusal
    assert log.dead_letter_count() == 4
    assert log.dead_letters() == [letters[0], letters[2], letters[1], letters[0]]
    assert log.dead_letters(limit=2, offset=1) == [letters[2], letters[1]]


# -- the store --------------------------------------------------------------------------------
def test_applied_markers_expire_a_window_at_a_time(make_cfg, opened):
    """A marker lives one to two dedup windows past its ingest (store.marker_cutoff_ms): a
    redelivery inside that is still caught, and the store stops growing by one marker per
    event for ever."""
    day = 86_400_000
    _, store = opened(make_cfg(dedup_days=1))
    start = (NOW // day) * day  # the first millisecond of a window
    first = event("a", 1, ingest_ms=start + 10)
    assert store.apply([first]).applied == 1
    assert store.apply([event("b", 1, ingest_ms=start + day + 10)]).applied == 1
    assert [m[0] for m in store.dump()["applied"]] == ["a", "b"]  # the previous window: kept
    assert store.apply([dict(first)]) == Applied(0, 1)  # its redelivery is still caught
    assert store.apply([event("c", 1, ingest_ms=start + 2 * day + 10),
                        event("old", 2, ingest_ms=start + 20)]).applied == 2
    dump = store.dump()
    assert dump["applied"] == [("b", start + day + 10), ("c", start + 2 * day + 10)]
    assert sum(row[1] for row in dump["titles"]) == 4  # expiry drops markers, never counts


def test_apply_is_idempotent(make_cfg, opened):
    _, store = opened(make_cfg())
    batch = [r for b in synthetic_stream(n=120)[:4] for r in b if r["type"] != "search"]
    first, dump = store.apply(batch), store.dump()
    assert first.applied + first.duplicates == len(batch) and dump["history"] != []
    assert store.apply(batch) == Applied(0, len(batch))
    assert store.dump() == dump


def test_drain_then_replay_builds_the_same_store(make_cfg, opened):
    cfg = make_cfg(processor_batch=64)
    log, store = opened(cfg)
    for batch in synthetic_stream():
        log.append(batch)
    processor = StreamProcessor(log, store, cfg)
    processor.drain(timeout_s=60)
    assert processor.stats.late > 0 and processor.stats.applied > 0
    drained = store.dump()
    assert replay(log, store, cfg) == log.count()
    assert_same_dump(drained, store.dump())
    assert log.dead_letter_count() == processor.stats.late  # replay dead-letters nothing again


def test_sqlite_and_redis_hold_the_same_features(tmp_path, redis_url, opened):
    cfgs = (_sqlite_cfg(tmp_path / "live", processor_batch=50),
            _redis_cfg(redis_url, processor_batch=50))
    (sql_log, sql), (red_log, red) = pairs = [opened(cfg) for cfg in cfgs]
    for cfg, (log, store) in zip(cfgs, pairs, strict=True):
        for batch in synthetic_stream():
            log.append(batch)
        StreamProcessor(log, store, cfg).drain(timeout_s=60)
    assert sql_log.count() == red_log.count()
    late = [sorted(repr((d.reason, d.detail, d.payload, d.event_id)) for d in lg.dead_letters(-1))
            for lg in (sql_log, red_log)]
    assert late[0] == late[1] != []
    assert_same_dump(sql.dump(), red.dump())
    added = [store.added_titles() for store in (sql, red)]  # the seq order crosses partitions
    assert [seq for seq, _ in added[1]] == list(range(1, len(added[0]) + 1))
    assert sorted(repr(t) for _, t in added[0]) == sorted(repr(t) for _, t in added[1]) != []
    a, b = sql.title_features(NOW), red.title_features(NOW)
    for name in ("item_id", "count_1h", "count_24h", "count_7d", "plays"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("popularity", "completion_rate"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12)
    everyone, red_all = sql.all_user_events(), red.all_user_events()
    assert everyone.keys() == red_all.keys() and len(everyone) > 20
    for user, events in everyone.items():
        for got in (red.user_events(user), red_all[user]):
            assert got.version == events.version == red.user_version(user) > 0
            for name in ("ts_ms", "item_id", "kind", "value", "watch_fraction"):
                np.testing.assert_array_equal(getattr(got, name), getattr(events, name))


# -- Redis only -------------------------------------------------------------------------------
def test_redis_keeps_every_acknowledged_event_across_sigkill(redis_fresh: RedisHandle, opened):
    cfg = _redis_cfg(redis_fresh.url)
    log, store = opened(cfg)
    acked = []
    for b in range(8):
        batch = [event(f"{b}-{i}", i, kind="play", watch_fraction=0.8) for i in range(60)]
        assert log.append(batch).accepted == 60
        acked += [r["event_id"] for r in batch]
    store.apply([e.record for e in log.read("proc", 1000)])
    dump = store.dump()
    redis_fresh.kill()
    for call in (lambda: log.append([event("down", 1)]), log.count, store.dump,
                 lambda: store.user_version(1), lambda: log.read("proc", 10)):
        start = time.monotonic()
        with pytest.raises(LogUnavailable, match=redis_fresh.url):
            call()
        assert time.monotonic() - start < 5
    redis_fresh.restart()
    assert sorted(r["event_id"] for r in scanned(log)) == sorted(acked)
    assert log.count() == len(acked)
    fresh_log, fresh_store = opened(cfg)
    assert fresh_log.count() == len(acked) and fresh_store.dump() == dump
    assert len(fresh_log.read("proc", 1000)) == 480  # read, never committed: delivered again


def test_redis_store_has_one_writer_at_a_time(redis_url, opened):
    cfg = _redis_cfg(redis_url)
    (_, first), (_, second) = opened(cfg), opened(cfg)
    first.apply([event("a", 1)])
    with pytest.raises(WriterConflict):
        second.apply([event("b", 1)])
    with pytest.raises(WriterConflict):
        second.clear()
    first.close()  # releases the lease
    assert second.apply([event("b", 1)]).applied == 1
    assert [r[0] for r in second.dump()["applied"]] == ["a", "b"]


def test_clear_keeps_the_log_and_other_namespaces(redis_handle: RedisHandle, opened):
    (log, store), (_, other) = (opened(_redis_cfg(redis_handle.url)) for _ in range(2))
    log.append([event("a", 1, kind="play", watch_fraction=1.0)])
    store.apply([e.record for e in log.read("proc", 10)])
    other.apply([event("b", 2, kind="play", watch_fraction=1.0)])
    store.clear()
    assert log.count() == 1 and store.dump() == {k: [] for k in store.dump()}
    assert other.user_version(2) == 1 and store.user_version(1) == 0
