"""The request path over a real trained bundle: surfaces, cold start, filters, explanations,
and the ranker on a real Triton server, including Triton being down."""

import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from recsys.config import register_configs
from recsys.ranking.pipeline import train_ranker
from recsys.runtime.ports import free_port
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.bundle import load_bundle
from recsys.serving.rankers import OnnxRanker, TritonRanker
from recsys.serving.request_path import RecommendationPipeline, Request
from recsys.serving.state import InMemoryUserStore

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "debug=default", "candidates=default", "ranker=two_tower", "trainer.epochs=1",
            "ranker.export.check_on_triton=false", f"data.root={root / 'data'}"])
    train_ranker(cfg, root / "run")
    return load_bundle(*ArtefactStore(root / "run" / "artefacts").resolve("latest"))


@pytest.fixture(scope="module")
def pipeline(bundle):
    store = InMemoryUserStore.from_events(bundle.events, bundle.items)
    return RecommendationPipeline(bundle, store, OnnxRanker(bundle.ranker_dir / "model.onnx"))


def known_user(bundle) -> tuple[int, set[int]]:
    idx = int(bundle.events["user_idx"].value_counts().index[0])
    watched = bundle.events.loc[bundle.events["user_idx"] == idx, "item_idx"]
    return int(bundle.user_ids[idx]), {int(bundle.item_ids[i]) for i in watched}


def test_home_is_personalised_filtered_and_explained(pipeline, bundle):
    user, watched = known_user(bundle)
    res = pipeline.recommend(Request(user_id=user, n=10))
    assert len(res.items) == 10 and res.degraded == [] and not res.cold_start
    assert res.version == bundle.version
    assert not {r.item_id for r in res.items} & watched
    assert all(r.reason for r in res.items)
    assert any(r.reason.startswith("Because you watched ") for r in res.items)
    assert all(0.0 <= r.score <= 1.0 for r in res.items)
    assert list(res.timings_ms) == ["features", "candidates", "filters", "rank", "rerank",
                                    "response"]


def test_search_and_post_play_surfaces(pipeline, bundle):
    user, watched = known_user(bundle)
    title = bundle.items["title"].iloc[3]
    res = pipeline.recommend(Request(user_id=user, surface="search", query=title, n=5))
    assert res.items and all(r.sources == ["content"] for r in res.items)
    assert all(r.reason == f"Matches your search '{title}'" for r in res.items)
    seed = int(bundle.item_ids[7])
    res = pipeline.recommend(Request(user_id=user, surface="post_play", item_id=seed, n=5))
    assert res.items and seed not in {r.item_id for r in res.items}
    assert all(set(r.sources) <= {"cowatch", "content"} for r in res.items)


def test_a_new_user_gets_the_cold_start_path(pipeline, bundle):
    res = pipeline.recommend(Request(user_id=10**9, n=8))
    assert res.cold_start and len(res.items) == 8
    assert {"trending"} <= {s for r in res.items for s in r.sources}
    res = pipeline.recommend(Request(user_id=10**9, surface="post_play",
                                     item_id=int(bundle.item_ids[0]), n=5))
    assert res.cold_start and res.items


def test_filters_apply_to_the_response(pipeline, bundle):
    user, _ = known_user(bundle)
    exclude = [r.item_id for r in pipeline.recommend(Request(user_id=user, n=5)).items]
    res = pipeline.recommend(Request(user_id=user, n=20, max_maturity="PG", region="US",
                                     exclude=exclude))
    items = bundle.items.set_index(bundle.item_ids)
    for r in res.items:
        assert r.item_id not in exclude
        assert items.loc[r.item_id, "maturity_rating"] in ("G", "PG")
        regions = list(items.loc[r.item_id, "regions"])
        assert not regions or "US" in regions
    only_exclude = pipeline.recommend(Request(user_id=user, n=20, exclude=exclude))
    assert only_exclude.filtered["exclude"] == 5
    assert not {r.item_id for r in only_exclude.items} & set(exclude)


def test_ranker_on_triton_matches_in_process_and_falls_back_when_down(pipeline, bundle):
    from recsys.runtime.tritonserver import tritonserver

    user, _ = known_user(bundle)
    req = Request(user_id=user, n=10)
    local = pipeline.recommend(req)
    down = RecommendationPipeline(bundle, pipeline.store,
                                  TritonRanker(f"127.0.0.1:{free_port()}"))
    res = down.recommend(req)
    assert res.degraded == ["rank"] and len(res.items) == 10  # still 200-worthy
    with tritonserver(bundle.ranker_dir / "triton_repository") as server:
        up = RecommendationPipeline(bundle, pipeline.store, TritonRanker(server.grpc_url))
        up.params.rank_deadline_ms = 5000  # first call warms the Python backend up
        res = up.recommend(req)
    assert res.degraded == []
    assert [r.item_id for r in res.items] == [r.item_id for r in local.items]
    assert np.allclose([r.score for r in res.items], [r.score for r in local.items], atol=1e-5)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
