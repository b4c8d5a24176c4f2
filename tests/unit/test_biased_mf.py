"""Biased MF on a planted low-rank + bias rating matrix, and the ml-100k fold loader."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys import RecsysError
from recsys.candidates.biased_mf import BiasedMF
from recsys.eval.metrics import rmse

FAST = dict(factors=4, reg=0.02, bias_reg=0.01, lr=0.03, epochs=30, batch_size=256, seed=0,
            device="cpu")


def planted(n_users=150, n_items=100, rank=3, observed=0.4, noise=0.05, seed=0):
    """Ratings mu + b_u + b_i + p_u . q_i (+ noise); returns train and test triples."""
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 0.6, (n_users, rank))
    q = rng.normal(0, 0.6, (n_items, rank))
    full = 3.5 + rng.normal(0, 0.4, (n_users, 1)) + rng.normal(0, 0.4, (1, n_items)) + p @ q.T
    full += rng.normal(0, noise, full.shape)
    users, items = np.nonzero(rng.random(full.shape) < observed)
    ratings = full[users, items].astype(np.float32)
    test = rng.random(len(users)) < 0.2
    train = (users[~test], items[~test], ratings[~test])
    return train, (users[test], items[test], ratings[test]), n_users, n_items


@pytest.fixture(scope="module")
def fitted():
    (u, i, r), test, n_users, n_items = planted()
    model = BiasedMF(**FAST, clip=False).fit_ratings(u, i, r, n_users, n_items)
    return model, test, (u, i, r, n_users, n_items)


def test_recovers_the_planted_matrix_and_beats_biases_only(fitted):
    model, (tu, ti, tr), (u, i, r, n_users, n_items) = fitted
    error = rmse(model.predict(tu, ti), tr)
    biases = BiasedMF(**{**FAST, "factors": 0}, clip=False).fit_ratings(u, i, r, n_users, n_items)
    baseline = rmse(biases.predict(tu, ti), tr)
    assert error < 0.2  # planted signal std ~1.0, noise 0.05
    assert error < 0.5 * baseline
    assert model.mu == pytest.approx(float(r.mean()))


def test_predict_shapes_clipping_and_untrained_rows():
    model = BiasedMF(**FAST).fit_ratings(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]),
                                         np.array([1.0, 5.0, 5.0, 1.0]), 3, 3)
    pred = model.predict(np.array([0, 2, 2]), np.array([0, 0, 2]))
    assert pred.shape == (3,) and pred.dtype == np.float32
    assert ((pred >= 1.0) & (pred <= 5.0)).all()  # clipped to the training range
    assert pred[2] == pytest.approx(model.mu)  # user 2 and item 2 never rated
    assert not model.params["p"][2].any() and not model.params["q"][2].any()
    scores = model.score(np.array([0, 1]), sp.csr_matrix((3, 3)))
    assert scores.shape == (2, 3)
    assert scores[0, :2] == pytest.approx(model.predict(np.array([0, 0]), np.array([0, 1])))


def test_fit_from_an_events_frame_like_a_scorer(fitted):
    _, _, (u, i, r, n_users, n_items) = fitted
    events = pd.DataFrame({"user_idx": u, "item_idx": i, "rating": r})
    events.loc[0, "rating"] = np.nan  # a play without a rating is skipped
    train = sp.csr_matrix((np.ones(len(u)), (u, i)), shape=(n_users, n_items))
    model = BiasedMF(**{**FAST, "epochs": 2}).fit(train, events=events)
    assert model.params["p"].shape == (n_users, FAST["factors"])
    assert model.mu == pytest.approx(float(r[1:].mean()))


def test_save_load_round_trip(fitted, tmp_path):
    model, (tu, ti, _), _ = fitted
    model.save(tmp_path)
    loaded = BiasedMF.load(tmp_path, device="cpu")
    assert loaded.factors == model.factors and loaded.clip is False
    assert np.allclose(loaded.predict(tu, ti), model.predict(tu, ti))


def test_bad_inputs_fail_clearly(fitted):
    model, _, _ = fitted
    with pytest.raises(RecsysError, match="factors"):
        BiasedMF(factors=-1)
    with pytest.raises(RecsysError, match="lr"):
        BiasedMF(lr=0.0)
    with pytest.raises(RecsysError, match="parallel"):
        BiasedMF(**FAST).fit_ratings(np.array([0, 1]), np.array([0]), np.array([3.0]), 2, 2)
    with pytest.raises(RecsysError, match="finite"):
        BiasedMF(**FAST).fit_ratings(np.array([0]), np.array([0]), np.array([np.nan]), 1, 1)
    with pytest.raises(RecsysError, match="item indices"):
        BiasedMF(**FAST).fit_ratings(np.array([0]), np.array([5]), np.array([3.0]), 1, 2)
    with pytest.raises(RecsysError, match="user indices"):
        model.predict(np.array([10_000]), np.array([0]))
    with pytest.raises(RecsysError, match="needs a ratings matrix"):
        BiasedMF().fit()
    with pytest.raises(RuntimeError, match="before fit"):
        BiasedMF().predict(np.array([0]), np.array([0]))


def test_official_ml100k_folds_map_to_dataset_indices(data_root):
    from recsys.data.ml100k_folds import official_folds, read_fold

    dataset, (fold,) = official_folds(data_root, [1])
    assert len(fold.train) == 80_000 and len(fold.test) == 20_000
    raw = pd.read_csv(data_root / "ml-100k" / "u1.base", sep="\t", nrows=3, header=None)
    first = fold.train.iloc[0]
    assert dataset.user_index.to_raw([first["user_idx"]])[0] == raw.iloc[0, 0]
    assert dataset.item_index.to_raw([first["item_idx"]])[0] == raw.iloc[0, 1]
    assert fold.test["user_idx"].max() < dataset.n_users
    with pytest.raises(RecsysError, match="unknown ml-100k fold"):
        read_fold(dataset, data_root, 9)
