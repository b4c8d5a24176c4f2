"""Live events through the real stack, once per backend (SQLite; Redis, started by the stack)
with the ONNX ranker in two recommender replicas: write keys, the batch contract and its limits,
read-your-writes on every replica, titles through the log on every replica and after a replica
is killed, and kill -9 of the stream processor and of the router that took the write with
every acknowledged event applied exactly once."""

import os
import signal
import threading
import time
import uuid

import httpx
import pytest

from recsys.events.settings import EventsConfig
from recsys.events.store import open_store
from tests.integration.conftest import READ_KEY, WRITE_KEY, compose_config

pytestmark = pytest.mark.integration
W = {"Authorization": f"Bearer {WRITE_KEY}"}
FRESH_USERS = 5 * 10**9  # ids no dataset uses: their whole history is what a test posts


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def stack(request, served_artefacts, api_keys):
    from serve.stack import running_stack

    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.port=0",
                          "serve.ranker=onnx", "serve.pipeline.num_replicas=2",
                          "serve.pipeline.num_cpus=0.5", "serve.router.num_cpus=0.5",
                          f"serve.events.backend={request.param}"])
    with running_stack(cfg.serve) as running, httpx.Client(base_url=running.url,
                                                           timeout=30) as client:
        yield running, client


def play(user, item, **extra):
    return {"event_id": uuid.uuid4().hex, "type": "play", "user_id": user, "item_id": item,
            "timestamp": time.time(), "watch_fraction": 0.9, **extra}


def home(client, user, n=10):
    res = client.get("/v1/recommendations", params={"user_id": user, "n": n})
    assert res.status_code == 200, res.text
    return res.json()


def store_of(running):
    return open_store(EventsConfig(**{**vars(running.events), "path": str(running.live_folder)}))


