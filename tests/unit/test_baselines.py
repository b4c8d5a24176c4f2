"""EASE and MostPopular on oracle data whose right answer is known."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.candidates.ease import EASE
from recsys.candidates.popular import MostPopular
from recsys.eval.protocol import recommend, top_k


def _block_diagonal(n_users=40, n_items=20, blocks=2, drop=0.2, seed=0):
    """Users of block b interact only with items of block b, minus a random share."""
    rng = np.random.default_rng(seed)
    user_block = np.arange(n_users) % blocks
    item_block = np.arange(n_items) % blocks
    dense = (user_block[:, None] == item_block[None, :]) & (rng.random((n_users, n_items)) > drop)
    return sp.csr_matrix(dense.astype(np.float32)), user_block, item_block


def test_ease_recommends_inside_the_users_block():
    train, user_block, item_block = _block_diagonal()
    model = EASE(l2=1.0, device="cpu").fit(train)
    users = np.arange(train.shape[0])
    top = recommend(model, users, train, train, k=1)[:, 0]
    has_unseen = (np.asarray(train.sum(axis=1)).ravel() < 10)
    assert (item_block[top[has_unseen]] == user_block[has_unseen]).all()


def test_ease_matches_numpy_closed_form():
    train, *_ = _block_diagonal(seed=3)
    model = EASE(l2=10.0, device="cpu").fit(train)
    x = train.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 10.0 * np.eye(x.shape[1]))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    assert model.weights.numpy() == pytest.approx(b, abs=1e-4)
    assert np.allclose(np.diag(model.weights.numpy()), 0.0)


def test_most_popular_orders_by_count_and_excludes_seen():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], np.float32))
    model = MostPopular().fit(train)
    assert top_k(model.score(np.array([0]), train), 4)[0].tolist() == [0, 1, 2, 3]
    assert recommend(model, np.array([0]), train, train, k=2)[0].tolist() == [2, 3]


@pytest.mark.parametrize("cls", [EASE, MostPopular])
def test_save_load_round_trip(cls, tmp_path):
    train, *_ = _block_diagonal()
    model = cls().fit(train)
    model.save(tmp_path)
    loaded = cls.load(tmp_path)
    users = np.arange(5)
    assert np.allclose(model.score(users, train), loaded.score(users, train))


def test_score_before_fit_fails_clearly():
    with pytest.raises(RuntimeError, match="before fit"):
        EASE().score(np.array([0]), sp.csr_matrix((1, 3)))
