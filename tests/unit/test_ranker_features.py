"""Ranker features on a tiny synthetic dataset: the slot layout, the history bag, leakage from
the held-out split, candidate-source features and the Parquet form of pair rows."""

import copy

import numpy as np
import pandas as pd
import pytest

from recsys import RecsysError
from recsys.candidates.als import ALS
from recsys.candidates.cowatch import CoWatch
from recsys.candidates.trending import Trending
from recsys.candidates.types import SURFACES, Provenance
from recsys.data import load_dataset
from recsys.data.splits import split_interactions
from recsys.eval.protocol import prepare
from recsys.ranking.activity import item_stats
from recsys.ranking.batches import gather
from recsys.ranking.features import FeatureParams
from recsys.ranking.layout import PAD, FeatureLayout
from recsys.ranking.pairs import NegativeMix, PairRows
from recsys.ranking.prepare import StackingParams, prepare_ranker_data, refit_for_serving
from recsys.ranking.source_features import SourceLists

PARAMS = FeatureParams(history_length=10, id_dim=16, attr_dim=8, user_id=True)
STACKING = StackingParams()


def make_sources():
    return {"cf": (ALS(factors=16, iterations=5), 50), "cowatch": (CoWatch(l2=50.0), 30),
            "trending": (Trending(), 20)}