def wait_for(predicate, timeout_s=30.0, every_s=0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return False


def test_write_endpoints_need_a_write_key_and_reads_stay_open(stack):
    _, client = stack
    batch = [play(1, 1)]
    title = [{"item_id": 10**10, "title": "Keyed"}]
    for path, body in (("/v1/events", batch), ("/v1/items", title)):
        none = client.post(path, json=body)
        assert none.status_code == 401 and "needs an API key" in none.json()["detail"]
        assert none.headers["www-authenticate"] == "Bearer"
        wrong = client.post(path, json=body, headers={"X-API-Key": "x" * 20})
        assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"]
        read = client.post(path, json=body, headers={"X-API-Key": READ_KEY})
        assert read.status_code == 403 and "read-only" in read.json()["detail"]
    assert client.get("/v1/recommendations", params={"user_id": 1}).status_code == 200
    assert client.get("/v1/events/dead-letters").status_code == 401  # they hold user data
    assert client.get("/v1/events/dead-letters", headers={"X-API-Key": READ_KEY}
                      ).status_code == 200


def test_the_batch_contract_and_its_limits(stack):
    _, client = stack
    mixed = [play(FRESH_USERS, 1), play(FRESH_USERS, 1, watch_fraction=1.5),
             play(FRESH_USERS, 10**15), play(FRESH_USERS, 1, timestamp=time.time() + 3600)]
    res = client.post("/v1/events", json=mixed, headers=W)
    assert res.status_code == 202, res.text
    body = res.json()
    assert body["accepted"] == 1 and body["duplicates"] == 0
    assert [(r["index"], r["field"], r["reason"]) for r in body["rejected"]] == [
        (1, "watch_fraction", "invalid"), (2, "item_id", "unknown_item"),
        (3, "timestamp", "future")]
    again = client.post("/v1/events", json=mixed[:1], headers=W)
    assert again.status_code == 202 and again.json()["duplicates"] == 1
    letters = client.get("/v1/events/dead-letters", headers=W).json()
    assert {mixed[i]["event_id"] for i in (1, 2, 3)} <= {d["event_id"] for d in
                                                          letters["dead_letters"]}
    all_bad = client.post("/v1/events", json=mixed[1:2], headers=W)
    assert all_bad.status_code == 422 and all_bad.json()["accepted"] == 0
    many = client.post("/v1/events", json=[play(1, 1) for _ in range(1001)], headers=W)
    assert many.status_code == 413 and "1000" in many.json()["detail"]
    huge = client.post("/v1/events", content=b"[" + b" " * (1 << 20) + b"]",
                       headers={**W, "content-type": "application/json"})
    assert huge.status_code == 413 and "1048576" in huge.json()["detail"]
    for bad in (b"{}", b"not json", b"[]"):
        res = client.post("/v1/events", content=bad, headers=W)
        assert res.status_code == 422 and res.json()["detail"][0]["parameter"] == "body"


def test_read_your_writes_on_every_replica_and_a_new_user_is_personalised(stack):
    running, client = stack
    user = 3
    shown = [i["item_id"] for i in home(client, user)["items"]]
    watched = shown[0]
    posted = time.monotonic()
    assert client.post("/v1/events", json=[play(user, watched)], headers=W).status_code == 202
    assert wait_for(lambda: watched not in {i["item_id"] for i in home(client, user)["items"]})
    delay = time.monotonic() - posted
    # every later request, on either replica, has it (concurrent: both replicas answer)
    results = []
    threads = [threading.Thread(target=lambda: results.append(home(client, user)))
               for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(watched not in {i["item_id"] for i in r["items"]} for r in results)
    assert delay < 5.0
    newcomer = FRESH_USERS + 1
    assert home(client, newcomer)["cold_start"]
    assert client.post("/v1/events", json=[play(newcomer, watched)], headers=W
                       ).status_code == 202
    assert wait_for(lambda: not home(client, newcomer)["cold_start"])
    row = home(client, newcomer)
    assert watched not in {i["item_id"] for i in row["items"]}
    assert any(i["reason"].startswith("Because you watched") for i in row["items"])


def replica_pids(class_fragment):
    """Processes of live Serve replicas of one deployment (from Ray's actor table: the
    state API needs the dashboard, which the stack leaves off)."""
    import ray._private.state as ray_state

    return [a["Pid"] for a in ray_state.actors().values()
            if a["State"] == "ALIVE" and class_fragment in a["ActorClassName"]]


def test_a_title_added_reaches_every_replica_and_survives_a_replica_restart(stack):
    running, client = stack
    new_id = 2 * 10**10
    body = [{"item_id": new_id, "title": "Live Extended Cut", "genres": ["Drama"]}]
    res = client.post("/v1/items", json=body, headers=W)
    assert res.status_code == 201, res.text
    assert client.post("/v1/items", json=body, headers=W).status_code == 409

    def every_replica_has_it():
        answers = [client.get(f"/v1/items/{new_id}/similar", params={"n": 3}).status_code
                   for _ in range(12)]
        return all(a == 200 for a in answers)

    assert wait_for(every_replica_has_it, timeout_s=10)
    pids = replica_pids("Recommender")
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: client.get("/readyz").status_code == 200, timeout_s=120, every_s=1)
    assert wait_for(every_replica_has_it, timeout_s=60, every_s=1)


def test_kill_9_of_the_processor_and_of_the_router_loses_and_doubles_nothing(stack):
    import ray

    running, client = stack
    users = [FRESH_USERS + 100 + u for u in range(20)]
    acked: dict[int, int] = {u: 0 for u in users}
    items = [i["item_id"] for i in home(client, 1, n=20)["items"]]
    stop = threading.Event()

    def post_batches():
        """As a client should: a batch without a 202 is sent again, same event ids, until
        one comes (it may have been stored before the router died: then it is duplicates)."""
        j = 0
        while not stop.is_set():
            batch = [play(users[(j + k) % len(users)], items[k % len(items)]) for k in range(50)]
            while True:
                try:
                    res = client.post("/v1/events", json=batch, headers=W)
                    if res.status_code == 202:
                        break
                except httpx.HTTPError:
                    pass  # the router was killed mid-request
                time.sleep(0.1)
            assert res.json()["accepted"] + res.json()["duplicates"] == len(batch)
            for e in batch:
                acked[e["user_id"]] += 1
            j += 1

    writer = threading.Thread(target=post_batches)
    writer.start()
    try:
        time.sleep(1.0)
        processor_pid = ray.get(running.processor.stats.remote())["pid"]
        os.kill(processor_pid, signal.SIGKILL)
        time.sleep(1.0)
        routers = replica_pids("Router")
        assert routers
        for pid in routers:
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: client.get("/healthz").status_code == 200, 120, 0.5)
        time.sleep(1.0)
    finally:
        stop.set()
        writer.join()
    assert sum(acked.values()) > 0
    assert wait_for(lambda: ray.get(running.processor.stats.remote())["lag"] == 0, 60, 0.2)
    assert ray.get(running.processor.stats.remote())["pid"] != processor_pid  # restarted
    store = store_of(running)
    assert {u: store.user_version(u) for u in users} == acked  # exactly once each
