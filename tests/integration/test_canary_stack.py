"""A canary on the real stack: a new version served to half the users as an experiment arm,
judged on the logged engagement; one the simulated users shun is rolled back automatically,
one they like as much is promoted to latest; not one request fails."""

import shutil
import time
import uuid

import httpx
import numpy as np
import pytest

from recsys.serving.artefacts import MANIFEST, ArtefactStore
from recsys.serving.canary_state import canary_state, start_canary
from tests.integration.conftest import WRITE_KEY, compose_config

pytestmark = pytest.mark.integration
W = {"Authorization": f"Bearer {WRITE_KEY}"}


def copy_version(store: ArtefactStore, source: str, name: str) -> str:
    shutil.copytree(store.versions_dir / source, store.versions_dir / name,
                    ignore=shutil.ignore_patterns(MANIFEST))
    store.publish(name, activate=False)
    return name


def visit_until(client, users, play_rate, store, rng, timeout_s=300.0):
    """Users visit home and play its first title with ``play_rate[arm]`` until the canary is
    decided; every response's status."""
    statuses = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for user in users:
            res = client.get("/v1/recommendations", params={"user_id": user, "n": 5})
            statuses.append(res.status_code)
            if res.status_code != 200:
                continue
            body = res.json()
            arm = next((e["arm"] for e in body["experiments"] if e["experiment"] == "canary"),
                       None)
            if arm and body["items"] and rng.random() < play_rate[arm]:
                play = {"event_id": uuid.uuid4().hex, "type": "play", "user_id": user,
                        "item_id": body["items"][0]["item_id"], "timestamp": time.time(),
                        "watch_fraction": 0.9, "context": {"request_id": body["request_id"]}}
                statuses.append(client.post("/v1/events", json=[play], headers=W).status_code)
            state = canary_state(store)
            if state and state["state"] != "running":
                return statuses, state
    return statuses, canary_state(store)


def test_a_shunned_canary_rolls_back_and_a_liked_one_is_promoted(served_artefacts, api_keys):
    from recsys.serving.bundle import load_bundle
    from serve.stack import running_stack

    store = ArtefactStore(served_artefacts)
    first = store.resolve("latest")[0]
    users = [int(u) for u in load_bundle(*store.resolve(first)).user_ids[:120]]
    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.port=0",
                          "serve.ranker=onnx", "serve.version_poll_s=0.3",
                          "serve.canary.check_s=1", "serve.canary.min_users=25",
                          "serve.canary.min_latency_samples=1000000",
                          "serve.canary.guardrails=[play_rate]", "serve.canary.alpha=0.001"])
    rng = np.random.default_rng(0)
    with running_stack(cfg.serve) as running, httpx.Client(base_url=running.url,
                                                           timeout=30) as client:
        bad = copy_version(store, first, f"{first}bad")
        start_canary(store, bad, 0.5)
        statuses, state = visit_until(client, users, {"control": 0.9, "canary": 0.0}, store,
                                      rng)
        assert state["state"] == "rolled_back" and "play_rate" in state["reason"]
        assert store.resolve("latest")[0] == first
        shown = client.get("/v1/recommendations", params={"user_id": users[0]}).json()
        assert shown["version"] == first and shown["experiments"] == []
        line = next(x for x in client.get("/metrics").text.splitlines()
                    if x.startswith("recsys_canary_state{"))
        assert 'state="rolled_back"' in line and "play_rate" in line

        good = copy_version(store, first, f"{first}good")
        start_canary(store, good, 0.5)
        more, state = visit_until(client, users, {"control": 0.5, "canary": 0.5}, store, rng)
        assert state["state"] == "promoted" and state["reason"].startswith("holds")
        assert store.resolve("latest")[0] == good
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.get(
                "/v1/recommendations", params={"user_id": users[0]}).json()["version"] != good:
            time.sleep(0.2)
        assert client.get("/readyz").json()["version"] == good
        line = next(x for x in client.get("/metrics").text.splitlines()
                    if x.startswith("recsys_canary_state{"))
        assert 'state="promoted"' in line and f'version="{good}"' in line
    assert set(statuses + more) <= {200, 202}  # not one request failed
    assert running.watcher.swaps == [good]
