"""The Dataset bundle: the three canonical tables plus the contiguous id indices."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.indexing import IdIndex


@dataclass
class Dataset:
    """Canonical tables of one source, with ``user_idx``/``item_idx`` columns added.

    The item index spans the whole catalog (titles nobody rated yet included), so embedding
    tables have a row for every title a user could be shown.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    user_index: IdIndex = field(init=False)
    item_index: IdIndex = field(init=False)

    def __post_init__(self) -> None:
        self.user_index = IdIndex.from_ids(self.users["user_id"], self.interactions["user_id"])
        self.item_index = IdIndex.from_ids(self.items["item_id"], self.interactions["item_id"])
        self.interactions = self.interactions.assign(
            user_idx=self.user_index.to_index(self.interactions["user_id"]),
            item_idx=self.item_index.to_index(self.interactions["item_id"]),
        )

    @property
    def n_users(self) -> int:
        return len(self.user_index)

    @property
    def n_items(self) -> int:
        return len(self.item_index)

    def items_by_index(self) -> pd.DataFrame:
        """The catalog with row i = item index i (titles missing from the catalog get None)."""
        return self.items.set_index("item_id").reindex(self.item_index.raw_ids).reset_index()

    def titles(self, item_idx) -> list[str]:
        """Titles for contiguous item indices (for printing recommendations)."""
        by_id = self.items.set_index("item_id")["title"]
        return [str(by_id.get(i, f"item {i}")) for i in self.item_index.to_raw(item_idx)]

    def save_indices(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.user_index.save(directory / "user_index.parquet")
        self.item_index.save(directory / "item_index.parquet")

    def summary(self) -> str:
        density = len(self.interactions) / max(1, self.n_users * self.n_items)
        return (
            f"{self.name}: {self.n_users:,} users x {self.n_items:,} items, "
            f"{len(self.interactions):,} events (density {density:.4%})"
        )


def interaction_matrix(
    interactions: pd.DataFrame, n_users: int, n_items: int, values: np.ndarray | None = None
) -> sp.csr_matrix:
    """User x item CSR matrix (float32). Without ``values`` it is binary (repeat events count
    once); with ``values`` duplicates are summed."""
    data = np.ones(len(interactions), np.float32) if values is None else values.astype(np.float32)
    matrix = sp.csr_matrix(
        (data, (interactions["user_idx"].to_numpy(), interactions["item_idx"].to_numpy())),
        shape=(n_users, n_items),
    )
    matrix.sum_duplicates()
    if values is None:
        matrix.data[:] = 1.0
    return matrix
