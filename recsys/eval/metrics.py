"""Vectorised top-N metrics over a whole batch of users at once.

Conventions (fixed here so every later number is comparable):

* ``topk``: (U, K) recommended item indices per user, best first.
* ``truth``: (U, n_items) CSR of held-out positives, rows aligned with ``topk``; every row has at
  least one positive (the protocol drops users without one).
* ``recall@k`` divides by *all* held-out positives of the user; ``recall_capped@k`` divides by
  ``min(k, n_pos)`` (the variant some papers call recall and others precision-normalised).
* ``ndcg@k`` uses binary gains and the ideal DCG of ``min(k, n_pos)`` hits.
* ``mrr@k`` is the reciprocal rank of the first hit within the top k, 0 if none.
* ``coverage@k``: share of the catalog that appears in at least one user's top k.
* ``novelty@k``: mean self-information ``-log2(p_i)`` of recommended items, ``p_i`` = share of
  training users who interacted with item i (higher = less popularity bias).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def hit_matrix(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """(U, K) bool: was the item at each rank a held-out positive of that user?"""
    n_users, k = topk.shape
    rows = np.repeat(np.arange(n_users), k)
    return np.asarray(truth[rows, topk.ravel()]).reshape(n_users, k) > 0


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))  # (k,) 1/log2(rank + 1), rank from 1


def recall_at_k(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    return hits[:, :k].sum(axis=1) / n_pos


def recall_capped_at_k(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    return hits[:, :k].sum(axis=1) / np.minimum(n_pos, k)


def ndcg_at_k(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    disc = _discounts(k)
    dcg = (hits[:, :k] * disc).sum(axis=1)
    ideal = np.cumsum(disc)[np.minimum(n_pos, k) - 1]
    return dcg / ideal


def hitrate_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    return hits[:, :k].any(axis=1).astype(np.float64)


def mrr_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    top = hits[:, :k]
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)


def coverage_at_k(topk: np.ndarray, n_items: int, k: int) -> float:
    return len(np.unique(topk[:, :k])) / n_items


def novelty_at_k(topk: np.ndarray, item_popularity: np.ndarray, k: int) -> float:
    """``item_popularity``: (n_items,) share of training users per item, in [0, 1]."""
    floor = 1.0 / max(1, len(item_popularity))  # unseen items count as seen once
    p = np.maximum(item_popularity[topk[:, :k]], floor)
    return float(-np.log2(p).mean())


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    predicted, actual = np.asarray(predicted, np.float64), np.asarray(actual, np.float64)
    if predicted.shape != actual.shape or predicted.size == 0:
        raise ValueError(
            f"rmse needs equal, non-empty shapes, got {predicted.shape}, {actual.shape}"
        )
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def ranking_metrics(
    topk: np.ndarray, truth: sp.csr_matrix, ks: list[int], item_popularity: np.ndarray
) -> dict[str, np.ndarray | float]:
    """Per-user arrays for the accuracy metrics, catalog-level floats for the others."""
    hits = hit_matrix(topk, truth)
    n_pos = np.diff(truth.indptr)
    if (n_pos == 0).any():
        raise ValueError("every evaluated user needs at least one held-out positive")
    out: dict[str, np.ndarray | float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(hits, n_pos, k)
        out[f"recall_capped@{k}"] = recall_capped_at_k(hits, n_pos, k)
        out[f"ndcg@{k}"] = ndcg_at_k(hits, n_pos, k)
        out[f"hitrate@{k}"] = hitrate_at_k(hits, k)
        out[f"mrr@{k}"] = mrr_at_k(hits, k)
        out[f"coverage@{k}"] = coverage_at_k(topk, truth.shape[1], k)
        out[f"novelty@{k}"] = novelty_at_k(topk, item_popularity, k)
    return out
