"""Reading a generated folder back: ``read_meta`` and ``load_synthetic`` (a canonical Dataset).

Separate from the writer because loading needs none of the generator: it checks that the folder
is a finished, complete dataset (``meta.json`` present and consistent with the part files) and
converts the Arrow tables to the canonical frames without per-row Python objects.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys import RecsysError
from recsys.data.dataset import Dataset
from recsys.data.schema import (
    INTERACTIONS_ARROW,
    ITEM_LIST_COLUMNS,
    ITEMS_ARROW,
    make_interactions,
    make_items,
)
from recsys.data.synthetic.layout import META_FORMAT


def read_meta(out_dir: str | Path) -> dict:
    """The meta.json of a finished dataset; a RecsysError for a missing or unfinished one."""
    folder = Path(out_dir)
    if not folder.is_dir():
        raise RecsysError(f"synthetic dataset folder not found: {folder}")
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        raise RecsysError(f"{folder} has no meta.json: not a finished synthetic dataset "
                          "(generate one with scripts/generate_synthetic.py)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise RecsysError(f"{meta_path} is not valid JSON ({err})") from err
    if meta.get("format") != META_FORMAT:
        raise RecsysError(f"{meta_path} does not describe a synthetic dataset")
    return meta


def load_synthetic(out_dir: str | Path, max_events: int | None = 100_000_000) -> Dataset:
    """Read a generated folder back as a ``Dataset`` with the canonical dtypes.

    Everything goes into memory (~60 bytes per event once indexed), hence ``max_events``: for
    bigger sets stream the Parquet parts instead.
    """
    folder = Path(out_dir)
    meta = read_meta(folder)
    n_events = meta["counts"]["events"]
    if max_events is not None and n_events > max_events:
        raise RecsysError(f"{folder} holds {n_events:,} events, more than max_events="
                          f"{max_events:,} to load into memory; read interactions/ part by part")
    parts = sorted((folder / "interactions").glob("part-*.parquet"))
    user_parts = sorted((folder / "users").glob("part-*.parquet"))
    if not (folder / "items.parquet").exists() or len(parts) != meta["counts"]["parts"] or len(
            user_parts) != meta["counts"]["parts"]:
        raise RecsysError(f"{folder} is incomplete: expected items.parquet and "
                          f"{meta['counts']['parts']} part files in users/ and interactions/")
    events = pa.concat_tables([pq.read_table(p, schema=INTERACTIONS_ARROW) for p in parts])
    if events.num_rows != n_events:
        raise RecsysError(f"{folder} has {events.num_rows:,} events, meta.json says {n_events:,}")
    interactions = _interactions_frame(events)
    items = _items_frame(pq.read_table(folder / "items.parquet").cast(ITEMS_ARROW))
    users = pa.concat_tables([pq.read_table(p) for p in user_parts]).to_pandas()
    return Dataset("synthetic", interactions, items, users)


def _interactions_frame(events: pa.Table) -> pd.DataFrame:
    """Canonical interactions from the Arrow table, via numpy (no per-row objects)."""
    kind = events.column("event_type").combine_chunks()
    names = kind.dictionary.to_pylist()
    codes = kind.indices.to_numpy(zero_copy_only=False)
    event_type = pd.Categorical.from_codes(codes, categories=names)
    return make_interactions(
        events.column("user_id").to_numpy(),
        events.column("item_id").to_numpy(),
        rating=events.column("rating").to_numpy(),
        timestamp=events.column("timestamp").to_numpy(),
        event_type=event_type,
        watch_fraction=events.column("watch_fraction").to_numpy(),
    )


def _items_frame(table: pa.Table) -> pd.DataFrame:
    """Canonical items; list columns become Python lists as the schema promises."""
    frame = table.drop_columns(list(ITEM_LIST_COLUMNS)).to_pandas()
    for column in ITEM_LIST_COLUMNS:
        frame[column] = table.column(column).to_pylist()
    return make_items(frame)
