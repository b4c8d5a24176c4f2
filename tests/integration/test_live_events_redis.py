"""Live events on the Redis backend through the real stack (the stack starts redis-server
itself): events reach every replica through Redis, and Redis killed with kill -9 and restarted
loses no acknowledged event; while it is down, writes answer 503 with Retry-After and
recommendations keep serving from the last state, naming the stage in ``degraded``."""

import time
import uuid

import httpx
import pytest

from recsys.events.store import open_store
from tests.integration.conftest import WRITE_KEY, compose_config

pytestmark = pytest.mark.integration
W = {"X-API-Key": WRITE_KEY}
USERS = [7 * 10**9 + u for u in range(10)]  # ids no dataset uses


@pytest.fixture(scope="module")
def stack(served_artefacts):
    from serve.stack import running_stack

    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.port=0",
                          "serve.ranker=onnx", "serve.events.backend=redis",
                          f"serve.events.namespace=t{uuid.uuid4().hex[:8]}"])
    with running_stack(cfg.serve) as running, httpx.Client(base_url=running.url,
                                                           timeout=30) as client:
        yield running, client


def plays(n, item):
    return [{"event_id": uuid.uuid4().hex, "type": "play", "user_id": USERS[j % len(USERS)],
             "item_id": item, "timestamp": time.time(), "watch_fraction": 0.8}
            for j in range(n)]


def wait_for(predicate, timeout_s=30.0, every_s=0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - the server is coming back
            pass
        time.sleep(every_s)
    return False


def test_redis_killed_and_restarted_loses_no_acknowledged_event(stack):
    running, client = stack
    assert running.redis is not None and running.events.backend == "redis"
    home = client.get("/v1/recommendations", params={"user_id": 1, "n": 10}).json()
    item = home["items"][0]["item_id"]
    res = client.post("/v1/events", json=[{"event_id": uuid.uuid4().hex, "type": "play",
                                           "user_id": 1, "item_id": item,
                                           "timestamp": time.time(), "watch_fraction": 0.9}],
                      headers=W)
    assert res.status_code == 202, res.text
    assert wait_for(lambda: item not in {i["item_id"] for i in client.get(
        "/v1/recommendations", params={"user_id": 1, "n": 10}).json()["items"]})

    acked = 0
    for _ in range(5):
        res = client.post("/v1/events", json=plays(100, item), headers=W)
        assert res.status_code == 202, res.text
        acked += res.json()["accepted"]
    running.redis.kill()  # SIGKILL: only the AOF remains
    down = client.post("/v1/events", json=plays(10, item), headers=W)
    assert down.status_code == 503, down.text
    assert down.headers["retry-after"] == "1"
    served = client.get("/v1/recommendations", params={"user_id": 1, "n": 10})
    assert served.status_code == 200 and served.json()["items"]
    assert "features:store" in served.json()["degraded"]
    assert item not in {i["item_id"] for i in served.json()["items"]}  # the last state known

    running.redis.restart()
    assert wait_for(lambda: client.post("/v1/events", json=plays(10, item), headers=W
                                        ).status_code == 202)
    acked += 10
    store = open_store(running.events)
    assert wait_for(lambda: sum(store.user_version(u) for u in USERS) == acked, 60)
    assert sum(store.user_version(u) for u in USERS) == acked  # none lost, none doubled
    assert wait_for(lambda: client.get("/v1/recommendations", params={
        "user_id": 1, "n": 10}).json()["degraded"] == [])
