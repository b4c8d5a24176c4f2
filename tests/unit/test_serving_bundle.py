"""A published serving bundle loads back into the same generator, features and catalog."""

import numpy as np
import pytest

from recsys import RecsysError
from recsys.candidates.als import ALS
from recsys.candidates.cowatch import CoWatch
from recsys.candidates.generator import CandidateGenerator, SourceSpec
from recsys.candidates.trending import Trending
from recsys.candidates.two_tower import TwoTowerRetrieval
from recsys.candidates.types import Context, UserHistory
from recsys.data import load_dataset
from recsys.eval.protocol import prepare
from recsys.ranking.features import FeatureBuilder, FeatureParams
from recsys.ranking.prepare import StackingParams, refit_for_serving, users_by_index
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.bundle import load_bundle, write_bundle
from recsys.serving.ranker_inputs import request_batch
from recsys.train.publish import bundle_sources


def sources():
    return {"cf": (ALS(factors=16, iterations=5), 40), "cowatch": (CoWatch(l2=50.0), 30),
            "trending": (Trending(), 20)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    dataset = load_dataset("synthetic", root=str(root / "syn"), n_users=200, n_items=150,
                           n_events=8000, seed=5)
    split, _ = prepare(dataset, "random", 0.2, 42, 4.0)
    builder = FeatureBuilder(FeatureParams(history_length=8, id_dim=8, attr_dim=4)).fit(
        split.train, dataset.items_by_index(), users_by_index(dataset), dataset.n_users,
        dataset.n_items)
    serving = refit_for_serving(dataset, split.train, sources, builder, StackingParams(),
                                progress=False)
    store = ArtefactStore(root / "artefacts")
    version_dir = store.new_version("v1")
    write_bundle(version_dir, serving.sources, {"cf": {"weight": 2.0}}, 2.0, serving.lists,
                 builder, serving.tables, dataset.items_by_index(), split.train,
                 dataset.user_index.raw_ids, dataset.item_index.raw_ids)
    store.publish(version_dir)
    return dataset, split, builder, serving, store


def test_bundle_round_trip_reproduces_candidates_and_ranker_inputs(trained):
    dataset, split, builder, serving, store = trained
    version, path = store.resolve("latest")
    bundle = load_bundle(version, path)
    assert bundle.version == "v1"
    assert bundle.generator.sources["cf"].weight == 2.0
    original = CandidateGenerator({n: SourceSpec(s, q, 2.0, 2.0 if n == "cf" else 1.0)
                                   for n, (s, q) in serving.sources.items()})
    for user in (0, 11, 150):
        history = split.train[split.train["user_idx"] == user]
        uh = UserHistory(user, history["item_idx"].to_numpy(np.int64))
        want = original.generate(uh, Context())
        got = bundle.generator.generate(uh, Context())
        assert got.items.tolist() == want.items.tolist()
        assert [c.provenance for c in got.candidates] == [c.provenance for c in want.candidates]
        events = bundle.events[bundle.events["user_idx"] == user]
        a = request_batch(bundle.builder, bundle.item_tables, bundle.source_stats, events, user,
                          got.candidates, "home", 1.0e9)
        b = request_batch(builder, serving.tables, serving.lists, history, user,
                          want.candidates, "home", 1.0e9)
        for name in ("ids", "weights", "user_dense", "item_dense", "pair_dense"):
            assert np.allclose(getattr(a, name).numpy(), getattr(b, name).numpy()), name
    assert bundle.items["title"].tolist() == dataset.items_by_index()["title"].tolist()
    assert (bundle.item_ids == dataset.item_index.raw_ids).all()


def test_a_directory_that_is_not_a_bundle_is_refused(tmp_path):
    with pytest.raises(RecsysError, match="is not a serving bundle"):
        load_bundle("x", tmp_path)


def test_an_untrained_slot_adds_candidates_and_no_ranker_feature(trained):
    """two_tower is written next to the trained sources but is not in source_stats.json: it is
    served last, and its provenance leaves the ranker's inputs exactly as without it."""
    dataset, split, builder, serving, store = trained
    rng = np.random.default_rng(0)
    towers = TwoTowerRetrieval(rng.normal(size=(dataset.n_users, 8)),
                               rng.normal(size=(dataset.n_items, 8)))
    path = store.new_version("v2")
    write_bundle(path, bundle_sources(serving.sources, towers, 25), {}, 2.0, serving.lists,
                 builder, serving.tables, dataset.items_by_index(), split.train,
                 dataset.user_index.raw_ids, dataset.item_index.raw_ids)
    bundle = load_bundle("v2", path)
    assert list(bundle.generator.sources) == ["cf", "cowatch", "trending", "two_tower"]
    assert bundle.generator.sources["two_tower"].quota == 25
    assert bundle.source_stats.names == ["cf", "cowatch", "trending"]
    user = 11
    events = bundle.events[bundle.events["user_idx"] == user]
    cands = bundle.generator.generate(
        UserHistory(user, events["item_idx"].to_numpy(np.int64)), Context())
    assert any(p.source == "two_tower" for c in cands.candidates for p in c.provenance)
    with_towers = request_batch(bundle.builder, bundle.item_tables, bundle.source_stats, events,
                                user, cands.candidates, "home", 1.0e9)
    stripped = [type(c)(c.item, [p for p in c.provenance if p.source != "two_tower"])
                for c in cands.candidates]
    without = request_batch(bundle.builder, bundle.item_tables, bundle.source_stats, events,
                            user, stripped, "home", 1.0e9)
    assert with_towers.pair_dense.shape[1] == 3 * 3
    assert np.array_equal(with_towers.pair_dense.numpy(), without.pair_dense.numpy())
    # a user the towers never saw: no vector, so nothing from two_tower, and no failure
    cold = bundle.generator.generate(UserHistory(None, np.empty(0, np.int64)), Context())
    assert cold.failed_sources == [] and len(cold) > 0
    assert not any(p.source == "two_tower" for c in cold.candidates for p in c.provenance)


def test_two_tower_slot_quota_zero_leaves_it_out_and_bad_values_are_refused(trained):
    _, _, _, serving, _ = trained
    towers = TwoTowerRetrieval(np.ones((2, 2)), np.ones((3, 2)))
    assert list(bundle_sources(serving.sources, towers, 0)) == ["cf", "cowatch", "trending"]
    assert list(bundle_sources(serving.sources, None, 100)) == ["cf", "cowatch", "trending"]
    with pytest.raises(RecsysError, match="two_tower_quota must be >= 0"):
        bundle_sources(serving.sources, towers, -1)
    with pytest.raises(RecsysError, match="clashes with the two-tower retrieval slot"):
        bundle_sources({"two_tower": (towers, 5)}, towers, 5)
