"""The request path over a real trained bundle: surfaces, cold start, filters, explanations,
and the ranker on a real Triton server, including Triton being down."""

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recsys import RecsysError
from recsys.candidates.generator import CandidateGenerator
from recsys.config import compose_config
from recsys.config.jobs import two_stage_job
from recsys.runtime.ports import free_port
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.bundle import load_bundle
from recsys.serving.catalog_admin import add_titles
from recsys.serving.errors import DuplicateItemError, UnknownItemError
from recsys.serving.rankers import OnnxRanker, TritonRanker
from recsys.serving.request_path import STAGES, Request, RequestPath
from recsys.serving.settings import RerankConfig, ServeConfig
from recsys.serving.state import InMemoryUserStore
from recsys.train.two_stage import train_ranker

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    cfg = compose_config([
        "debug=default", "candidates=default", "ranker=two_tower", "trainer.epochs=1",
        "ranker.export.check_on_triton=false", f"data.root={root / 'data'}"])
    train_ranker(two_stage_job(cfg), root / "run")
    return load_bundle(*ArtefactStore(root / "run" / "artefacts").resolve("latest"))


@pytest.fixture(scope="module")
def pipeline(bundle):
    store = InMemoryUserStore.from_events(bundle.events, bundle.items)
    return RequestPath(bundle, store, OnnxRanker(bundle.ranker_dir / "model.onnx"))


def known_user(bundle) -> tuple[int, set[int]]:
    idx = int(bundle.events["user_idx"].value_counts().index[0])
    watched = bundle.events.loc[bundle.events["user_idx"] == idx, "item_idx"]
    return int(bundle.user_ids[idx]), {int(bundle.item_ids[i]) for i in watched}


def test_home_is_personalised_filtered_and_explained(pipeline, bundle):
    user, watched = known_user(bundle)
    res = pipeline.recommend_sync(Request(user_id=user, n=10))
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
    res = pipeline.recommend_sync(Request(user_id=user, surface="search", query=title, n=5))
    assert res.items and all(r.sources == ["content"] for r in res.items)
    assert all(r.reason == f"Matches your search '{title}'" for r in res.items)
    seed = int(bundle.item_ids[7])
    res = pipeline.recommend_sync(Request(user_id=user, surface="post_play", item_id=seed, n=5))
    assert res.items and seed not in {r.item_id for r in res.items}
    assert all(set(r.sources) <= {"cowatch", "content"} for r in res.items)


def test_a_new_user_gets_the_cold_start_path(pipeline, bundle):
    res = pipeline.recommend_sync(Request(user_id=10**9, n=8))
    assert res.cold_start and len(res.items) == 8
    assert {"trending"} <= {s for r in res.items for s in r.sources}
    res = pipeline.recommend_sync(Request(user_id=10**9, surface="post_play",
                                     item_id=int(bundle.item_ids[0]), n=5))
    assert res.cold_start and res.items


def test_filters_apply_to_the_response(pipeline, bundle):
    user, _ = known_user(bundle)
    exclude = [r.item_id for r in pipeline.recommend_sync(Request(user_id=user, n=5)).items]
    res = pipeline.recommend_sync(Request(user_id=user, n=20, max_maturity="PG", region="US",
                                     exclude=exclude))
    items = bundle.items.set_index(bundle.item_ids)
    for r in res.items:
        assert r.item_id not in exclude
        assert items.loc[r.item_id, "maturity_rating"] in ("G", "PG")
        regions = list(items.loc[r.item_id, "regions"])
        assert not regions or "US" in regions
    only_exclude = pipeline.recommend_sync(Request(user_id=user, n=20, exclude=exclude))
    assert only_exclude.filtered["exclude"] == 5
    assert not {r.item_id for r in only_exclude.items} & set(exclude)


def test_ranker_on_triton_matches_in_process_and_falls_back_when_down(pipeline, bundle):
    from recsys.runtime.tritonserver import tritonserver

    user, _ = known_user(bundle)
    req = Request(user_id=user, n=10)
    local = pipeline.recommend_sync(req)
    down = RequestPath(bundle, pipeline.store,
                                  TritonRanker(f"127.0.0.1:{free_port()}"))
    res = down.recommend_sync(req)
    assert res.degraded == ["rank"] and len(res.items) == 10  # still 200-worthy
    res = asyncio.run(down.recommend(req))  # the serving replica's path (async gRPC)
    assert res.degraded == ["rank"] and len(res.items) == 10
    with tritonserver(bundle.ranker_dir / "triton_repository") as server:
        # a generous deadline: the first call warms the Python backend up
        up = RequestPath(bundle, pipeline.store, TritonRanker(server.grpc_url),
                         ServeConfig(rank_deadline_ms=5000))
        res = up.recommend_sync(req)
        by_async = asyncio.run(up.recommend(req))
    for got in (res, by_async):
        assert got.degraded == []
        assert [r.item_id for r in got.items] == [r.item_id for r in local.items]
        assert np.allclose([r.score for r in got.items], [r.score for r in local.items],
                           atol=1e-5)