def ranker_data(dataset, train):
    return prepare_ranker_data(dataset, train, make_sources, PARAMS, NegativeMix(), STACKING,
                               progress=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    dataset = load_dataset("synthetic", root=str(root), n_users=600, n_items=300,
                           n_events=30000, seed=1)
    split, _ = prepare(dataset, "random", 0.2, 42, 4.0)
    return dataset, split, ranker_data(dataset, split.train)


def fit_events(split):
    """The part of the training split stage 1 fits sources and features on."""
    return split_interactions(split.train, "random", STACKING.label_fraction,
                              STACKING.seed + 1).train


def pairs(users, items) -> set[tuple[int, int]]:
    return set(zip(np.asarray(users).tolist(), np.asarray(items).tolist(), strict=True))


# ---- layout -------------------------------------------------------------------------------
def test_layout_matches_the_rows_the_builder_makes(setup):
    _, _, rd = setup
    layout, tables = rd.layout, rd.tables
    user_w, item_w = tables.user_ids.shape[1], tables.item_ids.shape[1]
    assert user_w + item_w + 3 == layout.slots
    assert layout.side_slots("user") == user_w and layout.side_slots("item") == item_w
    assert layout.side_slots("context") == 3
    assert layout.offset("user_id") == 0 and layout.offset("item_id") == user_w
    assert layout.offset("surface") == user_w + item_w
    assert tables.user_weights.shape == tables.user_ids.shape
    assert tables.item_weights.shape == tables.item_ids.shape
    assert tables.user_dense.shape[1] == layout.user_dense
    assert tables.item_dense.shape[1] == layout.item_dense
    assert rd.train.pair_dense.shape[1] == layout.pair_dense == 9  # 3 sources x 3 numbers
    assert FeatureLayout.from_json(layout.to_json()) == layout

    for rows in (rd.train, rd.validation):
        batch = gather(tables, rows)
        ids = batch.ids.numpy()
        assert ids.shape == (len(rows), layout.slots)
        for feature, start, stop in layout.slices():
            sub = ids[:, start:stop]
            n = layout.table(feature.table).num_embeddings
            assert ((sub == PAD) | ((sub >= 0) & (sub < n))).all(), feature.name
            # synthetic titles carry no tags: that bag is empty, every other feature is used
            assert (sub != PAD).any() == (feature.name != "item_tags"), feature.name
        w = batch.weights.numpy()
        assert (w[ids == PAD] == 0).all()  # an empty slot never contributes
        assert np.array_equal(ids[:, layout.offset("user_id")], rows.users)
        assert np.array_equal(ids[:, layout.offset("item_id")], rows.items)
    assert layout.table("surface").num_embeddings == len(SURFACES)


def test_a_title_added_after_fitting_gets_the_catalogs_rows_without_an_id(setup):
    """Serving adds titles the model never saw: same genre / tag / year slots as a catalog row
    with that metadata, an empty id slot, and the dense row of a title nobody has watched."""
    dataset, _, rd = setup
    builder, tables = rd.builder, rd.tables
    catalog = dataset.items_by_index()
    copies = catalog.iloc[[3, 7]].assign(genres=[["Drama", "Not A Genre"], ["Comedy"]])
    ids, weights, dense = builder.item_rows(copies)
    assert ids.shape == weights.shape == (2, tables.item_ids.shape[1])
    assert (ids[:, 0] == PAD).all() and (weights[:, 0] == 0).all()
    genre_ids = builder.genres.ids(["Drama", "Comedy"])
    assert sorted(ids[0][(ids[0] != PAD)][:-1].tolist()) == [genre_ids[0]]  # unknown genre: PAD
    assert ids[1][(ids[1] != PAD)][:-1].tolist() == [genre_ids[1]]
    assert np.array_equal(ids[:, -1], tables.item_ids[[3, 7], -1])  # same release-year bucket
    again, _, _ = builder.item_rows(catalog.iloc[[3, 7]])
    assert np.array_equal(again[:, 1:], tables.item_ids[[3, 7], 1:])
    no_events = (np.zeros((1, dense.shape[1])) - builder.item_dense_mean) / builder.item_dense_std
    assert dense == pytest.approx(np.repeat(no_events, 2, 0).astype(np.float32))


# ---- the history bag ----------------------------------------------------------------------
def test_history_is_most_recent_first_and_normalised(setup):
    dataset, _, rd = setup
    builder = rd.builder
    h = PARAMS.history_length
    events = pd.DataFrame({
        "user_idx": [3, 3, 3, 3, 7] + [9] * 15,
        "item_idx": [10, 11, 12, 13, 20] + list(range(100, 115)),
        "timestamp": [100.0, 300.0, np.nan, 200.0, 5.0] + [1000.0 + t for t in range(15)],
        "rating": np.nan, "watch_fraction": 0.9,
    })
    ids, weights, dense = builder.user_rows_from_events(events, np.array([3, 7, 9, 5]))
    hist, hist_w = ids[:, 1:1 + h], weights[:, 1:1 + h]
    assert hist[0, :4].tolist() == [11, 13, 10, 12]  # unknown time counts as oldest
    assert (hist[0, 4:] == PAD).all() and (hist_w[0, 4:] == 0).all()
    assert hist[1, 0] == 20 and (hist[1, 1:] == PAD).all()
    assert hist[2].tolist() == list(range(114, 104, -1))  # only the latest h, newest first
    assert hist_w[:3].sum(1) == pytest.approx(np.ones(3), abs=1e-6)
    assert (np.diff(hist_w[2]) < 0).all()  # recency weighting decays
    assert (hist[3] == PAD).all() and (hist_w[3] == 0).all()  # no events: an empty bag
    assert ids[:, 0].tolist() == [3, 7, 9, 5]
    assert np.isfinite(dense).all()
    unknown, _, _ = builder.user_rows_from_events(events, np.array([3]), known=False)
    assert unknown[0, 0] == PAD and unknown[0, 1] == 11


def test_training_tables_history_comes_from_the_fit_events_only(setup):
    dataset, split, rd = setup
    fit = fit_events(split)
    h = PARAMS.history_length
    hist, hist_w = rd.tables.user_ids[:, 1:1 + h], rd.tables.user_weights[:, 1:1 + h]
    ts = fit["timestamp"].astype("float64")
    checked = 0
    for user, idx in fit.groupby("user_idx").indices.items():
        items = fit["item_idx"].to_numpy()[idx]
        row = hist[user][hist[user] != PAD]
        assert len(row) == min(h, len(idx))
        assert np.isin(row, items).all()
        assert hist_w[user].sum() == pytest.approx(1.0, abs=1e-5)
        newest = ts.to_numpy()[idx].max()
        assert row[0] in items[ts.to_numpy()[idx] == newest]
        checked += 1
    assert checked > 500
    no_events = np.setdiff1d(np.arange(dataset.n_users), fit["user_idx"].unique())
    assert (hist[no_events] == PAD).all()


# ---- leakage ------------------------------------------------------------------------------
def assert_same_data(a, b):
    assert a.layout == b.layout
    for name, value in a.tables.__dict__.items():
        assert np.array_equal(value, getattr(b.tables, name)), name
    for rows_a, rows_b in ((a.train, b.train), (a.validation, b.validation)):
        for name, value in rows_a.__dict__.items():
            assert np.array_equal(value, getattr(rows_b, name)), name
    assert np.array_equal(a.validation_starts, b.validation_starts)
    assert (a.validation_truth != b.validation_truth).nnz == 0


def test_no_held_out_interaction_reaches_a_feature(setup):
    """Features and rows are a function of the training split alone: changing or dropping the
    held-out events changes nothing, and no held-out-only pair shows up as history or label."""
    dataset, split, rd = setup
    rng = np.random.default_rng(0)
    test = split.test.copy()
    test["item_idx"] = rng.integers(0, dataset.n_items, len(test))
    test["item_id"] = dataset.item_index.to_raw(test["item_idx"].to_numpy())
    test["rating"] = 5.0
    test["watch_fraction"] = 1.0
    for interactions in (split.train, pd.concat([split.train, test])):
        other = copy.copy(dataset)
        other.interactions = interactions.reset_index(drop=True)
        assert_same_data(rd, ranker_data(other, split.train))

    held_out_only = pairs(split.test["user_idx"], split.test["item_idx"]) - pairs(
        split.train["user_idx"], split.train["item_idx"])
    assert len(held_out_only) > 1000
    h = PARAMS.history_length
    hist = rd.tables.user_ids[:, 1:1 + h]
    users = np.repeat(np.arange(len(hist)), h)
    history = pairs(users[hist.ravel() != PAD], hist.ravel()[hist.ravel() != PAD])
    assert not history & held_out_only
    for rows in (rd.train, rd.validation):
        positive = rows.labels > 0
        assert positive.any()
        assert not pairs(rows.users[positive], rows.items[positive]) & held_out_only
    truth = rd.validation_truth.tocoo()
    val_users = np.repeat(np.arange(len(rd.validation_starts) - 1),
                          np.diff(rd.validation_starts))
    truth_users = rd.validation.users[rd.validation_starts[:-1]][truth.row]
    assert len(val_users) == len(rd.validation)
    assert not pairs(truth_users, truth.col) & held_out_only


def test_popularity_features_count_training_events_only(setup):
    dataset, split, rd = setup
    builder = rd.builder
    fit = fit_events(split)
    expected = (item_stats(fit, dataset.n_items, PARAMS) - builder.item_dense_mean) \
        / builder.item_dense_std
    assert rd.tables.item_dense == pytest.approx(expected.astype(np.float32), abs=1e-5)
    # column 0 is log(1 + events per item): undo the standardisation and count directly
    log_events = rd.tables.item_dense[:, 0] * builder.item_dense_std[0] \
        + builder.item_dense_mean[0]
    counts = np.bincount(fit["item_idx"], minlength=dataset.n_items)
    assert log_events == pytest.approx(np.log1p(counts), abs=1e-4)
    all_counts = np.bincount(dataset.interactions["item_idx"], minlength=dataset.n_items)
    assert (np.abs(log_events - np.log1p(all_counts)) > 0.1).mean() > 0.9

    serving = refit_for_serving(dataset, split.train, make_sources, builder, STACKING,
                                progress=False)
    train_counts = np.bincount(split.train["item_idx"], minlength=dataset.n_items)
    served = serving.tables.item_dense[:, 0] * builder.item_dense_std[0] \
        + builder.item_dense_mean[0]
    assert served == pytest.approx(np.log1p(train_counts), abs=1e-4)
    assert serving.seen.sum() == len(pairs(split.train["user_idx"], split.train["item_idx"]))


# ---- candidate-source features ------------------------------------------------------------
@pytest.fixture(scope="module")
def lists(setup):
    dataset, split, rd = setup
    return refit_for_serving(dataset, split.train, make_sources, rd.builder, STACKING,
                             progress=False).lists


def test_pair_dense_of_top_ranked_and_absent_items(setup, lists):
    _, split, _ = setup
    assert lists.names == ["cf", "cowatch", "trending"]
    users = np.arange(50)
    for s, name in enumerate(lists.names):
        top = lists.items[name][users, 0]
        assert (top >= 0).all()
        feats = lists.pair_dense(users, top)
        assert (feats[:, 3 * s] == 1.0).all()  # present
        assert feats[:, 3 * s + 1] == pytest.approx(np.ones(len(users)))  # 1 / log2(0 + 2)
        z = (lists.scores[name][users, 0] - lists.score_mean[name]) / lists.score_std[name]
        assert feats[:, 3 * s + 2] == pytest.approx(np.clip(z, -10, 10), abs=1e-5)
    # an item the user already has is in no source's list: all zeros
    seen = split.train.groupby("user_idx")["item_idx"].first()
    feats = lists.pair_dense(seen.index.to_numpy(), seen.to_numpy())
    assert not feats.any()
    # a deeper rank gets the rank feature 1 / log2(rank + 2)
    feats = lists.pair_dense(users, lists.items["cf"][users, 3])
    assert feats[:, 1] == pytest.approx(np.full(len(users), 1 / np.log2(5)))


def test_pair_dense_from_provenance_matches_the_offline_features(lists):
    users, items, provenance = [], [], []
    rng = np.random.default_rng(0)
    for user in range(40):
        cands = np.r_[lists.merged(user), rng.integers(0, lists.n_items, 5)]
        for item in cands:
            provs = []
            for name in lists.names:
                row = lists.items[name][user][: lists.merge_depth[name]]
                hit = np.flatnonzero(row == item)
                if len(hit):
                    r = int(hit[0])
                    provs.append(Provenance(name, float(lists.scores[name][user, r]), r))
            users.append(user)
            items.append(int(item))
            provenance.append(provs)
    assert sum(len(p) > 1 for p in provenance) > 0  # some items come from several sources
    assert sum(len(p) == 0 for p in provenance) > 0  # and some from none
    offline = lists.pair_dense(np.array(users), np.array(items))
    online = lists.pair_dense_from_provenance(provenance)
    assert online == pytest.approx(offline, abs=1e-5)
    assert lists.pair_dense_from_provenance([[Provenance("unknown", 1.0, 0)]]).sum() == 0


def test_provenance_from_a_source_the_ranker_never_saw_is_ignored():
    """Serving adds two_tower after training: its provenance must neither fail nor shift the
    trained sources' columns, and alone it gives an all-zero row (absent everywhere)."""
    names = ["cf", "trending"]
    lists = SourceLists(names, {"cf": 10, "trending": 5}, {}, {}, 100,
                        {"cf": 0.5, "trending": 2.0}, {"cf": 0.25, "trending": 1.0},
                        {"cf": 20, "trending": 10})
    cf, trending = Provenance("cf", 1.0, 0), Provenance("trending", 3.0, 2)
    towers = Provenance("two_tower", 9.0, 0)
    known = lists.pair_dense_from_provenance([[cf, trending], [trending]])
    mixed = lists.pair_dense_from_provenance([[towers, cf, trending], [trending, towers]])
    assert mixed.shape == known.shape == (2, 6)
    assert np.array_equal(mixed, known)
    assert known[0].tolist() == pytest.approx([1.0, 1.0, 2.0, 1.0, 1 / np.log2(4), 1.0])
    assert not lists.pair_dense_from_provenance([[towers]]).any()


# ---- Parquet ------------------------------------------------------------------------------
def test_pair_rows_parquet_round_trip(setup, tmp_path):
    _, _, rd = setup
    path = rd.train.write(tmp_path / "nested" / "train.parquet")
    back = PairRows.read(path)
    assert len(back) == len(rd.train) > 1000
    for name, value in rd.train.__dict__.items():
        got = getattr(back, name)
        assert got.dtype == value.dtype and got.shape == value.shape, name
        assert np.array_equal(got, value), name
    idx = np.array([5, 0, 17])
    part = back.take(idx)
    assert np.array_equal(part.items, rd.train.items[idx])
    assert np.array_equal(part.context, rd.train.context[idx])


def test_k_fold_stacking_stacks_fold_tables_and_keeps_validation_out(setup):
    dataset, split, one = setup
    two = prepare_ranker_data(dataset, split.train, make_sources, PARAMS, NegativeMix(),
                              StackingParams(folds=2), progress=False)
    n_users, n_items = dataset.n_users, dataset.n_items
    assert two.tables.user_ids.shape[0] == 2 * n_users
    assert two.tables.item_ids.shape[0] == 2 * n_items
    assert two.train.users.max() >= n_users  # fold 1 rows point into fold 1's tables
    assert two.train.users.max() < 2 * n_users and two.train.items.max() < 2 * n_items
    # every training event labels exactly one fold: more rows than one 20% label slice
    assert len(two.train) > len(one.train)
    val_users = np.unique(two.validation.users)
    assert not np.isin(two.train.users % n_users, val_users).any()
    batch = gather(two.tables, two.train, np.arange(min(64, len(two.train))))
    assert batch.ids.shape[1] == two.layout.slots


# ---- every merged candidate as a training row ---------------------------------------------
def test_hard_minus_one_trains_on_exactly_the_merged_candidates(setup):
    dataset, split, _ = setup
    stacking = STACKING
    rd = prepare_ranker_data(dataset, split.train, make_sources, PARAMS,
                             NegativeMix(hard=-1, random=0, explicit=False), stacking,
                             progress=False)
    fit = fit_events(split)
    lists = refit_for_serving(dataset, fit, make_sources, rd.builder, stacking,
                              progress=False).lists
    users = np.unique(rd.train.users)
    assert len(users) > 100
    for user in users[:60]:
        mine = rd.train.users == user
        merged = lists.merged(int(user))
        # every row is a merged candidate and every merged candidate is a row, once
        assert sorted(rd.train.items[mine].tolist()) == sorted(merged.tolist())
        assert rd.train.labels[mine].sum() >= 1  # users without a found positive are skipped
    with pytest.raises(RecsysError, match="validation_users=0.0 leaves no validation user"):
        prepare_ranker_data(dataset, split.train, make_sources, PARAMS, NegativeMix(),
                            StackingParams(validation_users=0.0), progress=False)


def test_sources_fitted_on_every_event_see_disliked_titles(setup):
    dataset, split, _ = setup

    def sources():
        return {"pos": (CoWatch(l2=50.0), 30), "all": (CoWatch(l2=50.0, interactions="all"), 30)}

    serving = refit_for_serving(dataset, split.train, sources,
                                ranker_data(dataset, split.train).builder, STACKING,
                                progress=False)
    pos_w = serving.sources["pos"][0].weights
    all_w = serving.sources["all"][0].weights
    assert not np.allclose(pos_w, all_w)
    # the "all" list of a user is the top of seen @ W_all: scored from every event
    user = int(np.argmax(np.diff(serving.seen.indptr)))
    scores = np.asarray(serving.seen[user] @ all_w).ravel()
    scores[serving.seen[user].indices] = -np.inf
    assert serving.lists.items["all"][user, 0] == int(np.argmax(scores))


def test_without_user_id_the_layout_and_rows_drop_the_id_slot(setup):
    from dataclasses import replace

    import torch

    from recsys.ranking.model import ModelParams, TwoTowerRanker

    dataset, split, with_id = setup
    rd = prepare_ranker_data(dataset, split.train, make_sources, replace(PARAMS, user_id=False),
                             NegativeMix(), STACKING, progress=False)
    names = [f.name for f in rd.layout.features]
    assert "user_id" not in names and "user" not in [t.name for t in rd.layout.tables]
    assert rd.tables.user_ids.shape[1] == with_id.tables.user_ids.shape[1] - 1
    # the same history bag, one slot to the left
    assert (rd.tables.user_ids == with_id.tables.user_ids[:, 1:]).all()
    batch = gather(rd.tables, rd.train, np.arange(64))
    assert batch.ids.shape[1] == rd.layout.slots
    for arch in ("gather", "torchrec"):
        logit, dot = TwoTowerRanker(rd.layout, ModelParams(sparse_arch=arch))(**batch.inputs())
        assert logit.shape == (64,) and torch.isfinite(logit).all()
