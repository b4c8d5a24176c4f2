"""What the Redis event log and feature store share: how they connect, and how a Redis failure
reaches their callers.

Every failure that means "the server cannot answer now" (refused or dropped connection, a
timeout, an AOF still loading after a restart, a disk that refuses writes) becomes
``LogUnavailable`` naming the URL, which the processor waits out and the API turns into a 503;
any other Redis error is a misconfiguration (a key of another type under our namespace, a server
too old for a command) and becomes a ``RecsysError``. No raw redis-py exception leaves the two
modules, so callers need not import redis-py to handle them.

Timeouts are short (``CONNECT_TIMEOUT_S``, ``SOCKET_TIMEOUT_S``): a dead server must turn into
an error within seconds, not hang a request. The default client retries a command once after a
dropped connection (the pooled connections of a restarted server are all stale, and the retry
reconnects); the reading client never retries, because a retried ``XREADGROUP`` whose first
attempt reached the server would hide the entries that attempt delivered.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from recsys import RecsysError
from recsys.events.log import LogUnavailable
from recsys.events.settings import EventsConfig

CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 5.0
HEALTH_CHECK_S = 5  # an idle pooled connection is PINGed before reuse
# error replies that mean "not now" rather than "wrong": retry later
TRANSIENT = ("LOADING", "MISCONF", "READONLY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN",
             "CLUSTERDOWN", "BUSY ")


def redacted(url: str) -> str:
    """The URL without its password (it goes into error messages and logs)."""
    return re.sub(r"//[^@/]*@", "//***@", url)


def require_url(cfg: EventsConfig) -> str:
    if not cfg.redis_url:
        raise RecsysError("serve.events.redis_url is not set: the Redis server of the event "
                          "log and feature store (redis://host:port/db)")
    return cfg.redis_url


def connect(url: str, retries: int = 1) -> redis.Redis:
    """A pooled client with short timeouts, str replies, and ``retries`` retries of a command
    after a connection error (never after a timeout: the server may have run it)."""
    retry = Retry(ExponentialBackoff(cap=0.25, base=0.05), retries,
                  supported_errors=(redis.exceptions.ConnectionError,))
    try:
        return redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S, health_check_interval=HEALTH_CHECK_S,
            retry=retry, retry_on_error=[redis.exceptions.ConnectionError])
    except ValueError as err:  # a malformed URL
        raise RecsysError(f"serve.events.redis_url {redacted(url)!r}: {err}") from None


def is_transient(err: redis.exceptions.RedisError) -> bool:
    if isinstance(err, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return True
    return isinstance(err, redis.exceptions.ResponseError) and str(err).startswith(TRANSIENT)


@contextlib.contextmanager
def translated(url: str, what: str) -> Iterator[None]:
    """Turn redis-py's exceptions into ``LogUnavailable`` / ``RecsysError`` (module doc)."""
    try:
        yield
    except redis.exceptions.RedisError as err:
        where = f"redis at {redacted(url)} ({what})"
        if is_transient(err):
            raise LogUnavailable(f"{where}: {type(err).__name__}: {err}") from None
        raise RecsysError(f"{where}: {type(err).__name__}: {err}") from None


def glob_escape(text: str) -> str:
    """``text`` as a literal in a ``SCAN MATCH`` pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def stream_id(entry_id: str) -> tuple[int, int]:
    """A stream id ``ms-seq`` as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def close_quietly(client: redis.Redis) -> None:
    with contextlib.suppress(redis.exceptions.RedisError, OSError):
        client.close()
