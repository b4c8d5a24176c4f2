"""The evaluation protocol: who is evaluated, what is excluded, what counts as positive."""

import numpy as np
import pytest

from recsys.candidates.popular import MostPopular
from recsys.data.schema import make_interactions
from recsys.eval.protocol import EvalData, evaluate, top_k


def _frame(rows):
    users, items, ratings = zip(*rows, strict=True)
    df = make_interactions(users, items, ratings)
    return df.assign(user_idx=df["user_id"], item_idx=df["item_id"])


def test_top_k_orders_best_first():
    scores = np.array([[0.1, 0.9, 0.5, 0.7]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2]]
    assert top_k(scores, 10).shape == (1, 4)


def test_eval_data_positives_and_exclusions():
    train = _frame([(0, 0, 5), (0, 1, 2), (1, 0, 4), (2, 2, 5)])
    test = _frame([(0, 2, 5), (0, 3, 1), (1, 1, 3), (2, 3, 4)])
    data = EvalData.build(train, test, n_users=3, n_items=4, positive_threshold=4.0)
    assert data.train.toarray().tolist() == [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]]
    assert data.seen[0].indices.tolist() == [0, 1]  # the 2-star title is still excluded
    assert data.users.tolist() == [0, 2]  # user 1 has no held-out positive


def test_evaluate_excludes_seen_items():
    # Item 0 is the most popular but every test user has seen it: it must never be recommended.
    train = _frame([(0, 0, 5), (1, 0, 5), (2, 0, 5), (2, 1, 5)])
    test = _frame([(0, 1, 5), (1, 2, 5)])
    data = EvalData.build(train, test, n_users=3, n_items=3, positive_threshold=4.0)
    result = evaluate(MostPopular().fit(data.train), data, ks=[1], progress=False)
    assert result["users"] == 2
    assert result["hitrate@1"] == pytest.approx(0.5)  # item 1 (next most popular) for both
