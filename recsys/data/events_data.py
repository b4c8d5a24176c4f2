"""The logged events as a training dataset (``data=events``): the log's Parquet export
(``python -m recsys.stream export``) read into the canonical tables every stage trains on.

The label is the design's engagement where plays exist and the rating where they do not: a
play watched to at least ``engaged_fraction`` becomes a rating of ``engaged_rating`` (a
positive for ``eval.positive_threshold``), a play watched less stays an interaction with no
rating (seen, so filtered and used as history, never a positive), and a rating keeps its value.
Other event types (``click``, ``search``...) are left out unless named in ``event_types``; a
click carries no rating either way. The catalog is a MovieLens release's (``catalog``, read
from ``root``), plus every title the log added through ``POST /v1/items``. ``days`` bounds
the history read: the last ``days`` calendar days up to the newest partition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys import RecsysError
from recsys.data.dataset import Dataset
from recsys.data.event_partitions import partition_dates, read_partitions
from recsys.data.schema import EVENT_TYPES, INTERACTION_DTYPES, ITEM_LIST_COLUMNS

TITLE_ADDED = "title_added"


def load_events(path: str | None, root: str | None = None, days: int | None = None,
                catalog: str = "ml-latest-small", engaged_fraction: float = 0.7,
                engaged_rating: float = 5.0,
                event_types: Sequence[str] = ("play", "rating")) -> Dataset:
    """The dataset of the export at ``path`` (module doc for the label)."""
    from recsys.data.movielens import load_movielens

    if not path:
        raise RecsysError("data=events needs data.path: the folder `python -m recsys.stream "
                          "export` wrote")
    if not partition_dates(path):
        raise RecsysError(f"no exported partitions under {path} (date=YYYY-MM-DD/"
                          "events.parquet); run `python -m recsys.stream export --out "
                          f"{path}` first")
    if days is not None and days < 1:
        raise RecsysError(f"data.days must be >= 1 (or null for every day), got {days}")
    bad = sorted(set(event_types) - set(EVENT_TYPES))
    if bad:
        raise RecsysError(f"data.event_types: {bad} are not among {list(EVENT_TYPES)}")
    table = read_partitions(path, days)
    wanted = pc.is_in(table["type"], value_set=pa_strings([*event_types, TITLE_ADDED]))
    frame = table.filter(wanted).to_pandas()
    titles = frame[frame["type"] == TITLE_ADDED]
    events = frame[(frame["type"] != TITLE_ADDED) & frame["item_id"].notna()
                   & frame["user_id"].notna()]
    items = catalog_with(load_movielens(catalog, root).items, titles)
    known = set(items["item_id"].tolist())
    events = events[events["item_id"].isin(known)]
    if events.empty:
        raise RecsysError(f"no {'/'.join(event_types)} events of the catalog's titles in the "
                          f"export at {path} (days={days})")
    return Dataset("events", interactions_of(events, engaged_fraction, engaged_rating), items,
                   pd.DataFrame({"user_id": np.unique(events["user_id"].astype("int64"))}))


def pa_strings(values: Sequence[str]) -> pa.Array:
    return pa.array(list(values), pa.string())


def interactions_of(events: pd.DataFrame, engaged_fraction: float,
                    engaged_rating: float) -> pd.DataFrame:
    """The canonical interactions table of the log's rows (module doc for the label)."""
    kind = events["type"].to_numpy()
    fraction = events["watch_fraction"].to_numpy(np.float64)
    rating = np.where(kind == "rating", events["value"].to_numpy(np.float64), np.nan)
    engaged = (kind == "play") & (fraction >= engaged_fraction)
    rating = np.where(engaged, engaged_rating, rating)
    out = pd.DataFrame({
        "user_id": events["user_id"].to_numpy(np.int64),
        "item_id": events["item_id"].to_numpy(np.int64),
        "rating": rating.astype(np.float32),
        "timestamp": pd.array(events["ts_ms"].to_numpy(np.int64) // 1000, dtype="Int64"),
        "event_type": pd.Categorical(kind, categories=list(EVENT_TYPES)),
        "watch_fraction": np.where(kind == "play", fraction, np.nan).astype(np.float32)})
    return out.astype(INTERACTION_DTYPES).sort_values("timestamp", kind="stable",
                                                      ignore_index=True)


def catalog_with(items: pd.DataFrame, titles: pd.DataFrame) -> pd.DataFrame:
    """The catalog plus the titles the log added (the first body of an id wins, as in the
    store), in the catalog's columns."""
    added = []
    for body in titles["record"]:
        title = json.loads(body).get("title") or {}
        if "item_id" in title:
            added.append(title)
    if not added:
        return items
    new = pd.DataFrame(added).drop_duplicates("item_id")
    new = new[~new["item_id"].isin(items["item_id"])]
    for column in items.columns:
        if column not in new:
            new[column] = [[] for _ in range(len(new))] if column in ITEM_LIST_COLUMNS else None
    new = new[items.columns].astype(items.dtypes.to_dict())
    return pd.concat([items, new], ignore_index=True)
