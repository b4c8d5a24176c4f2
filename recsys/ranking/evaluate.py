"""Offline metrics of a ranker over candidate rows grouped by user.

The two-stage protocol: each evaluated user's merged candidates are scored, sorted, and the top
``max(ks)`` are compared with the user's held-out positives using the same metric code as every
single-stage model (``recsys.eval.metrics``), so the numbers sit in one table with EASE's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from recsys.eval.metrics import ranking_metrics
from recsys.ranking.batches import RankerBatch, gather
from recsys.ranking.features import FeatureTables
from recsys.ranking.pairs import PairRows


@torch.inference_mode()
def score_rows(score_fn: Callable[[RankerBatch], torch.Tensor], tables: FeatureTables,
               rows: PairRows, batch_size: int = 8192) -> np.ndarray:
    """(n,) scores of every row, in row order."""
    out = np.empty(len(rows), np.float32)
    for start in range(0, len(rows), batch_size):
        idx = slice(start, min(len(rows), start + batch_size))
        out[idx] = score_fn(gather(tables, rows, idx)).float().reshape(-1).cpu().numpy()
    return out


def top_items(scores: np.ndarray, items: np.ndarray, starts: np.ndarray, k: int) -> np.ndarray:
    """(U, k) best items per user group; groups shorter than k are padded with their last
    item repeated as a non-hit (-1 would index the last catalog item)."""
    out = np.empty((len(starts) - 1, k), np.int64)
    for u in range(len(starts) - 1):
        s, e = starts[u], starts[u + 1]
        order = np.argsort(-scores[s:e], kind="stable")[:k]
        best = items[s:e][order]
        out[u] = np.pad(best, (0, k - len(best)), mode="edge") if len(best) else 0
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (rank statistic; ties count half)."""
    from scipy.stats import rankdata

    pos = labels > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def group_metrics(scores: np.ndarray, rows: PairRows, starts: np.ndarray, truth: sp.csr_matrix,
                  ks: list[int], item_popularity: np.ndarray) -> dict[str, float]:
    """Ranking metrics of users whose rows start at ``starts``; ``truth`` rows are those
    users' held-out positives (in the same order)."""
    topk = top_items(scores, rows.items, starts, max(ks))
    per_user = ranking_metrics(topk, truth, ks, item_popularity)
    out = {name: float(np.mean(v)) for name, v in per_user.items()}
    out["auc"] = auc(scores, rows.labels)
    out["users"] = float(len(starts) - 1)
    return out


def truth_matrix(rows: PairRows, starts: np.ndarray, n_items: int,
                 extra: dict[int, np.ndarray] | None = None,
                 users: np.ndarray | None = None) -> sp.csr_matrix:
    """Held-out positives per user group: from ``extra`` (all held-out positives, so recall's
    denominator counts those the candidates missed) or from the row labels."""
    n = len(starts) - 1
    if extra is not None and users is not None:
        cols = [extra.get(int(u), np.empty(0, np.int64)) for u in users]
    else:
        cols = [rows.items[starts[g]:starts[g + 1]][rows.labels[starts[g]:starts[g + 1]] > 0]
                for g in range(n)]
    indptr = np.r_[0, np.cumsum([len(c) for c in cols], dtype=np.int64)]
    data = np.ones(indptr[-1], np.float32)
    return sp.csr_matrix((data, np.concatenate(cols) if cols else [], indptr),
                         shape=(n, n_items))
