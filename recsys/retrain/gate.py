"""The retrain's gate: two artefact versions judged on the same held-out users through the
served request path (candidates, filters, ranker, rerank neutral), so the comparison is what
each version would serve, not two offline numbers from different splits.

Each user's history is the training part of the split (``HistoryUserStore``), in each
version's own item indices: a user one version never trained on is new to it, as they would be
when it serves. Quality is NDCG@k and recall@k of the top k against the user's held-out
positives (titles in their history excluded, as the protocol does).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from recsys.serving.bundle import ServingBundle
from recsys.serving.history_store import HistoryUserStore
from recsys.serving.rankers import OnnxRanker
from recsys.serving.request_path import Request, RequestPath
from recsys.serving.settings import RerankConfig, ServeConfig


def positives_of(test: pd.DataFrame, history: pd.DataFrame, threshold: float | None
                 ) -> dict[int, set[int]]:
    """Raw user -> raw titles held out as positives, minus what their history has."""
    held = test if threshold is None else test[test["rating"] >= threshold]
    seen = history.groupby("user_id")["item_id"].agg(set).to_dict()
    out: dict[int, set[int]] = {}
    for user, items in held.groupby("user_id")["item_id"]:
        fresh = set(map(int, items)) - seen.get(user, set())
        if fresh:
            out[int(user)] = fresh
    return out


def ndcg_recall(top: list[int], relevant: set[int], k: int) -> tuple[float, float]:
    gains = [1.0 / np.log2(rank + 2) for rank, item in enumerate(top[:k]) if item in relevant]
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return (sum(gains) / ideal if ideal else 0.0), len(gains) / len(relevant)


def replay_quality(bundle: ServingBundle, history: pd.DataFrame,
                   positives: dict[int, set[int]], serve_cfg: ServeConfig, k: int = 10
                   ) -> dict[str, float]:
    """Mean NDCG@k and recall@k of ``bundle``'s served path over ``positives``' users."""
    store = HistoryUserStore(history, bundle.user_ids, bundle.item_ids)
    cfg = replace(serve_cfg, rerank=RerankConfig(max_genre_share=1.0, fresh_share=0.0),
                  experiments={})
    path = RequestPath(bundle, store, OnnxRanker(bundle.ranker_dir / "model.onnx"), cfg)
    scores = [ndcg_recall([r.item_id for r in path.recommend_sync(
        Request(user_id=user, n=k)).items], relevant, k)
        for user, relevant in positives.items()]
    ndcg, recall = (np.array(scores).reshape(-1, 2).mean(axis=0) if scores else (0.0, 0.0))
    return {f"ndcg@{k}": float(ndcg), f"recall@{k}": float(recall), "users": len(scores)}


def passes(candidate: float, serving: float, tolerance: float) -> bool:
    """The candidate may be at most ``tolerance`` (a share) worse than the serving version."""
    return candidate >= serving * (1.0 - tolerance)
