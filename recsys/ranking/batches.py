"""From pair rows and feature tables to model batches, sharded evenly over workers.

A batch is a handful of numpy gathers (user rows, item rows, context) turned into tensors; the
KJT a TorchRec model needs is built from the padded ids inside the model (``model.to_kjt``), so
the loader stays a plain, cheap iterator. Every worker gets the same number of batches: TorchRec's
sharded forward is a collective, and a worker with one batch more would wait forever.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from recsys.ranking.features import FeatureTables
from recsys.ranking.pairs import PairRows

T = TypeVar("T")

INPUT_NAMES = ("ids", "weights", "user_dense", "item_dense", "pair_dense")


@dataclass
class RankerBatch:
    ids: torch.Tensor  # (B, S) int64, -1 = empty slot
    weights: torch.Tensor  # (B, S) float32
    user_dense: torch.Tensor  # (B, Du)
    item_dense: torch.Tensor  # (B, Di)
    pair_dense: torch.Tensor  # (B, P)
    labels: torch.Tensor  # (B,)

    def inputs(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in INPUT_NAMES}

    def to(self, device: torch.device) -> RankerBatch:
        return RankerBatch(*(getattr(self, f).to(device, non_blocking=True)
                             for f in (*INPUT_NAMES, "labels")))

    def __len__(self) -> int:
        return len(self.labels)


def gather(tables: FeatureTables, rows: PairRows, idx: np.ndarray | slice | None = None
           ) -> RankerBatch:
    """The batch for ``rows[idx]`` (all rows when ``idx`` is None)."""
    idx = slice(None) if idx is None else idx
    u, i, ctx = rows.users[idx], rows.items[idx], rows.context[idx]
    ids = np.concatenate([tables.user_ids[u], tables.item_ids[i], ctx], axis=1)
    weights = np.concatenate([tables.user_weights[u], tables.item_weights[i],
                              np.ones(ctx.shape, np.float32)], axis=1)
    return RankerBatch(torch.from_numpy(ids), torch.from_numpy(weights),
                       torch.from_numpy(tables.user_dense[u]),
                       torch.from_numpy(tables.item_dense[i]),
                       torch.from_numpy(np.ascontiguousarray(rows.pair_dense[idx])),
                       torch.from_numpy(rows.labels[idx]))


class BatchIterator:
    """Shuffled (per epoch) batches of this worker's shard; equal count on every worker."""

    def __init__(self, tables: FeatureTables, rows: PairRows, batch_size: int, *,
                 rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True) -> None:
        self.tables, self.rows = tables, rows
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0

    def __len__(self) -> int:
        per_worker = len(self.rows) // self.world_size
        full = per_worker // self.batch_size
        return full if self.drop_last or per_worker % self.batch_size == 0 else full + 1

    def __iter__(self) -> Iterator[RankerBatch]:
        n = len(self.rows)
        order = (np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle
                 else np.arange(n))
        per_worker = n // self.world_size
        mine = order[self.rank * per_worker:(self.rank + 1) * per_worker]
        self.epoch += 1
        for b in range(len(self)):
            yield gather(self.tables, self.rows, np.sort(mine[b * self.batch_size:
                                                            (b + 1) * self.batch_size]))


def timed(batches: Iterable[T]) -> Iterator[tuple[T, float]]:
    """Each batch with the seconds spent producing it: the data pipeline's share of a step,
    which the training loop and its benchmark baseline both report."""
    it = iter(batches)
    while True:
        start = time.perf_counter()
        batch = next(it, None)
        if batch is None:
            return
        yield batch, time.perf_counter() - start
