"""The top-N evaluation protocol every model in this project reports against.

1. Positives are events with ``rating >= positive_threshold`` (all events if the threshold is
   None). Training uses the train positives as a binary user x item matrix.
2. Every test user with at least one held-out positive is evaluated.
3. Items the user has in train are excluded from the candidates.
4. Metrics follow ``recsys.eval.metrics`` (Recall's denominator = all held-out positives).

The reference benchmark is ml-1m, per-user random 20% holdout, seed 42, positives rating >= 4
(``experiment=ml1m_benchmark``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import RecsysError
from recsys.candidates.base import Scorer, training_matrix
from recsys.candidates.history import top_k
from recsys.data.dataset import Dataset, interaction_matrix
from recsys.data.splits import Split, split_interactions
from recsys.eval.metrics import ranking_metrics
from recsys.progress import progress_bar


def positives(interactions: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Events that count as positive feedback (explicit ratings at or above ``threshold``)."""
    if threshold is None:
        return interactions
    return interactions[interactions["rating"] >= threshold]


@dataclass
class EvalConfig:
    """The ``eval`` config node: what every model in a run is measured on."""

    ks: list[int] = field(default_factory=lambda: [10, 20])
    positive_threshold: float | None = 4.0  # ratings >= this are positives; null = every event
    compare_popular: bool = True  # also score MostPopular in the same run, as the floor


@dataclass
class EvalData:
    """Matrices the protocol needs, built once per split and shared by every model."""

    train: sp.csr_matrix  # (n_users, n_items) binary train positives
    test: sp.csr_matrix  # (n_users, n_items) binary held-out positives
    seen: sp.csr_matrix  # (n_users, n_items) every train event (excluded from candidates)
    users: np.ndarray  # (U,) users with >= 1 held-out positive

    @classmethod
    def build(cls, train: pd.DataFrame, test: pd.DataFrame, n_users: int, n_items: int,
              positive_threshold: float | None) -> EvalData:
        train_pos = interaction_matrix(positives(train, positive_threshold), n_users, n_items)
        test_pos = interaction_matrix(positives(test, positive_threshold), n_users, n_items)
        seen = interaction_matrix(train, n_users, n_items)
        test_pos = test_pos - test_pos.multiply(seen)  # a re-watched title is not a new find
        test_pos.eliminate_zeros()
        users = np.flatnonzero(np.diff(test_pos.indptr) > 0)
        return cls(train_pos, test_pos.tocsr(), seen, users)

    def item_popularity(self) -> np.ndarray:
        """(n_items,) share of users with each item in train, for novelty."""
        return np.asarray((self.train > 0).sum(axis=0)).ravel() / max(1, self.train.shape[0])


def prepare(dataset: Dataset, kind: str = "random", fraction: float = 0.2, seed: int = 42,
            positive_threshold: float | None = 4.0, days: int = 1) -> tuple[Split, EvalData]:
    """Split a dataset and build the protocol's matrices (the same for every model compared)."""
    split = split_interactions(dataset.interactions, kind, fraction, seed, days)
    data = EvalData.build(split.train, split.test, dataset.n_users, dataset.n_items,
                          positive_threshold)
    if len(data.users) == 0:
        raise RecsysError("no test user has a held-out positive: lower eval.positive_threshold")
    return split, data


def recommend(model: Scorer, users: np.ndarray, history: sp.csr_matrix, seen: sp.csr_matrix,
              k: int) -> np.ndarray:
    """(len(users), k) top items per user with already-seen items excluded."""
    scores = model.score(users, history).astype(np.float32, copy=True)
    seen_rows = seen[users].tocoo()
    scores[seen_rows.row, seen_rows.col] = -np.inf
    return top_k(scores, k)


def evaluate(model: Scorer, data: EvalData, ks: list[int], batch_size: int = 2048,
             progress: bool = True) -> dict[str, float]:
    """Mean of every metric over the evaluated users (catalog metrics over all of them)."""
    max_k = max(ks)
    batches = [data.users[i:i + batch_size] for i in range(0, len(data.users), batch_size)]
    topk = np.concatenate([
        recommend(model, users, training_matrix(model, data.train, data.seen), data.seen, max_k)
        for users in progress_bar(batches, desc=f"evaluate {model.name}", enabled=progress)
    ])
    per_user = ranking_metrics(topk, data.test[data.users], ks, data.item_popularity())
    metrics = {name: float(np.mean(v)) for name, v in per_user.items()}
    metrics["users"] = float(len(data.users))
    return metrics
