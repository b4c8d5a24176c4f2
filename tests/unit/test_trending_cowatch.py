"""Trending and co-watch sources on data with a known answer."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys import RecsysError
from recsys.candidates.cowatch import CoWatch
from recsys.candidates.trending import DAY_S, Trending
from recsys.candidates.types import Context, UserHistory
from recsys.data.schema import make_interactions
from tests.unit.oracle import block_data

NOW = 1_700_000_000


def _events(rows):
    users, items, ages_days = zip(*rows, strict=True)
    ts = [NOW - int(a * DAY_S) for a in ages_days]
    df = make_interactions(users, items, [4.0] * len(rows), ts)
    return df.assign(user_idx=df["user_id"], item_idx=df["item_id"])


# item 0: 5 events a year ago; item 1: 2 events today; item 2: 1 event 3 days ago
EVENTS = _events([(u, 0, 365) for u in range(5)] + [(5, 1, 0.1), (6, 1, 0.2), (7, 2, 3)])
TRAIN = sp.csr_matrix((8, 3))


def test_short_half_life_prefers_recent_titles():
    short = Trending(half_life_days=7).fit(TRAIN, events=EVENTS)
    assert short.now == NOW - int(0.1 * DAY_S)
    assert short.candidates(UserHistory(None, np.array([], np.int64)), Context(),
                            3).items.tolist() == [1, 2, 0]
    long = Trending(half_life_days=10_000).fit(TRAIN, events=EVENTS)
    assert long.candidates(UserHistory(None, np.array([1])), Context(), 3).items.tolist() == [0, 2]


def test_window_counts_and_explicit_now():
    model = Trending(half_life_days=7, now=NOW).fit(TRAIN, events=EVENTS)
    assert model.window_counts[1].tolist() == [0, 2, 0]
    assert model.window_counts[7].tolist() == [0, 2, 1]
    earlier = Trending(half_life_days=7, now=NOW - 200 * DAY_S).fit(TRAIN, events=EVENTS)
    assert earlier.candidates(UserHistory(None, np.array([], np.int64)), Context(),
                              3).items.tolist() == [0]  # later events have not happened yet


def test_trending_errors(tmp_path):
    with pytest.raises(RecsysError):
        Trending(half_life_days=0)
    with pytest.raises(RecsysError, match="events"):
        Trending().fit(TRAIN)
    model = Trending().fit(TRAIN, events=EVENTS)
    model.save(tmp_path)
    assert np.allclose(Trending.load(tmp_path).decayed, model.decayed)


@pytest.mark.parametrize("method", ["ease", "knn"])
def test_cowatch_recalls_every_held_out_item(method):
    train, test, user_block, item_block = block_data()
    model = CoWatch(method=method, l2=1.0, neighbours=20).fit(train)
    for u in range(train.shape[0]):
        hist = UserHistory(u, train[u].indices)
        res = model.candidates(hist, Context(), k=2)
        assert set(res.items) == set(test[u].indices), u
        assert (item_block[res.because] == user_block[u]).all()
        assert np.isin(res.because, hist.items).all()


@pytest.mark.parametrize("method", ["ease", "knn"])
def test_post_play_uses_the_seed_and_credits_it(method, tmp_path):
    train, _, _, item_block = block_data()
    model = CoWatch(method=method, l2=1.0).fit(train)
    res = model.candidates(UserHistory(None, np.array([0])), Context(seed_item=4), k=5)
    assert (item_block[res.items] == item_block[4]).all()
    assert (res.because == 4).all() and 0 not in res.items and 4 not in res.items
    model.save(tmp_path)
    again = CoWatch.load(tmp_path).candidates(UserHistory(None, np.array([0])),
                                              Context(seed_item=4), k=5)
    assert again.items.tolist() == res.items.tolist()


@pytest.mark.parametrize("method", ["ease", "knn"])
def test_post_play_on_a_title_added_after_fitting_is_empty_not_an_error(method):
    """Serving can add titles after training: W has no row for them, so no co-watches."""
    train, *_ = block_data()
    model = CoWatch(method=method, l2=1.0).fit(train)
    beyond = train.shape[1] + 3
    res = model.candidates(UserHistory(None, np.array([0])), Context(seed_item=beyond), k=5)
    assert len(res) == 0 and res.source == "cowatch"


def test_cowatch_empty_history_and_bad_method():
    train, *_ = block_data()
    model = CoWatch("knn").fit(train)
    assert len(model.candidates(UserHistory(None, np.array([], np.int64)), Context(), 5)) == 0
    with pytest.raises(RecsysError, match="co-watch method"):
        CoWatch("magic")


def test_interactions_knob_is_validated_and_saved(tmp_path):
    from recsys.candidates.als import ALS
    from recsys.candidates.base import training_matrix

    with pytest.raises(RecsysError, match="interactions must be one of"):
        CoWatch(interactions="liked")
    with pytest.raises(RecsysError, match="interactions must be one of"):
        ALS(interactions="everything")
    pos, seen = sp.identity(3, format="csr"), sp.csr_matrix(np.ones((3, 3)))
    assert training_matrix(CoWatch(), pos, seen) is pos
    assert training_matrix(CoWatch(interactions="all"), pos, seen) is seen
    assert training_matrix(object(), pos, seen) is pos  # models without the knob
    model = CoWatch(l2=1.0, interactions="all").fit(seen)
    model.save(tmp_path / "cw")
    assert CoWatch.load(tmp_path / "cw").interactions == "all"
    als = ALS(factors=2, iterations=1, interactions="all").fit(seen)
    als.save(tmp_path / "als")
    assert ALS.load(tmp_path / "als").interactions == "all"


@pytest.mark.parametrize("method", ["ease", "knn"])
def test_user_candidates_equal_the_sum_of_history_rows(method):
    rng = np.random.default_rng(3)
    train = sp.csr_matrix((rng.random((60, 40)) < 0.2).astype(np.float32))
    model = CoWatch(method=method, l2=5.0, neighbours=10, shrink=1.0).fit(train)
    w = model.weights.toarray() if sp.issparse(model.weights) else model.weights
    history = np.array([3, 7, 11, 20, 31])
    res = model.candidates(UserHistory(None, history), Context(), 10)
    want = w[history].sum(0)
    want[history] = -np.inf
    assert res.scores == pytest.approx(want[res.items], rel=1e-5)
    assert set(res.items) == set(np.argsort(-want, kind="stable")[:10]) or \
        np.isclose(np.sort(want)[-10], np.sort(want)[-11])  # ties at the cut may swap
    positive = res.scores > 0
    assert (res.because[positive] == history[np.argmax(w[np.ix_(history, res.items)], 0)]
            [positive]).all()


def test_dense_weights_are_row_major_after_fit_and_load(tmp_path):
    """Scoring reads rows of W; a Fortran-ordered W made each request ~100x slower."""
    train = sp.csr_matrix((np.random.default_rng(0).random((30, 20)) < 0.3).astype(np.float32))
    model = CoWatch(l2=5.0).fit(train)
    assert model.weights.flags["C_CONTIGUOUS"]
    model.save(tmp_path / "cw")
    np.save(tmp_path / "cw" / "weights.npy", np.asfortranarray(model.weights))  # an old file
    assert CoWatch.load(tmp_path / "cw").weights.flags["C_CONTIGUOUS"]