def test_home_candidates_include_two_tower_and_a_new_user_does_without(pipeline, bundle):
    """The bundle serves the ranker's own towers as a source; a user they never saw has no
    vector, which is not a failure."""
    assert "two_tower" in pipeline.generators["home"].sources
    user, _ = known_user(bundle)
    res = pipeline.recommend_sync(Request(user_id=user, n=20))
    assert res.degraded == [] and any("two_tower" in r.sources for r in res.items)
    cold = pipeline.recommend_sync(Request(user_id=10**9, n=20))
    assert cold.degraded == [] and cold.items
    assert not any("two_tower" in r.sources for r in cold.items)


class ScriptedRanker:
    """Wraps a real ranker: records which call the request path made and with what deadline,
    and makes async calls wait ``delays_s`` in turn (one per call), as a busy Triton would."""

    name = "scripted"

    def __init__(self, inner, delays_s=()) -> None:
        self.inner, self.delays_s = inner, list(delays_s)
        self.calls: list[tuple[str, float]] = []

    def score(self, inputs, deadline_s):
        self.calls.append(("score", deadline_s))
        return self.inner.score(inputs, deadline_s)

    async def score_async(self, inputs, deadline_s):
        self.calls.append(("score_async", deadline_s))
        await asyncio.sleep(self.delays_s.pop(0) if self.delays_s else 0.0)
        return self.inner.score(inputs, deadline_s)


def test_concurrent_requests_keep_their_own_timings(pipeline, bundle):
    """Two requests on one event loop: while the first waits on its (slow) ranker call, the
    second runs all its stages; each result holds its own stage and source timings."""
    ranker = ScriptedRanker(pipeline.ranker, delays_s=[0.5, 0.0])
    path = RequestPath(bundle, pipeline.store, ranker)
    user, _ = known_user(bundle)

    async def both():
        return await asyncio.gather(path.recommend(Request(user_id=user, n=5)),
                                    path.recommend(Request(user_id=10**9, n=5)))

    slow, fast = asyncio.run(both())
    for res in (slow, fast):
        assert list(res.timings_ms) == list(STAGES) and res.degraded == []
        assert set(res.source_timings_ms) >= set(path.generators["home"].sources)
    assert slow.timings_ms["rank"] >= 450 > fast.timings_ms["rank"]
    assert not slow.cold_start and fast.cold_start
    assert not hasattr(path.generators["home"], "timings_ms")  # no state on shared objects


def test_the_sync_wrapper_calls_the_rankers_sync_client_even_inside_an_event_loop(pipeline,
                                                                                   bundle):
    cfg = ServeConfig(rank_deadline_ms=50)
    ranker = ScriptedRanker(pipeline.ranker)
    path = RequestPath(bundle, pipeline.store, ranker, cfg)
    user, _ = known_user(bundle)
    want = pipeline.recommend_sync(Request(user_id=user, n=10))

    async def from_a_coroutine():
        return path.recommend_sync(Request(user_id=user, n=10))

    got = asyncio.run(from_a_coroutine())  # a running loop: asyncio.run would refuse here
    assert ranker.calls == [("score", 0.05)]
    assert [r.item_id for r in got.items] == [r.item_id for r in want.items]
    path.warm_up()  # a generous deadline for the first call, without touching the settings
    assert ranker.calls[-1] == ("score", 30.0) and cfg.rank_deadline_ms == 50


NEW_ID = 10**7


@pytest.fixture(scope="module")
def added(bundle):
    """A pipeline of its own (adding titles changes it) with a near-copy of title 3 added."""
    fresh = load_bundle(bundle.version, bundle.path)
    # the business rules name the new title before the catalog has it
    settings = ServeConfig(rerank=RerankConfig(pin=[NEW_ID]))
    pipe = RequestPath(fresh, InMemoryUserStore.from_events(fresh.events, fresh.items),
                       OnnxRanker(fresh.ranker_dir / "model.onnx"), settings)
    assert pipe.live.rules.pin == []
    original = fresh.items.iloc[[3]]
    twin = original.assign(item_id=NEW_ID, title=original["title"].iloc[0] + ": Extended Cut")
    user, _ = known_user(fresh)
    with pytest.raises(UnknownItemError, match=f"item_id={NEW_ID} is not a title") as err:
        pipe.recommend_sync(Request(user_id=user, surface="post_play", item_id=NEW_ID))
    assert err.value.parameter == "item_id"
    new = add_titles(pipe, twin)
    assert new.tolist() == [len(bundle.item_ids)]
    assert pipe.live.rules.pin == new.tolist()  # the pin applies once the title exists
    # Small content quotas, so every candidate fits in one response: this asserts what the
    # sources reach. (Ranked among ~all titles, a title with no plays and no id embedding
    # scores near the bottom under the 1-epoch test ranker.)
    sources = fresh.generator.sources
    for surface, names in (("search", ["content"]), ("post_play", ["cowatch", "content"])):
        pipe.generators[surface] = CandidateGenerator({n: replace(sources[n], quota=5)
                                                       for n in names})
    return pipe, original, twin


