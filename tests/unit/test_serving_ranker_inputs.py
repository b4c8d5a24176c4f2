"""Online ranker inputs equal the offline ones for a known user, and cold users get no id."""

import numpy as np
import pytest

from recsys.candidates.als import ALS
from recsys.candidates.cowatch import CoWatch
from recsys.candidates.trending import Trending
from recsys.candidates.types import Candidate, Provenance
from recsys.data import load_dataset
from recsys.eval.protocol import prepare
from recsys.ranking.batches import INPUT_NAMES, gather
from recsys.ranking.features import FeatureBuilder, FeatureParams
from recsys.ranking.layout import PAD
from recsys.ranking.pairs import candidate_rows
from recsys.ranking.prepare import (
    StackingParams,
    last_timestamps,
    refit_for_serving,
    users_by_index,
)
from recsys.serving.ranker_inputs import request_batch


def sources():
    return {"cf": (ALS(factors=16, iterations=5), 50), "cowatch": (CoWatch(l2=50.0), 30),
            "trending": (Trending(), 20)}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    dataset = load_dataset("synthetic", root=str(tmp_path_factory.mktemp("syn")), n_users=300,
                           n_items=200, n_events=15000, seed=3)
    split, _ = prepare(dataset, "random", 0.2, 42, 4.0)
    builder = FeatureBuilder(FeatureParams(history_length=10, id_dim=8, attr_dim=4,
                                           user_id=True)).fit(
        split.train, dataset.items_by_index(), users_by_index(dataset), dataset.n_users,
        dataset.n_items)
    return split, builder, refit_for_serving(dataset, split.train, sources, builder,
                                             StackingParams(), progress=False)


def provenance_of(lists, user: int, item: int) -> list[Provenance]:
    out = []
    for name in lists.names:
        hit = np.flatnonzero(lists.items[name][user][: lists.merge_depth[name]] == item)
        if len(hit):
            out.append(Provenance(name, float(lists.scores[name][user, hit[0]]), int(hit[0])))
    return out


@pytest.mark.parametrize("user", [0, 17, 123])
def test_online_inputs_equal_offline_candidate_rows(served, user):
    split, builder, serving = served
    lists = serving.lists
    offline_rows, _ = candidate_rows(np.array([user]), lists, builder, None,
                                     last_timestamps(split.train))
    offline = gather(serving.tables, offline_rows)
    cands = [Candidate(int(i), provenance_of(lists, user, int(i))) for i in offline_rows.items]
    history = split.train[split.train["user_idx"] == user]
    online = request_batch(builder, serving.tables, lists, history, user, cands, "home",
                           serving.last_ts[user])
    for name in INPUT_NAMES:
        assert np.allclose(getattr(online, name).numpy(), getattr(offline, name).numpy(),
                           atol=1e-6), name


def test_cold_user_has_no_id_but_a_history_bag(served):
    split, builder, serving = served
    history = split.train[split.train["user_idx"] == 5].head(3)
    cands = [Candidate(1, []), Candidate(2, [Provenance("trending", 3.0, 0)])]
    batch = request_batch(builder, serving.tables, serving.lists, history, None, cands,
                          "search", None)
    ids = batch.ids.numpy()
    assert ids.shape[0] == 2 and (ids[:, 0] == PAD).all()  # the user-id slot is empty
    assert set(ids[0, 1:4]) == set(history["item_idx"])  # ...the history is not
    assert batch.pair_dense.numpy()[0].sum() == 0 and batch.pair_dense.numpy()[1].any()
