"""Small helpers every source uses to turn a score vector into a ``SourceResult``."""

from __future__ import annotations

import numpy as np

from recsys.candidates.types import NO_ITEM, SourceResult


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(B, k) indices of the k largest scores per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def top_unseen(scores: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best scores, best first, skipping ``exclude`` and -inf entries."""
    scores = scores.astype(np.float32, copy=True)
    scores[exclude[(exclude >= 0) & (exclude < len(scores))]] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.empty(0, np.int64)
    return top_k(scores[None, :], k)[0].astype(np.int64)


def result(source: str, scores: np.ndarray, exclude: np.ndarray, k: int,
           because: np.ndarray | None = None) -> SourceResult:
    """A SourceResult of the top ``k`` unseen items; ``because`` is per catalog item if given."""
    items = top_unseen(scores, exclude, k)
    credited = np.full(len(items), NO_ITEM, np.int64) if because is None else because[items]
    return SourceResult(source, items, scores[items].astype(np.float32), credited)


def credit(weights_rows: np.ndarray, history: np.ndarray, items: np.ndarray) -> np.ndarray:
    """For each candidate, the history item with the largest contribution.

    ``weights_rows``: (len(history), len(items)) contribution of history item j to candidate i.
    """
    if len(history) == 0 or len(items) == 0:
        return np.full(len(items), NO_ITEM, np.int64)
    return history[np.argmax(weights_rows, axis=0)].astype(np.int64)
