"""The whole serving stack for real on 127.0.0.1: Triton (ranker) + Ray Serve (router ->
pipeline) over a freshly trained bundle. Surfaces, cold start, 422s, probes, metrics, and a
Triton that stalls past its deadline and then recovers."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hydra import compose, initialize_config_dir

from recsys.config import register_configs
from recsys.ranking.pipeline import train_ranker

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _cfg(overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stack")
    train_ranker(_cfg(["debug=default", "candidates=default", "ranker=two_tower",
                       "trainer.epochs=1", "ranker.export.check_on_triton=false",
                       f"data.root={root / 'data'}"]), root / "run")
    return root / "run" / "artefacts"


def test_demo_starts_queries_every_surface_and_stops(artefacts):
    """What `make run` ends with (runs before the module's own stack is up)."""
    proc = subprocess.run([sys.executable, "-m", "serve.demo",
                           f"serve.artefacts_root={artefacts}", "output.top_n=3"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for section in ("home, user", "search 'space adventure'", "post-play after",
                    "home, a brand-new user", "(cold start)", "stack stopped"):
        assert section in out, out[-3000:]
    assert out.count("  1. ") == 5


def test_serve_without_artefacts_exits_with_a_sentence():
    proc = subprocess.run([sys.executable, "-m", "serve"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "serve.artefacts_root is not set" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def stack(artefacts):
    from serve.stack import running_stack

    cfg = _cfg([f"serve.artefacts_root={artefacts}", "serve.port=0",
                "serve.rank_deadline_ms=200"])
    with running_stack(cfg.serve) as running, httpx.Client(base_url=running.url,
                                                           timeout=30) as client:
        yield running, client


def get(client, path, **params):
    return client.get(path, params=params)


def test_all_surfaces_and_a_new_user(stack):
    running, client = stack
    home = get(client, "/v1/recommendations", user_id=1, surface="home", n=10)
    assert home.status_code == 200, home.text
    body = home.json()
    assert len(body["items"]) == 10 and body["version"] == running.version
    assert body["degraded"] == [] and not body["cold_start"]
    assert all(item["reason"] and item["sources"] for item in body["items"])
    title = body["items"][0]["title"]
    search = get(client, "/v1/recommendations", user_id=1, surface="search", query=title, n=5)
    assert search.status_code == 200
    assert {i["reason"] for i in search.json()["items"]} == {f"Matches your search '{title}'"}
    seed = body["items"][0]["item_id"]
    post = get(client, "/v1/recommendations", user_id=1, surface="post_play", item_id=seed, n=5)
    assert post.status_code == 200 and seed not in {i["item_id"] for i in post.json()["items"]}
    new = get(client, "/v1/recommendations", user_id=987654321, n=5)
    assert new.status_code == 200 and new.json()["cold_start"] and new.json()["items"]
    similar = client.get(f"/v1/items/{seed}/similar", params={"n": 3})
    assert similar.status_code == 200 and len(similar.json()["items"]) == 3


@pytest.mark.parametrize(("params", "parameter"), [
    ({"surface": "kids"}, "surface"), ({"n": 0}, "n"), ({"n": 101}, "n"),
    ({"surface": "search"}, "query"), ({"surface": "post_play"}, "item_id"),
])
def test_bad_input_is_a_422_naming_the_parameter(stack, params, parameter):
    _, client = stack
    res = get(client, "/v1/recommendations", user_id=1, **params)
    assert res.status_code == 422
    assert [d["parameter"] for d in res.json()["detail"]] == [parameter]


def test_unknown_seed_title_is_a_422_with_a_sentence(stack):
    _, client = stack
    res = get(client, "/v1/recommendations", user_id=1, surface="post_play", item_id=-5)
    assert res.status_code == 422 and "item_id=-5 is not a title" in res.json()["detail"]


def test_probes_and_metrics(stack):
    _, client = stack
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ranker_live"]
    get(client, "/v1/recommendations", user_id=2, n=5)
    text = client.get("/metrics").text
    for stage in ("features", "candidates", "filters", "rank", "rerank", "response"):
        assert f'recsys_stage_seconds_count{{stage="{stage}"}}' in text
    assert "recsys_request_seconds_bucket" in text
    assert "/v1/recommendations" in client.get("/openapi.json").text


def test_stalled_triton_degrades_rank_and_personalisation_returns(stack):
    running, client = stack
    os.kill(running.triton.pid, signal.SIGSTOP)
    try:
        res = get(client, "/v1/recommendations", user_id=3, n=5)
        assert res.status_code == 200 and res.json()["degraded"] == ["rank"]
        assert len(res.json()["items"]) == 5
        assert client.get("/readyz").status_code == 503
    finally:
        os.kill(running.triton.pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        res = get(client, "/v1/recommendations", user_id=3, n=5)
        if res.json()["degraded"] == []:
            break
        time.sleep(0.5)
    assert res.json()["degraded"] == []
    metrics = client.get("/metrics").text
    assert 'recsys_fallbacks_total{stage="rank"}' in metrics
