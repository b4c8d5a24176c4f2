"""The whole serving stack for real on 127.0.0.1: Triton (ranker) + Ray Serve (router ->
recommender) over a freshly trained bundle. Surfaces, cold start, 422s and 409s raised in the
recommender replica, probes, metrics, and a Triton that stalls past its deadline and then
recovers."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recsys.serving.artefacts import ArtefactStore
from tests.integration.conftest import WRITE_KEY, compose_config

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_demo_starts_queries_every_surface_and_stops(served_artefacts):
    """What `make run` ends with (runs before the module's own stack is up)."""
    proc = subprocess.run([sys.executable, "-m", "serve.demo",
                           f"serve.artefacts_root={served_artefacts}", "output.top_n=3"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for section in ("home, user", "search 'space adventure'", "post-play after",
                    "home, a brand-new user", "(cold start)", "POST /v1/events", "[202]",
                    "after those plays", "stack stopped"):
        assert section in out, out[-3000:]
    assert out.count("  1. ") == 7
    before, after = out.split("POST /v1/events")
    assert "(cold start)" in before and "(cold start)" not in after  # the new user has plays
    # a quiet stop: Ray Serve's shutdown reports nothing as failed
    for stream in (proc.stdout, proc.stderr):
        assert "graceful_shutdown" not in stream and "failed" not in stream.lower(), stream


def test_serve_without_artefacts_exits_with_a_sentence():
    proc = subprocess.run([sys.executable, "-m", "serve"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "serve.artefacts_root is not set" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def stack(served_artefacts):
    from serve.stack import running_stack

    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.port=0",
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


def test_unknown_seed_title_is_a_422_naming_the_parameter(stack):
    """Raised in the recommender replica, re-raised through the handle, mapped by the router."""
    _, client = stack
    unknown = 2**62  # a valid id that is no title
    res = get(client, "/v1/recommendations", user_id=1, surface="post_play", item_id=unknown)
    assert res.status_code == 422
    [detail] = res.json()["detail"]
    assert detail["parameter"] == "item_id"
    assert f"item_id={unknown} is not a title" in detail["message"]
    similar = client.get(f"/v1/items/{unknown}/similar", params={"n": 3})
    assert similar.status_code == 422 and similar.json()["detail"][0]["parameter"] == "item_id"
    # FastAPI's own check of a route parameter: the same shape
    similar = client.get("/v1/items/1/similar", params={"n": 0})
    assert similar.status_code == 422 and similar.json()["detail"][0]["parameter"] == "n"


BAD_IDS = [str(2**63), "-1", "5.0", "1e3", "99999999999999999999998"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_every_endpoint_that_takes_an_id_refuses_one_outside_int64(stack, bad):
    """One id contract at every edge: a 422 naming the field, never a wrap or a 500."""
    _, client = stack
    calls = {
        "user_id": get(client, "/v1/recommendations", user_id=bad),
        "item_id": get(client, "/v1/recommendations", user_id=1, surface="post_play",
                       item_id=bad),
        "exclude[0]": get(client, "/v1/recommendations", user_id=1, exclude=bad),
        "item_id ": client.get(f"/v1/items/{bad}/similar", params={"n": 3}),
    }
    for parameter, res in calls.items():
        assert res.status_code == 422, (parameter, res.text)
        assert [d["parameter"] for d in res.json()["detail"]] == [parameter.strip()], res.text
    body = [{"item_id": int(bad) if bad.lstrip("-").isdigit() else bad, "title": "T"}]
    res = client.post("/v1/items", json=body, headers={"X-API-Key": WRITE_KEY})
    assert res.status_code == 422, res.text
    assert res.json()["detail"][0]["parameter"] == "items[0].item_id"


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


def metric_values(text: str) -> dict[str, float]:
    """``name`` or ``name{model=...}`` -> value, from Prometheus text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = f"{s.name}{{{s.labels['model']}}}" if "model" in s.labels else s.name
            out[key] = s.value
    return out


def test_metrics_have_triton_batch_counters_and_rows_per_ranker_call(stack):
    _, client = stack
    for user in (1, 2, 3):
        assert get(client, "/v1/recommendations", user_id=user, n=5).status_code == 200
    from recsys.runtime.triton_models import model_name

    # Triton serves each artefact version as a model of its own (serve/triton_host.py)
    model = model_name(get(client, "/v1/recommendations", user_id=1, n=5).json()["version"])
    before = metric_values(client.get("/metrics").text)
    rows, execs = (before[f"recsys_triton_inference_rows_total{{{model}}}"],
                   before[f"recsys_triton_executions_total{{{model}}}"])
    assert execs >= 1 and rows / execs >= 1  # Triton's mean batch size, in rows
    assert before["recsys_rank_batch_rows_count"] >= 3
    # one more request: Triton ran exactly the rows the router recorded for it
    assert get(client, "/v1/recommendations", user_id=4, n=5).json()["degraded"] == []
    after = metric_values(client.get("/metrics").text)
    sent = after["recsys_rank_batch_rows_sum"] - before["recsys_rank_batch_rows_sum"]
    assert sent > 0 and after["recsys_rank_batch_rows_count"] == \
        before["recsys_rank_batch_rows_count"] + 1
    assert after[f"recsys_triton_inference_rows_total{{{model}}}"] - rows == sent


def test_a_title_added_over_http_is_served_at_once(stack, served_artefacts):
    _, client = stack
    bundle_dir = ArtefactStore(served_artefacts).resolve("latest")[1]
    items = pd.read_parquet(bundle_dir / "items.parquet")
    original = items.iloc[3]
    new_id = int(items["item_id"].max()) + 1000
    title = f"{original['title']}: Extended Cut"
    post_play = {"user_id": 1, "surface": "post_play", "item_id": new_id, "n": 5}
    assert get(client, "/v1/recommendations", **post_play).status_code == 422  # not yet
    body = [{"item_id": new_id, "title": title, "year": int(original["year"]),
             "genres": list(original["genres"]), "maturity_rating": original["maturity_rating"]}]
    keyed = {"X-API-Key": WRITE_KEY}
    res = client.post("/v1/items", json=body, headers=keyed)
    assert res.status_code == 201, res.text
    assert res.json()["item_ids"] == [new_id] and res.json()["catalog_size"] == len(items) + 1
    again = client.post("/v1/items", json=body, headers=keyed)
    assert again.status_code == 409
    [detail] = again.json()["detail"]
    assert detail["parameter"] == "item_id" and "already in the catalog" in detail["message"]
    bad = client.post("/v1/items", json=[{"item_id": new_id + 1}], headers=keyed)
    assert bad.status_code == 422
    assert [d["parameter"] for d in bad.json()["detail"]] == ["items[0].title"]
    # the new title as the seed: content knows it (co-watch does not), reasons name it
    res = get(client, "/v1/recommendations", **post_play)
    assert res.status_code == 200 and res.json()["degraded"] == [] and res.json()["items"]
    assert {i["reason"] for i in res.json()["items"]} == {f"Because you watched {title}"}
    assert client.get(f"/v1/items/{new_id}/similar", params={"n": 3}).status_code == 200


def test_stalled_triton_degrades_rank_and_personalisation_returns(stack):
    running, client = stack
    os.kill(running.triton.pid, signal.SIGSTOP)
    try:
        res = get(client, "/v1/recommendations", user_id=3, n=5)
        assert res.status_code == 200 and res.json()["degraded"] == ["rank"]
        assert len(res.json()["items"]) == 5
        assert client.get("/readyz").status_code == 503
        # /metrics still answers: without Triton's lines, with the failed scrape counted
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        values = metric_values(metrics.text)
        assert not any(k.startswith("recsys_triton_inference_rows_total") for k in values)
        assert values["recsys_triton_scrape_failures_total"] >= 1
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
