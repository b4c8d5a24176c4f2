"""Live events on the embedded backend: the event schema, the ingest's batch contract, the
real-time features' definitions, the processor's at-least-once + idempotent apply, and the
oracles: replay equals the live store, offline features equal online ones."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from recsys.events.aggregates import HOUR_MS, UserEvents, user_features
from recsys.events.ingest import Ingest
from recsys.events.log import open_log
from recsys.events.offline import accepted, offline_title_features, point_in_time_user_features
from recsys.events.processor import StreamProcessor, replay
from recsys.events.records import Event, records
from recsys.events.settings import EventsConfig
from recsys.events.store import open_store

NOW = 1_800_000_000.0  # a fixed "now" in Unix seconds
GENRES = {1: ("Drama",), 2: ("Drama", "War"), 3: ("Comedy",), 4: ("Comedy",), 5: ("Horror",)}


def play(event_id, user=7, item=1, ts=NOW, wf=0.9, **extra):
    return {"event_id": event_id, "type": "play", "user_id": user, "item_id": item,
            "timestamp": ts, "watch_fraction": wf, **extra}


@pytest.fixture
def live(tmp_path):
    cfg = EventsConfig(path=str(tmp_path), processor_batch=7)
    event_log, store = open_log(cfg), open_store(cfg)
    yield cfg, event_log, store
    event_log.close()
    store.close()


# -- the schema -------------------------------------------------------------------------------
@pytest.mark.parametrize("change, field", [
    ({"watch_fraction": 1.5}, "watch_fraction"),
    ({"watch_fraction": -0.1}, "watch_fraction"),
    ({"user_id": 2**63}, "user_id"), ({"user_id": -1}, "user_id"),
    ({"user_id": 5.0}, "user_id"), ({"user_id": "5"}, "user_id"), ({"user_id": True}, "user_id"),
    ({"item_id": 2**63}, "item_id"), ({"event_id": "x" * 65}, "event_id"),
    ({"event_id": ""}, "event_id"), ({"type": "purchase"}, "type"),
    ({"timestamp": "2026-12-03T10:00:00"}, "timestamp"), ({"colour": "red"}, "colour"),
])
def test_a_bad_field_is_named(change, field):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        Event.model_validate({**play("a"), **change})
    assert err.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize("event, message", [
    ({"event_id": "s", "type": "search", "user_id": 1, "timestamp": NOW, "item_id": 3,
      "query": "war"}, "item_id is not for search"),
    ({"event_id": "s", "type": "search", "user_id": 1, "timestamp": NOW}, "query is required"),
    ({"event_id": "p", "type": "play", "user_id": 1, "item_id": 1, "timestamp": NOW},
     "watch_fraction (0..1) is required"),
    ({"event_id": "r", "type": "rating", "user_id": 1, "item_id": 1, "timestamp": NOW},
     "value is required"),
    ({"event_id": "c", "type": "click", "user_id": 1, "item_id": 1, "timestamp": NOW,
      "value": 4}, "value is only for rating"),
    ({"event_id": "c", "type": "click", "user_id": 1, "timestamp": NOW}, "item_id is required"),
])
def test_each_type_has_its_own_fields(event, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Event.model_validate(event)


def test_int64_max_is_an_id_and_the_record_keeps_every_field():
    event = Event.model_validate(play("a", user=2**63 - 1, item=0, position_s=12.5,
                                      duration_s=5400, context={"surface": "home",
                                                                "request_id": "r1"}))
    record = event.record(ingest_ms=123)
    assert record == {"event_id": "a", "type": "play", "user_id": 2**63 - 1, "item_id": 0,
                      "watch_fraction": 0.9, "position_s": 12.5, "duration_s": 5400.0,
                      "ts_ms": int(NOW * 1000), "surface": "home", "request_id": "r1",
                      "ingest_ms": 123, "origin": "api"}
    assert records([event], ingest_ms=123) == [record]  # the batch path: the same record
    iso = Event.model_validate(play("b", ts="2027-01-15T08:00:00Z"))
    assert iso.record(0)["ts_ms"] == 1_800_000_000_000  # that is NOW


# -- the ingest ---------------------------------------------------------------------------------
def test_a_mixed_batch_keeps_the_valid_events_and_names_each_rejected_one(live):
    cfg, event_log, _ = live
    ingest = Ingest(event_log, cfg, lambda i: i in GENRES, (0.5, 5.0))
    now = time.time()
    batch = [play("ok1", ts=now), play("bad-wf", ts=now, wf=2), play("unknown", item=99, ts=now),
             play("future", ts=now + 3600), {"event_id": "scale", "type": "rating",
                                             "user_id": 1, "item_id": 1, "timestamp": now,
                                             "value": 9}, play("ok2", ts=now), "not an event"]
    out = ingest(batch)
    assert out.accepted == 2 and out.duplicates == 0
    assert [(r.index, r.field, r.reason) for r in out.rejected] == [
        (1, "watch_fraction", "invalid"), (2, "item_id", "unknown_item"),
        (3, "timestamp", "future"), (4, "value", "rating_scale"), (6, "event", "invalid")]
    assert event_log.count() == 2
    letters = event_log.dead_letters()
    assert event_log.dead_letter_count() == 5
    assert {d.reason for d in letters} == {"invalid", "unknown_item", "future", "rating_scale"}
    assert any(d.payload == "not an event" for d in letters)
    again = ingest([play("ok1", ts=now), play("ok1", ts=now), play("ok3", ts=now)])
    assert (again.accepted, again.duplicates) == (1, 2)  # stored and counted once


def test_an_event_id_past_the_dedup_window_is_a_new_event(tmp_path):
    cfg = EventsConfig(path=str(tmp_path), dedup_days=0.5 / 86_400)  # half a second
    event_log = open_log(cfg)
    ingest = Ingest(event_log, cfg, lambda i: True, (0.5, 5.0))
    assert ingest([play("a", ts=time.time())]).accepted == 1
    assert ingest([play("a", ts=time.time())]).duplicates == 1
    time.sleep(0.6)
    assert ingest([play("a", ts=time.time())]).accepted == 1


# -- the features' definitions -----------------------------------------------------------------
def history(*events):
    """(seconds before NOW, item, kind, value, wf)."""
    return UserEvents.from_rows([(int((NOW - ago) * 1000), f"e{j}", item, kind, value, wf)
                                 for j, (ago, item, kind, value, wf) in enumerate(events)])


def test_user_features_by_their_definitions():
    cfg = EventsConfig(recent_genres=2, recent_plays=3)
    events = history((9 * 86_400, 5, "play", None, 1.0),  # 9 days ago: outside the week
                     (4 * 3600, 3, "play", None, 0.2),  # a session that ended
                     (2500, 1, "play", None, 0.9), (1000, 2, "play", None, 0.95),
                     (600, 4, "rating", 4.0, None), (-60, 5, "play", None, 1.0))  # the future
    f = user_features(events, int(NOW * 1000), lambda i: GENRES[i], cfg)
    assert f.watch_count_7d == 4  # the ratings count as watched; the future one does not
    assert f.completion_rate == pytest.approx(3 / 4)  # plays before now: 1.0, 0.2, 0.9, 0.95
    assert f.recent_genres == ("Drama", "Comedy")  # last 3: items 1, 2, 4 -> Drama 2
    assert f.session_plays == 3  # 2500 s, 1000 s, 600 s ago: gaps under 30 min
    assert f.binge  # two Drama titles within 3 hours
    quiet = user_features(events, int((NOW + 7200) * 1000), lambda i: GENRES[i], cfg)
    assert quiet.session_plays == 0  # 2 h after the last event: the session is over
    one_each = history((600, 1, "play", None, 1.0), (300, 3, "play", None, 1.0))
    assert not user_features(one_each, int(NOW * 1000), lambda i: GENRES[i], cfg).binge


def test_title_windows_and_decayed_popularity():
    cfg = EventsConfig(popularity_half_life_days=1.0)
    now_ms = int(NOW * 1000)
    records = [{"event_id": f"t{j}", "type": "play", "user_id": j, "item_id": 1,
                "ts_ms": now_ms - ago, "watch_fraction": 1.0 if j % 2 else 0.1,
                "ingest_ms": now_ms, "origin": "api"}
               for j, ago in enumerate([10, 2 * HOUR_MS, 30 * HOUR_MS, 24 * 6 * HOUR_MS])]
    records.append({"event_id": "imp", "type": "impression", "user_id": 9, "item_id": 1,
                    "ts_ms": now_ms, "ingest_ms": now_ms, "origin": "api"})
    f = offline_title_features(records, now_ms, cfg)
    assert (f.count_1h[0], f.count_24h[0], f.count_7d[0], f.plays[0]) == (1, 2, 4, 4)
    ages_days = np.array([10, 2 * HOUR_MS, 30 * HOUR_MS, 144 * HOUR_MS]) / (24 * HOUR_MS)
    assert f.popularity[0] == pytest.approx(np.power(0.5, ages_days).sum(), rel=1e-12)
    assert f.completion_rate[0] == pytest.approx(0.5)


# -- the processor --------------------------------------------------------------------------------
def test_a_crash_between_apply_and_commit_counts_the_batch_once(live):
    cfg, event_log, store = live
    Ingest(event_log, cfg, lambda i: True, (0.5, 5.0))([play(f"p{j}", ts=time.time())
                                                         for j in range(5)])
    crashed = StreamProcessor(event_log, store, cfg)
    entries = event_log.read(crashed.consumer, 100)
    store.apply([e.record for e in entries])  # applied, then "killed" before the commit
    restarted = StreamProcessor(open_log(cfg), store, cfg)  # a new process: from the commit
    restarted.drain()
    assert (restarted.stats.applied, restarted.stats.duplicates) == (0, 5)
    assert store.user_version(7) == 5 and len(store.user_events(7).ts_ms) == 5


def test_late_events_are_counted_and_dead_lettered_once_never_applied(live):
    cfg, event_log, store = live
    now = time.time()
    Ingest(event_log, cfg, lambda i: True, (0.5, 5.0))(
        [play("late", ts=now - cfg.lateness_s - 60), play("fine", ts=now - 60)])
    processor = StreamProcessor(event_log, store, cfg)
    processor.drain()
    assert processor.stats.late == 1 and store.user_version(7) == 1
    StreamProcessor(open_log(cfg), store, cfg, consumer="second").drain()  # redelivered
    late = [d for d in event_log.dead_letters() if d.reason == "late"]
    assert len(late) == 1 and late[0].event_id == "late"


def synthetic_stream(seed: int, n: int = 400) -> list[dict]:
    """Posted events with duplicates, out-of-order event times and late ones."""
    rng = random.Random(seed)
    now = time.time()
    out = []
    for j in range(n):
        ago = rng.choice([rng.uniform(0, 3600), rng.uniform(0, 8 * 86_400),
                          86_400 * 2 + rng.uniform(0, 3600)])  # the last: past the bound
        kind = rng.choice(["play", "play", "rating", "click", "impression"])
        event = {"event_id": f"s{j}", "type": kind, "user_id": rng.randrange(12),
                 "item_id": rng.choice(list(GENRES)), "timestamp": now - ago}
        if kind == "play":
            event["watch_fraction"] = round(rng.random(), 3)
        if kind == "rating":
            event["value"] = rng.choice([0.5, 1.0, 3.5, 4.0, 5.0])
        out.append(event)
        if rng.random() < 0.15:
            out.append(dict(event))  # a client retry: the same event_id
    return out


def test_replay_equals_the_live_store_and_offline_features_equal_online(live):
    cfg, event_log, store = live
    ingest = Ingest(event_log, cfg, lambda i: True, (0.5, 5.0))
    stream = synthetic_stream(3)
    processor = StreamProcessor(event_log, store, cfg)
    for start in range(0, len(stream), 37):  # posts and processing interleaved
        ingest(stream[start:start + 37])
        processor.step()
    processor.drain()
    assert processor.stats.late > 0 and processor.stats.duplicates == 0
    live_dump = store.dump()
    assert replay(event_log, store, cfg) == event_log.count()
    assert store.dump() == live_dump  # exactly: same counts, histories, floats

    records = [e.record for batch in event_log.scan() for e in batch]
    applied = accepted(records, cfg)
    assert len(applied) == processor.stats.applied
    genres_of = GENRES.__getitem__
    offline = point_in_time_user_features(applied, genres_of, cfg)
    for r in applied:  # online: the store's history, read at the event's time
        online = user_features(store.user_events(r["user_id"]), r["ts_ms"], genres_of, cfg)
        assert online == offline[r["event_id"]]
    now_ms = int(time.time() * 1000)
    off, on = offline_title_features(applied, now_ms, cfg), store.title_features(now_ms)
    assert off.item_id.tolist() == on.item_id.tolist()
    for name in ("count_1h", "count_24h", "count_7d", "plays"):
        assert getattr(off, name).tolist() == getattr(on, name).tolist(), name
    np.testing.assert_allclose(on.popularity, off.popularity, rtol=1e-12)
    np.testing.assert_allclose(on.completion_rate, off.completion_rate, rtol=1e-12)


def test_a_batch_that_fails_to_apply_is_delivered_again_not_skipped(live):
    cfg, event_log, store = live
    Ingest(event_log, cfg, lambda i: True, (0.5, 5.0))([play(f"f{j}", ts=time.time())
                                                         for j in range(20)])
    processor = StreamProcessor(event_log, store, cfg)
    real_apply, calls = store.apply, []

    def flaky(records):
        calls.append(len(records))
        if len(calls) == 1:
            raise OSError("disk went away")
        return real_apply(records)

    store.apply = flaky
    with pytest.raises(OSError):
        processor.step()
    processor.drain()
    assert store.user_version(7) == 20 and processor.stats.applied == 20


def test_title_ids_beyond_float_precision_come_back_exactly(live):
    cfg, event_log, store = live
    big = 2**62 + 1  # not a float64: 2**62 + 1 rounds to 2**62
    now_ms = int(time.time() * 1000)
    store.apply([{"event_id": "b", "type": "play", "user_id": 1, "item_id": big,
                  "ts_ms": now_ms - 1000, "watch_fraction": 1.0, "ingest_ms": now_ms,
                  "origin": "api"}])
    features = store.title_features(now_ms)
    assert features.item_id.tolist() == [big] and features.count_1h.tolist() == [1]


def test_backfill_loads_history_once_with_every_type_kept(live):
    import pandas as pd

    from recsys.events.backfill import backfill

    cfg, event_log, store = live
    frame = pd.DataFrame({
        "user_id": [1, 1, 2, 2, 2], "item_id": [1, 2, 3, 3, 4],
        "rating": pd.array([4.5, None, None, None, None], "Float32"),
        "timestamp": pd.array([100, 200, None, 300, 300], "Int64"),
        "event_type": pd.Categorical(["rating", "play", "click", "search", "play"]),
        "watch_fraction": pd.array([None, 0.5, None, None, None], "Float32")})
    assert backfill(event_log, frame, "mini") == (5, 0)
    assert backfill(event_log, frame, "mini") == (0, 5)  # the same history: stored once
    records = [e.record for batch in event_log.scan() for e in batch]
    by_type = {r["type"]: r for r in records}
    assert by_type["rating"]["value"] == 4.5 and by_type["rating"]["ts_ms"] == 100_000
    assert records[2]["ts_ms"] == 100_000  # no timestamp: the earliest known
    assert {r["type"] for r in records} == {"rating", "play", "click"}
    assert [r.get("surface") for r in records if r["item_id"] == 3] == [None, "search"]
    assert all(r["origin"] == "backfill" for r in records)
    StreamProcessor(event_log, store, cfg).drain()
    assert store.user_version(1) == 2 and store.user_version(2) == 1  # plays and ratings


def test_hour_buckets_no_window_reaches_are_dropped_and_windows_stay_right(live):
    cfg, _, store = live
    now_ms = int(time.time() * 1000)
    old = {"event_id": "old", "type": "play", "user_id": 1, "item_id": 1,
           "ts_ms": now_ms - 30 * 86_400_000, "watch_fraction": 1.0, "ingest_ms": now_ms,
           "origin": "backfill"}
    recent = {**old, "event_id": "new", "ts_ms": now_ms - 60_000, "origin": "api"}
    store.apply([old, recent])
    hours = store.dump()["title_hours"]
    assert [h for _, h, _ in hours] == [(now_ms - 60_000) // HOUR_MS]  # the old one dropped
    f = store.title_features(now_ms)
    assert (f.count_1h[0], f.count_7d[0], f.plays[0]) == (1, 1, 2)  # all-time counts kept
