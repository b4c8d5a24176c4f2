"""User- and item-tower vectors of a trained ranker, for two-tower retrieval."""

from __future__ import annotations

import numpy as np
import torch

from recsys.ranking.features import FeatureTables
from recsys.ranking.layout import PAD
from recsys.ranking.model import TwoTowerRanker


@torch.inference_mode()
def tower_vectors(model: TwoTowerRanker, tables: FeatureTables, batch_size: int = 8192
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(user vectors (n_users, d), item vectors (n_items, d)): each side's tower over its own
    feature rows (the other side's slots left empty, which its tower never reads)."""
    layout = model.layout
    su, si = layout.side_slots("user"), layout.side_slots("item")
    width = layout.slots

    def run(n: int, fill, pick: int) -> np.ndarray:
        out = []
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(n, start + batch_size))
            ids = np.full((len(rows), width), PAD, np.int64)
            weights = np.zeros((len(rows), width), np.float32)
            user_dense = np.zeros((len(rows), layout.user_dense), np.float32)
            item_dense = np.zeros((len(rows), layout.item_dense), np.float32)
            fill(rows, ids, weights, user_dense, item_dense)
            towers = model.eval().towers(
                torch.from_numpy(ids), torch.from_numpy(weights), torch.from_numpy(user_dense),
                torch.from_numpy(item_dense),
                torch.zeros(len(rows), layout.pair_dense))
            out.append(towers[pick].numpy())
        return np.concatenate(out)

    def users(rows, ids, weights, user_dense, _):
        ids[:, :su], weights[:, :su] = tables.user_ids[rows], tables.user_weights[rows]
        user_dense[:] = tables.user_dense[rows]

    def items(rows, ids, weights, _, item_dense):
        ids[:, su:su + si] = tables.item_ids[rows]
        weights[:, su:su + si] = tables.item_weights[rows]
        item_dense[:] = tables.item_dense[rows]

    return run(len(tables.user_ids), users, 0), run(len(tables.item_ids), items, 1)
