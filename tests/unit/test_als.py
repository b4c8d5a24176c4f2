"""Implicit ALS on block-diagonal oracle data, where the right answer is known."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys import RecsysError
from recsys.candidates.als import ALS, BACKENDS
from recsys.candidates.types import NO_ITEM, Context, UserHistory
from recsys.eval.metrics import ranking_metrics
from recsys.eval.protocol import recommend
from tests.unit.oracle import block_data

SMALL = dict(factors=8, regularization=5.0, alpha=10.0, iterations=15, seed=0, cpu_threads=1,
             device="cpu")


@pytest.fixture(scope="module")
def oracle():
    train, test, user_block, item_block = block_data()
    fitted = {b: ALS(backend=b, **SMALL).fit(train) for b in BACKENDS}
    return train, test, user_block, item_block, fitted


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_held_out_item_is_recalled(oracle, backend):
    train, test, *_, fitted = oracle
    users = np.arange(train.shape[0])
    top = recommend(fitted[backend], users, train, train, k=2)  # (U, 2): 2 held out per user
    hits = np.asarray(test[np.repeat(users, 2), top.ravel()]).reshape(top.shape)
    assert hits.all()


def test_backends_agree(oracle):
    train, test, *_, fitted = oracle
    users = np.arange(train.shape[0])
    popularity = np.asarray(train.sum(axis=0)).ravel() / train.shape[0]
    quality = {}
    for backend, model in fitted.items():
        top = recommend(model, users, train, train, k=5)
        quality[backend] = ranking_metrics(top, test, [5], popularity)["ndcg@5"].mean()
    assert quality["torch"] == pytest.approx(quality["implicit"], abs=1e-6)
    assert quality["torch"] == pytest.approx(1.0)
    # Different random starts, one model: the score vectors point the same way.
    a, b = (fitted[k].score(users, train) for k in ("torch", "implicit"))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.9
    assert fitted["torch"].item_factors.dtype == np.float32
    assert fitted["torch"].item_factors.shape == (train.shape[1], SMALL["factors"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_new_user_is_folded_into_their_block(oracle, backend):
    *_, item_block, fitted = oracle
    model = fitted[backend]
    history = np.flatnonzero(item_block == 1)[:3]
    res = model.candidates(UserHistory(None, history), Context(), k=7)
    assert len(res) == 7 and (item_block[res.items] == 1).all()
    assert not np.isin(res.items, history).any()
    assert np.isin(res.because, history).all() and (item_block[res.because] == 1).all()
    because, contribution = model.explain(UserHistory(None, history), res.items)
    assert (because == res.because).all()
    assert contribution.shape == (7, 3)
    assert contribution.sum(axis=1) == pytest.approx(res.scores, rel=1e-4, abs=1e-5)


def test_known_user_uses_learned_factors_and_explains_its_score(oracle):
    train, test, user_block, item_block, fitted = oracle
    model = fitted["torch"]
    user = 5
    res = model.candidates(UserHistory(user, train[user].indices), Context(), k=2)
    assert set(res.items) == set(test[user].indices)
    assert res.scores == pytest.approx(model.score(np.array([user]), train)[0][res.items])
    assert (item_block[res.because] == user_block[user]).all()
    _, contribution = model.explain(UserHistory(user, train[user].indices), res.items)
    # The learned factor is the same least-squares solve, up to the CG solver's tolerance.
    assert contribution.sum(axis=1) == pytest.approx(res.scores, rel=2e-2)


def test_contributions_match_the_dense_closed_form(oracle):
    *_, fitted = oracle
    model = fitted["implicit"]
    history, items = np.array([0, 4, 9]), np.array([1, 8, 12])
    y = model.item_factors.astype(np.float64)
    confidence = np.ones(len(y))
    confidence[history] += model.alpha
    w = np.linalg.inv(y.T @ (confidence[:, None] * y) + model.regularization * np.eye(y.shape[1]))
    expected = (y[items] @ w @ y[history].T) * confidence[history]  # Hu et al. section 5
    _, contribution = model.explain(UserHistory(None, history), items)
    assert contribution == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_because_is_no_item_without_a_positive_contribution(oracle):
    *_, fitted = oracle
    because, contribution = fitted["torch"].explain(UserHistory(None, np.array([], np.int64)),
                                                    np.array([1, 2]))
    assert (because == NO_ITEM).all() and contribution.shape == (2, 0)
    assert len(fitted["torch"].candidates(UserHistory(None, np.array([], np.int64)),
                                          Context(), 5)) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_load_round_trip(oracle, backend, tmp_path):
    train, *_, fitted = oracle
    fitted[backend].save(tmp_path)
    loaded = ALS.load(tmp_path, device="cpu")
    assert loaded.backend == backend and loaded.regularization == SMALL["regularization"]
    users = np.arange(6)
    assert np.allclose(loaded.score(users, train), fitted[backend].score(users, train))
    user = UserHistory(None, np.array([2, 6]))
    a, b = loaded.candidates(user, Context(), 5), fitted[backend].candidates(user, Context(), 5)
    assert (a.items == b.items).all() and (a.because == b.because).all()


def test_faiss_index_gives_the_exact_answer(oracle):
    from recsys.index.faiss_index import VectorIndex

    *_, fitted = oracle
    model = fitted["torch"]
    user = UserHistory(None, np.array([3, 7, 11]))
    exact = model.candidates(user, Context(), 6)
    copy = ALS(**SMALL)  # same factors, retrieval through a FAISS index
    copy.user_factors, copy.item_factors = model.user_factors, model.item_factors
    copy.use_index(VectorIndex("Flat", metric="ip").build(model.item_factors))
    approx = copy.candidates(user, Context(), 6)
    assert (approx.items == exact.items).all()
    assert approx.scores == pytest.approx(exact.scores, rel=1e-4)


def test_torch_threads_are_restored_after_a_pinned_fit(oracle):
    train, *_ = oracle
    before = torch.get_num_threads()
    ALS(**{**SMALL, "backend": "torch", "cpu_threads": 1, "iterations": 1}).fit(train)
    assert torch.get_num_threads() == before


def test_bad_inputs_fail_clearly(oracle):
    train, *_, fitted = oracle
    model = fitted["torch"]
    with pytest.raises(RecsysError, match="backend"):
        ALS(backend="spark")
    with pytest.raises(RecsysError, match="factors"):
        ALS(factors=0)
    with pytest.raises(RecsysError, match="regularization"):
        ALS(regularization=0.0)
    with pytest.raises(RecsysError, match="sparse"):
        ALS(**SMALL).fit(train.toarray())
    with pytest.raises(RecsysError, match="non-negative"):
        ALS(**SMALL).fit(sp.csr_matrix(-train.toarray()))
    with pytest.raises(RecsysError, match="empty"):
        ALS(**SMALL).fit(sp.csr_matrix((3, 4)))
    with pytest.raises(RuntimeError, match="before fit"):
        ALS().candidates(UserHistory(None, np.array([1])), Context(), 3)
    with pytest.raises(RecsysError, match="history item"):
        model.candidates(UserHistory(None, np.array([10_000])), Context(), 3)
    with pytest.raises(RecsysError, match="not a trained user"):
        model.candidates(UserHistory(10_000, np.array([1])), Context(), 3)
    with pytest.raises(RecsysError, match="k must be"):
        model.candidates(UserHistory(0, np.array([1])), Context(), 0)


@pytest.mark.slow
def test_ml1m_benchmark_ndcg(data_root):
    """The defaults on the reference protocol (EASE: 0.3765; tuned ALS: 0.378)."""
    from recsys.data import load_dataset
    from recsys.eval.protocol import evaluate, prepare

    _, data = prepare(load_dataset("ml-1m", str(data_root)), "random", 0.2, 42, 4.0)
    metrics = evaluate(ALS(device="cpu").fit(data.train), data, ks=[10], progress=False)
    assert metrics["ndcg@10"] >= 0.36