def user_without_dislikes(pipe: RequestPath, genres) -> int:
    """A known user whose derived dislikes do not filter out titles of ``genres``."""
    for idx in pipe.bundle.events["user_idx"].value_counts().index:
        if not pipe.store.get(int(idx)).disliked_genres & set(genres):
            return int(pipe.bundle.user_ids[idx])
    raise AssertionError("every user dislikes one of these genres")


def test_a_title_added_after_training_is_reachable_through_content(added):
    pipe, original, twin = added
    user = user_without_dislikes(pipe, original["genres"].iloc[0])
    query = twin["title"].iloc[0]
    res = pipe.recommend_sync(Request(user_id=user, surface="search", query=query, n=10))
    assert res.degraded == []  # the ranker scored it (item rows were added)
    assert res.items[0].item_id == NEW_ID  # pinned (serve.rerank.pin)
    hit = {r.item_id: r for r in res.items}[NEW_ID]
    assert hit.title == query and hit.reason == f"Matches your search '{query}'"
    assert hit.sources == ["content"]
    seed = int(original["item_id"].iloc[0])
    res = pipe.recommend_sync(Request(user_id=user, surface="post_play", item_id=seed, n=10))
    assert res.degraded == []
    hit = {r.item_id: r for r in res.items}[NEW_ID]
    assert hit.reason == f"Because you watched {original['title'].iloc[0]}"
    # the new title as the seed: co-watch has no row for it (nothing, no failure), content does
    res = pipe.similar_sync(NEW_ID, n=5)
    assert res.degraded == [] and len(res.items) == 5
    assert {r.reason for r in res.items} == {f"Because you watched {query}"}
    assert all(r.sources == ["content"] for r in res.items)
    live = pipe.live
    assert live.items["title"].iloc[-1] == query and live.catalog.n_items == len(
        live.item_ids) == len(live.item_tables.item_ids) == len(pipe.bundle.item_ids) + 1


def test_adding_titles_refuses_taken_ids_and_bad_rows_and_changes_nothing(added):
    pipe, original, twin = added
    n = pipe.catalog.n_items
    with pytest.raises(DuplicateItemError, match=f"item_id \\[{NEW_ID}\\] already in"):
        add_titles(pipe, twin)
    with pytest.raises(DuplicateItemError):
        add_titles(pipe, original)  # a trained title's id
    other = twin.assign(item_id=NEW_ID + 1)
    for rows, message in [
        (other.drop(columns="title"), "every new title needs title"),
        (other.assign(title="  "), "title must be a non-empty string"),
        (other.assign(item_id="x"), "item_id must be an integer"),
        (other.assign(colour="red"), "unknown catalog column"),
        (other.assign(maturity_rating="XXX"), "unknown maturity rating"),
        (other.iloc[[0, 0]], "given more than once"),
        (other.iloc[[]], "non-empty DataFrame"),
    ]:
        with pytest.raises(RecsysError, match=message):
            add_titles(pipe, rows)
    assert pipe.catalog.n_items == n and NEW_ID + 1 not in pipe.item_index



def test_credits_filled_after_the_fact_equal_the_eager_ones(pipeline, bundle):
    """The request path generates with Context(explain=False) and credits only the titles it
    shows; that must give the very same "because" as crediting every candidate up front."""
    from recsys.candidates.types import Context

    gen = pipeline.generators["home"]
    users = bundle.events["user_idx"].value_counts().index[:5]
    for idx in users:
        history = pipeline.store.get(int(idx)).history()
        eager = gen.generate(history, Context(explain=True)).candidates
        lazy = gen.generate(history, Context(explain=False)).candidates
        assert [c.item for c in lazy] == [c.item for c in eager]
        assert any(p.because >= 0 for c in eager for p in c.provenance)
        assert all(p.because < 0 for c in lazy for p in c.provenance
                   if p.source in ("cf", "content", "cowatch"))
        assert gen.credit(history, lazy) == eager


