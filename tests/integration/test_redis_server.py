"""``recsys.runtime.redis_server``: a real redis-server with the AOF, gone afterwards; SIGKILL and
restart keep what it acknowledged; a machine without it gets the install hint."""

from __future__ import annotations

import pytest
import redis

from recsys import RecsysError
from recsys.runtime import port_is_open
from recsys.runtime.redis_server import INSTALL_HINT, RedisHandle, ping, redis_server

pytestmark = pytest.mark.integration


def test_a_server_with_the_aof_that_is_gone_afterwards(tmp_path):
    with redis_server(tmp_path / "r", fsync="always") as handle:
        assert handle.url == f"redis://127.0.0.1:{handle.port}/0" and handle.pid
        client = redis.Redis.from_url(handle.url, decode_responses=True)
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("save") == {"save": ""}
        client.close()
        assert (tmp_path / "r" / "appendonlydir").is_dir()
    assert not handle.is_alive() and not port_is_open(handle.port) and not ping(handle.port)


def test_sigkill_then_restart_keeps_acknowledged_writes(redis_fresh: RedisHandle):
    client = redis.Redis.from_url(redis_fresh.url, decode_responses=True)
    client.rpush("k", *range(100))
    port, pid = redis_fresh.port, redis_fresh.pid
    redis_fresh.kill()
    assert not ping(port)
    redis_fresh.restart()
    assert (redis_fresh.port, redis_fresh.pid != pid) == (port, True)
    assert client.lrange("k", 0, -1) == [str(i) for i in range(100)]  # reconnects by itself
    client.close()


def test_a_missing_binary_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RecsysError, match=INSTALL_HINT), redis_server():
        pass
    with pytest.raises(RecsysError, match="appendfsync"), redis_server(fsync="sometimes"):
        pass
