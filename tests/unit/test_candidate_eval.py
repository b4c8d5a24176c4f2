"""List metrics on hand-made candidate lists."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.eval.candidates import list_metrics, pad_lists


def test_pad_lists():
    assert pad_lists([np.array([3, 1]), np.array([2, 4, 5])], 3, pad=9).tolist() == [
        [3, 1, 9], [2, 4, 5]]


def test_list_metrics_counts_only_real_hits():
    truth = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0]], np.float32))
    lists = [np.array([1, 2]), np.array([4, 3, 2, 1, 0])]
    out = list_metrics(lists, truth, ks=[1, 5], ndcg_k=2)
    assert out["recall@1"] == pytest.approx((0.5 + 0.0) / 2)
    assert out["recall@5"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["mean_size"] == pytest.approx(3.5)
    assert out["coverage@5"] == pytest.approx(1.0)  # items 0..4 all appear
