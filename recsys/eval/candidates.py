"""Offline evaluation of candidate *lists* (any source's ``candidates()`` or the merged set).

``evaluate()`` in ``protocol`` scores the whole catalog per user; candidate generation returns
short, variable-length lists instead, and must also be judged for users the models never saw
(cold start). These helpers take one ordered item list per user and compute the same metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from recsys.candidates.types import UserHistory
from recsys.eval.metrics import coverage_at_k, hit_matrix, ndcg_at_k, recall_at_k
from recsys.eval.protocol import EvalData
from recsys.progress import progress_bar


def pad_lists(lists: Sequence[np.ndarray], width: int, pad: int) -> np.ndarray:
    """(U, width) matrix of the lists' first ``width`` items, short lists padded with ``pad``."""
    out = np.full((len(lists), width), pad, np.int64)
    for row, items in enumerate(lists):
        items = np.asarray(items, np.int64)[:width]
        out[row, : len(items)] = items
    return out


def list_metrics(lists: Sequence[np.ndarray], truth: sp.csr_matrix, ks: Sequence[int],
                 ndcg_k: int = 10) -> dict[str, float]:
    """Recall@k for each k, NDCG@ndcg_k, coverage@max(k) and mean list length.

    ``truth``: (U, n_items) held-out positives, rows aligned with ``lists``.
    """
    n_items = truth.shape[1]
    width = max(max(ks), ndcg_k)
    # A zero column at index n_items absorbs the padding, so padded slots never count as hits.
    padded_truth = sp.hstack([truth, sp.csr_matrix((truth.shape[0], 1))]).tocsr()
    topk = pad_lists(lists, width, pad=n_items)
    hits = hit_matrix(topk, padded_truth)
    n_pos = np.diff(truth.indptr)
    out = {f"recall@{k}": float(recall_at_k(hits, n_pos, k).mean()) for k in ks}
    out[f"ndcg@{ndcg_k}"] = float(ndcg_at_k(hits, n_pos, ndcg_k).mean())
    real = topk[:, : max(ks)]
    out[f"coverage@{max(ks)}"] = coverage_at_k(real[real < n_items].reshape(1, -1), n_items,
                                                real.size) if (real < n_items).any() else 0.0
    out["mean_size"] = float(np.mean([len(x) for x in lists]))
    out["users"] = float(len(lists))
    return out


def known_user_histories(data: EvalData) -> list[UserHistory]:
    """Histories of the evaluated users as the models know them (all their train events)."""
    return [UserHistory(int(u), data.seen[u].indices.astype(np.int64)) for u in data.users]


def collect(fn: Callable[[UserHistory], np.ndarray], histories: Sequence[UserHistory],
            desc: str, progress: bool = True) -> list[np.ndarray]:
    """Run ``fn`` (history -> ordered item indices) for every user, with a progress bar."""
    return [np.asarray(fn(h)) for h in progress_bar(histories, desc=desc, enabled=progress)]
