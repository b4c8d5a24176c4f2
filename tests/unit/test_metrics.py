"""Metrics against hand-computed values."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.eval import metrics as M


def _truth(rows: list[list[int]], n_items: int = 10) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


TOPK = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
TRUTH = _truth([[1, 3, 5], [4]])  # user 0: hits at ranks 2 and 4 of 3 positives; user 1: rank 1


def test_hit_matrix():
    assert M.hit_matrix(TOPK, TRUTH).tolist() == [[False, True, False, True],
                                                  [True, False, False, False]]


def test_recall_variants_use_their_denominators():
    hits, n_pos = M.hit_matrix(TOPK, TRUTH), np.array([3, 1])
    assert M.recall_at_k(hits, n_pos, 2) == pytest.approx([1 / 3, 1.0])
    assert M.recall_at_k(hits, n_pos, 4) == pytest.approx([2 / 3, 1.0])
    assert M.recall_capped_at_k(hits, n_pos, 2) == pytest.approx([1 / 2, 1.0])
    assert M.recall_capped_at_k(hits, n_pos, 4) == pytest.approx([2 / 3, 1.0])


def test_ndcg_hand_computed():
    hits, n_pos = M.hit_matrix(TOPK, TRUTH), np.array([3, 1])
    # user 0 @2: (1/log2 3) / (1 + 1/log2 3); @4: (1/log2 3 + 1/log2 5) / (1 + 1/log2 3 + 1/2)
    assert M.ndcg_at_k(hits, n_pos, 2) == pytest.approx([0.386853, 1.0], abs=1e-6)
    assert M.ndcg_at_k(hits, n_pos, 4) == pytest.approx([0.498189, 1.0], abs=1e-6)


def test_hitrate_and_mrr():
    hits = M.hit_matrix(TOPK, TRUTH)
    assert M.hitrate_at_k(hits, 1).tolist() == [0.0, 1.0]
    assert M.hitrate_at_k(hits, 2).tolist() == [1.0, 1.0]
    assert M.mrr_at_k(hits, 1).tolist() == [0.0, 1.0]
    assert M.mrr_at_k(hits, 4).tolist() == [0.5, 1.0]


def test_coverage_and_novelty():
    assert M.coverage_at_k(TOPK, 10, 2) == pytest.approx(0.4)  # {0, 1, 4, 5}
    assert M.coverage_at_k(TOPK, 10, 4) == pytest.approx(0.8)
    popularity = np.array([0.5, 0.25, 0, 0, 0.125, 1.0, 0, 0, 0, 0])
    # items 0,1,4,5 -> -log2 p = 1, 2, 3, 0 -> mean 1.5
    assert M.novelty_at_k(TOPK, popularity, 2) == pytest.approx(1.5)
    # an item nobody saw counts as seen by one user in ten: -log2(0.1)
    assert M.novelty_at_k(np.array([[2]]), popularity, 1) == pytest.approx(np.log2(10))


def test_rmse():
    assert M.rmse([3.0, 4.0], [1.0, 4.0]) == pytest.approx(np.sqrt(2.0))
    with pytest.raises(ValueError):
        M.rmse([], [])


def test_ranking_metrics_rejects_users_without_positives():
    with pytest.raises(ValueError):
        M.ranking_metrics(TOPK, _truth([[1], []]), [2], np.zeros(10))


def test_ranking_metrics_keys():
    out = M.ranking_metrics(TOPK, TRUTH, [2, 4], np.full(10, 0.5))
    assert {"ndcg@2", "recall@4", "recall_capped@2", "hitrate@4", "mrr@2", "coverage@4",
            "novelty@2"} <= set(out)
    assert np.mean(out["ndcg@4"]) == pytest.approx((0.498189 + 1.0) / 2, abs=1e-6)
