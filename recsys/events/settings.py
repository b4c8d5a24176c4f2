"""The live-events knobs, defined once: the runtime settings of the log, the stream processor
and the online feature store, and the Hydra schema of ``serve.events`` (``ServeConfig`` holds
one; ``python -m recsys.stream`` reads the same node).

>>> cfg = EventsConfig(backend=Backend.redis, redis_url="redis://127.0.0.1:6379/0")
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Backend(StrEnum):
    sqlite = "sqlite"  # embedded: one WAL file per role, no server; the replicas of one machine
    redis = "redis"  # Redis Streams + hashes: several replicas or hosts


class SqliteSync(StrEnum):
    """SQLite's ``synchronous`` pragma in WAL mode: what an acknowledged batch survives."""

    normal = "normal"  # kill -9 of any process; a power loss may drop the last commits
    full = "full"  # a power loss too: fsync on every commit


class RedisFsync(StrEnum):
    """Redis's ``appendfsync`` (AOF on): what an acknowledged batch survives."""

    everysec = "everysec"  # kill -9 of redis-server too (written to the OS before the reply);
    # a power loss may drop the last second
    always = "always"  # a power loss too: fsync before every reply


class BackfillSource(StrEnum):
    bundle = "bundle"  # an empty log starts from the served bundle's training events
    none = "none"  # start empty (or from what `python -m recsys.stream backfill` loaded)


@dataclass
class EventsConfig:
    enabled: bool = True  # false: the frozen training snapshot, no /v1/events
    backend: Backend = Backend.sqlite
    # sqlite: the folder holding events.db (the log) and features.db (the store);
    # null = <artefacts_root>/../live (next to the served artefacts)
    path: str | None = None
    sqlite_sync: SqliteSync = SqliteSync.normal
    # redis: a running server's URL (null = the stack starts redis-server on a free port)
    redis_url: str | None = None
    redis_fsync: RedisFsync = RedisFsync.everysec
    namespace: str = "recsys"  # key prefix: several stacks can share one Redis
    partitions: int = 8  # the log's user partitions (one user's events stay in one, ordered)
    max_batch_events: int = 1000  # per POST /v1/events (413 above)
    max_batch_bytes: int = 1_048_576  # 1 MiB per POST /v1/events (413 above)
    dedup_days: float = 7.0  # an event_id seen this recently is stored and counted once
    future_tolerance_s: float = 300.0  # event time at most this far ahead of the server clock
    # an event that reaches the log more than this after it happened is late: counted and
    # dead-lettered, never applied (a device offline for up to a day still counts)
    lateness_s: float = 86_400.0
    session_gap_s: float = 1_800.0  # 30 minutes without an event ends a session
    # binge: at least binge_plays plays of one genre within binge_window_s
    binge_plays: int = 2
    binge_window_s: float = 10_800.0
    watch_complete: float = 0.7  # a play with watch_fraction >= this completed the title
    # a rating >= this engaged: with watch_complete, the ranker's label
    # (ranker.features.rating_threshold / watch_threshold); a replica whose ranker was fitted
    # with other thresholds keeps the trained item activity columns (recsys/serving/live_titles.py)
    engaged_rating: float = 4.0
    popularity_half_life_days: float = 1.0  # trending's decay (title popularity online)
    recent_genres: int = 3  # the user's top genres over their last recent_plays plays
    recent_plays: int = 20
    processor_batch: int = 2000  # events the processor applies per transaction
    processor_poll_ms: int = 20  # how long the processor waits for new events when idle
    title_refresh_s: float = 1.0  # how often a replica re-reads title popularity
    backfill: BackfillSource = BackfillSource.bundle
    # POST /v1/events/discard: takes a batch as /v1/events does (key, size limit) and drops
    # it, the ingress's floor for scripts/bench_events.py; off in production
    discard_endpoint: bool = False
    # every recommendation response with a user is logged as an impression event (items,
    # experiments and arms, latency; serve/exposures.py): what experiments are measured on
    exposures: bool = True
