"""The catalog one replica serves, as one immutable snapshot.

Everything a request reads about titles (the filter and rerank arrays, the raw ids, the
ranker's item rows, the business rules in item indices) sits in one ``LiveCatalog``. A request
takes the replica's current snapshot once, at its features stage, and reads only that one, so a
catalog change (``recsys.serving.catalog_admin``) swaps one reference and no request ever sees
half of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.ranking.features import FeatureBuilder, FeatureTables
from recsys.serving.bundle import ServingBundle
from recsys.serving.catalog import ItemCatalog
from recsys.serving.errors import UnknownItemError
from recsys.serving.settings import ItemRules, RerankConfig


@dataclass(frozen=True, eq=False)  # compared by identity: a snapshot is a version
class LiveCatalog:
    catalog: ItemCatalog  # filters' and rerank's arrays, titles
    items: pd.DataFrame  # the catalog rows, row i = item index i (the bundle's columns)
    item_ids: np.ndarray  # raw item id by index
    item_index: dict[int, int]  # raw item id -> index
    item_tables: FeatureTables  # the ranker's item rows (user rows empty)
    rules: ItemRules  # serve.rerank's pin / boost / demote in these indices

    @classmethod
    def from_bundle(cls, bundle: ServingBundle, rerank: RerankConfig) -> LiveCatalog:
        index = {int(t): i for i, t in enumerate(bundle.item_ids)}
        return cls(ItemCatalog.from_items(bundle.items), bundle.items, bundle.item_ids, index,
                   bundle.item_tables, rerank.for_catalog(index))

    @property
    def n_items(self) -> int:
        return self.catalog.n_items

    def index_of(self, raw_id: int, parameter: str) -> int:
        """The item index of a raw id the request names in ``parameter``."""
        idx = self.item_index.get(int(raw_id))
        if idx is None:
            raise UnknownItemError(f"{parameter}={raw_id} is not a title in the catalog",
                                   parameter)
        return idx

    def with_titles(self, rows: pd.DataFrame, builder: FeatureBuilder,
                    rerank: RerankConfig) -> LiveCatalog:
        """A new snapshot with ``rows`` (checked, in this catalog's columns and dtypes)
        appended as item indices ``n_items...``; this one is left as it was."""
        raw = rows["item_id"].to_numpy(np.int64)
        start = self.n_items
        index = {**self.item_index,
                 **dict(zip(raw.tolist(), range(start, start + len(rows)), strict=True))}
        ids, weights, dense = builder.item_rows(rows)
        t = self.item_tables
        tables = FeatureTables(t.user_ids, t.user_weights, t.user_dense,
                               np.vstack([t.item_ids, ids]),
                               np.vstack([t.item_weights, weights]),
                               np.vstack([t.item_dense, dense]))
        return LiveCatalog(self.catalog.extend(rows),
                           pd.concat([self.items, rows], ignore_index=True),
                           np.concatenate([self.item_ids, raw.astype(self.item_ids.dtype)]),
                           index, tables, rerank.for_catalog(index))