def test_the_cached_user_row_follows_the_users_state(bundle):
    """A live event replaces the user's state; the next request must rank from the new row."""
    store = InMemoryUserStore.from_events(bundle.events, bundle.items)
    pipe = RequestPath(bundle, store, OnnxRanker(bundle.ranker_dir / "model.onnx"))
    user, _ = known_user(bundle)
    idx = pipe.user_index[user]
    first = pipe.rows.get(idx, store.get(idx))
    assert pipe.rows.get(idx, store.get(idx)) is first  # unchanged state: kept
    unseen = next(i for i in range(len(bundle.item_ids))
                  if i not in set(store.get(idx).items.tolist()))
    store.append(idx, unseen, 5.0, int(bundle.events["timestamp"].max()) + 60)
    second = pipe.rows.get(idx, store.get(idx))
    assert second is not first
    assert unseen in second[0][0].tolist() and unseen not in first[0][0].tolist()


def test_user_rows_prefilled_at_load_equal_rows_built_one_user_at_a_time(bundle):
    """The replica builds every known user's ranker row in one pass at load; each must equal
    the row built from that user's events alone (what a cache miss computes)."""
    from recsys.serving.ranker_inputs import user_rows
    from recsys.serving.row_cache import events_of_user

    store = InMemoryUserStore.from_events(bundle.events, bundle.items)
    pipe = RequestPath(bundle, store, None)
    assert len(pipe.rows) == sum(store.get(i) is not None for i in range(len(bundle.user_ids)))
    counts = bundle.events["user_idx"].value_counts()
    for idx in [*counts.index[:3], *counts.index[-3:]]:
        state = store.get(int(idx))
        cached = pipe.rows.cached(int(idx))
        assert cached[0] is state
        alone = user_rows(bundle.builder, events_of_user(state), int(idx))
        for got, want in zip(cached[1], alone, strict=True):
            np.testing.assert_array_equal(got, want)
    off = RequestPath(bundle, store, None, replace(pipe.cfg, user_row_cache=0))
    assert not len(off.rows)


@pytest.fixture(scope="module")
def rated_bundle(tmp_path_factory):
    """A bundle whose sources were fitted on positives by rating (threshold 4): half the
    synthetic events are ratings, so the positives view differs from the whole history."""
    root = tmp_path_factory.mktemp("rated")
    cfg = compose_config([
        "debug=default", "candidates=default", "ranker=two_tower", "trainer.epochs=1",
        "ranker.export.check_on_triton=false", "eval.positive_threshold=4.0",
        "data.rating_share=0.5", "data.play_share=0.3", "data.click_share=0.15",
        f"data.root={root / 'data'}"])
    train_ranker(two_stage_job(cfg), root / "run")
    return load_bundle(*ArtefactStore(root / "run" / "artefacts").resolve("latest"))


def test_online_source_ranks_equal_the_training_lists(rated_bundle):
    """The ranker learned each source's rank and score from lists made offline (sources fitted
    on positives scored each user's positive events, seen titles left out); online, the merged
    provenance must carry the same ranks and scores. Before the generator gave those sources
    their positives view, co-watch and content ranks agreed for ~5% of titles
    (ml-latest-small)."""
    from recsys.candidates.types import Context
    from recsys.data.dataset import interaction_matrix
    from recsys.eval.protocol import positives
    from recsys.ranking.source_features import source_lists

    bundle = rated_bundle
    assert bundle.generator.positive_threshold == 4.0  # the ranker job's eval threshold
    store = InMemoryUserStore.from_events(bundle.events, bundle.items)
    gen = RequestPath(bundle, store, None).generators["home"]  # what serves
    n_users, n_items = len(bundle.user_ids), len(bundle.item_ids)
    ev = bundle.events
    pos = interaction_matrix(positives(ev, gen.positive_threshold), n_users, n_items)
    seen = interaction_matrix(ev, n_users, n_items)
    trained = {n: s for n, s in gen.sources.items() if n in bundle.source_stats.names}
    lists = source_lists({n: (s.source, s.quota) for n, s in trained.items()}, pos, seen,
                         next(iter(trained.values())).overfetch, progress=False)
    users = ev["user_idx"].value_counts().index[:25].to_numpy()
    checked = set()
    for u in users:
        cands = gen.generate(store.get(int(u)).history(), Context(explain=False))
        for name in trained:
            s = cands.sources.index(name)
            depth = int((lists.items[name][u] >= 0).sum())
            offline = lists.scores[name][u][:depth].astype(np.float64)  # by rank
            online = [(int(r), float(sc)) for r, sc, f in
                      zip(cands.ranks[s], cands.scores[s], cands.found[s], strict=True) if f]
            # the score at each rank: equal ranks, and robust to tie order (titles with the
            # same score may swap between batch scoring offline and one user online)
            assert all(r < depth for r, _ in online), name
            ok = [abs(offline[r] - sc) <= 1e-4 * max(1.0, abs(sc)) for r, sc in online]
            assert all(ok), (name, u, sum(ok), len(ok))
            if getattr(trained[name].source, "interactions", None) == "positives" and online:
                checked.add(name)
    assert {"cowatch", "content"} <= checked


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
