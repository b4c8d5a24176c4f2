"""Human-readable output of a run: the metrics table and a sample user's recommendations."""

from __future__ import annotations

import numpy as np

from recsys.candidates.base import Scorer, training_matrix
from recsys.data.dataset import Dataset
from recsys.eval.protocol import EvalData, recommend

_ORDER = ("ndcg", "recall", "recall_capped", "hitrate", "mrr", "coverage", "novelty")


def metrics_table(results: dict[str, dict[str, float]]) -> str:
    """Markdown table, one column per model, rows ordered metric family then k."""
    models = list(results)
    names = [n for n in next(iter(results.values())) if n != "users"]
    names.sort(
        key=lambda n: (
            _ORDER.index(n.split("@")[0]) if "@" in n else 99,
            int(n.split("@")[1]) if "@" in n else 0,
        )
    )
    lines = ["| metric | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{results[m][name]:.4f}" for m in models) + " |")
    users = int(next(iter(results.values())).get("users", 0))
    lines.append(f"\n{users:,} evaluated users")
    return "\n".join(lines)


def sample_recommendations(
    model: Scorer, dataset: Dataset, data: EvalData, raw_user: int | None, n: int
) -> str:
    """The top ``n`` for one user with titles, after a few titles they liked, for a sanity read."""
    user = (
        int(data.users[0]) if raw_user is None else int(dataset.user_index.to_index([raw_user])[0])
    )
    top = recommend(model, np.array([user]), training_matrix(model, data.train, data.seen),
                    data.seen, n)[0]
    liked = data.train[user].indices[:5]
    lines = [
        f"User {dataset.user_index.to_raw([user])[0]} liked: " + "; ".join(dataset.titles(liked)),
        f"Top {n} from {model.name}:",
    ]
    lines += [f"{rank:>3}. {title}" for rank, title in enumerate(dataset.titles(top), start=1)]
    return "\n".join(lines)
