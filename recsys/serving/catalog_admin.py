"""Catalog administration: titles added to a running replica's catalog after training.

``add_titles(path, items)`` checks the rows, builds a new ``LiveCatalog`` (arrays, raw ids,
the ranker's item rows from the titles' metadata) and swaps it in, then has every source that
embeds titles (``add_items``: content) index them, so search and post-play's content
neighbours can return them at once. The ranker scores them from their metadata (its id table
has no row for them: that slot is empty, as for any unknown id). Sources sized to the training
catalog (ALS, co-watch, trending, two_tower) never return them until the next training run.
The change is in memory and in this request path only (one Serve replica).

The content index, which is what makes a title reachable, changes last: a concurrent request
sees either the old catalog or one that already has every new row. If embedding fails, the
old snapshot is put back and nothing changed.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recsys.serving.errors import DuplicateItemError, InvalidInput
from recsys.serving.live_catalog import LiveCatalog

if TYPE_CHECKING:
    from recsys.serving.request_path import RequestPath

log = logging.getLogger(__name__)

lock = threading.Lock()  # one catalog change at a time; requests take no lock


def add_titles(path: RequestPath, items: pd.DataFrame) -> np.ndarray:
    """Append titles to ``path``'s live catalog; returns their new item indices.

    ``items``: catalog rows with the bundle's columns (``item_id``, new, and ``title``
    required; missing columns are unknown values)."""
    with lock:
        before = path.live
        rows = checked_rows(before, items)
        embedders = title_embedders(path)
        new = np.arange(before.n_items, before.n_items + len(rows), dtype=np.int64)
        path.live = before.with_titles(rows, path.bundle.builder, path.cfg.rerank)
        try:
            for source in embedders:
                source.add_items(rows, new)
        except Exception:
            path.live = before
            raise
        log.info("added %d title(s) to the catalog as item indices %d..%d", len(new), new[0],
                 new[-1])
        return new


def checked_rows(live: LiveCatalog, items: pd.DataFrame) -> pd.DataFrame:
    """``items`` checked and laid out as the catalog's rows (its columns and dtypes), so every
    consumer of the catalog reads them as it reads the trained ones."""
    if not isinstance(items, pd.DataFrame) or items.empty:
        raise InvalidInput("add_titles needs a non-empty DataFrame of catalog rows", "items")
    columns = list(live.items.columns)
    unknown = sorted(set(items.columns) - set(columns))
    if unknown:
        raise InvalidInput(f"unknown catalog column(s) {unknown}; the catalog has {columns}",
                           "items")
    for col in ("item_id", "title"):
        if col not in items.columns or items[col].isna().any():
            raise InvalidInput(f"every new title needs {col}", col)
    if not all(isinstance(t, str) and t.strip() for t in items["title"]):
        raise InvalidInput("title must be a non-empty string", "title")
    raw = pd.to_numeric(items["item_id"], errors="coerce")
    if raw.isna().any() or (raw != raw.round()).any():
        raise InvalidInput(f"item_id must be an integer, got {items['item_id'].tolist()}",
                           "item_id")
    repeated = sorted(raw[raw.duplicated()].astype(np.int64).unique().tolist())
    if repeated:
        raise InvalidInput(f"item_id {repeated} given more than once", "item_id")
    taken = [int(i) for i in raw if int(i) in live.item_index]
    if taken:
        raise DuplicateItemError(f"item_id {taken} already in the catalog", "item_id")
    rows = items.reindex(columns=columns).reset_index(drop=True)
    rows["item_id"] = raw.astype(np.int64).to_numpy()
    for col, dtype in live.items.dtypes.items():
        if not pd.api.types.is_object_dtype(dtype):
            try:
                rows[col] = rows[col].astype(dtype)
            except (TypeError, ValueError) as err:
                raise InvalidInput(f"{col}: {err}", str(col)) from None
    return rows


def title_embedders(path: RequestPath) -> list:
    """The sources that can index a title they were not fitted on (``add_items``)."""
    found = [spec.source for spec in path.bundle.generator.sources.values()
             if hasattr(spec.source, "add_items")]
    if not found:
        raise InvalidInput("this bundle has no content source, so a new title would be "
                           "reachable from no surface; train with a content source "
                           "(candidates=default)", "items")
    return found
