"""Real ``redis-server`` processes for the Redis event log and feature store tests.

``redis_handle`` is one server for the session (tests share it under their own namespaces);
``redis_fresh`` is a server of the test's own in ``tmp_path``, for tests that kill and restart
it, and ``redis_url`` its URL. A machine without redis-server fails these tests with the
install hint instead of skipping them: CI installs it (``make system-deps``), so a skip would
hide a broken setup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys import RecsysError
from recsys.runtime.redis_server import RedisHandle, redis_server


def _serve(directory: Path) -> Iterator[RedisHandle]:
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(redis_server(directory))
        except RecsysError as err:  # missing, or would not start: the hint, not a skip
            failure = str(err)
        else:
            failure = None
        if failure is not None:
            pytest.fail(failure, pytrace=False)  # outside the except: no chained traceback
        yield handle


@pytest.fixture(scope="session")
def redis_handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisHandle]:
    yield from _serve(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def redis_fresh(tmp_path: Path) -> Iterator[RedisHandle]:
    yield from _serve(tmp_path / "redis")


@pytest.fixture
def redis_url(redis_fresh: RedisHandle) -> str:
    return redis_fresh.url
