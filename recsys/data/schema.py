"""Canonical tables every loader produces, so later stages never see dataset quirks.

Three tables, as pandas DataFrames with explicit dtypes (and matching Arrow schemas for Parquet):

* ``interactions``: one row per event (user_id, item_id, rating, timestamp, event_type,
  watch_fraction). ``timestamp`` is Unix seconds and nullable: the ml-1m reconstruction lacks
  it for some rows. ``rating`` is null for events that carry none (plays, clicks).
* ``items``: the catalog (item_id, title, year, genres, tags, maturity_rating, regions,
  release_date); list columns are Python lists of strings.
* ``users``: user_id plus whatever demographics the source has (columns vary by dataset).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from recsys import RecsysError

EVENT_TYPES = ("rating", "play", "click", "search")

INTERACTION_DTYPES: dict[str, object] = {
    "user_id": "int64",
    "item_id": "int64",
    "rating": "float32",  # NaN where the event has no rating
    "timestamp": "Int64",  # Unix seconds, nullable
    "event_type": pd.CategoricalDtype(list(EVENT_TYPES)),
    "watch_fraction": "float32",  # plays only: fraction of the title watched, NaN otherwise
}

ITEM_SCALAR_DTYPES: dict[str, object] = {
    "item_id": "int64",
    "title": "object",
    "year": "Int16",
    "maturity_rating": "object",  # e.g. "PG-13"; None where unknown
    "release_date": "datetime64[s]",
}
ITEM_LIST_COLUMNS = ("genres", "tags", "regions")


def list_value(value: object) -> list[str]:
    """One cell of a list column as a list of strings: cells arrive as lists, numpy arrays
    (from Parquet), None or NaN, and a lone string is one element, not its characters."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]  # type: ignore[union-attr]

INTERACTIONS_ARROW = pa.schema(
    [
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
        ("event_type", pa.dictionary(pa.int8(), pa.string())),
        ("watch_fraction", pa.float32()),
    ]
)

ITEMS_ARROW = pa.schema(
    [
        ("item_id", pa.int64()),
        ("title", pa.string()),
        ("year", pa.int16()),
        ("genres", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),
        ("maturity_rating", pa.string()),
        ("regions", pa.list_(pa.string())),
        ("release_date", pa.timestamp("s")),
    ]
)


def make_interactions(
    user_id, item_id, rating=None, timestamp=None, event_type="rating", watch_fraction=None
) -> pd.DataFrame:
    """Build an ``interactions`` table with the canonical dtypes from column-like inputs."""
    n = len(user_id)
    df = pd.DataFrame(
        {
            "user_id": pd.array(user_id, dtype="int64"),
            "item_id": pd.array(item_id, dtype="int64"),
            "rating": _float_column(rating, n),
            "timestamp": pd.array(timestamp if timestamp is not None else [pd.NA] * n, "Int64"),
            "event_type": pd.Categorical(
                [event_type] * n if isinstance(event_type, str) else event_type,
                categories=list(EVENT_TYPES),
            ),
            "watch_fraction": _float_column(watch_fraction, n),
        }
    )
    return validate_interactions(df)


def _float_column(values, n: int):
    import numpy as np

    if values is None:
        return np.full(n, np.nan, dtype="float32")
    return np.asarray(values, dtype="float32")


def make_items(df: pd.DataFrame) -> pd.DataFrame:
    """Complete a partial catalog frame with every canonical column and dtype."""
    out = pd.DataFrame({"item_id": df["item_id"].astype("int64")})
    out["title"] = df["title"].astype(object) if "title" in df else None
    out["year"] = (
        df["year"].astype("Int16") if "year" in df else pd.array([pd.NA] * len(df), "Int16")
    )
    for col in ITEM_LIST_COLUMNS:
        out[col] = df[col].values if col in df else [[] for _ in range(len(df))]
    out["maturity_rating"] = (
        df["maturity_rating"].astype(object) if "maturity_rating" in df else None
    )
    release = df["release_date"] if "release_date" in df else pd.Series(pd.NaT, index=df.index)
    out["release_date"] = pd.to_datetime(release.values).astype("datetime64[s]")
    columns = [
        "item_id",
        "title",
        "year",
        "genres",
        "tags",
        "maturity_rating",
        "regions",
        "release_date",
    ]
    return out[columns].reset_index(drop=True)


def validate_interactions(df: pd.DataFrame) -> pd.DataFrame:
    """Check an interactions table against the canonical schema; raise a RecsysError if off."""
    missing = [c for c in INTERACTION_DTYPES if c not in df.columns]
    if missing:
        raise RecsysError(f"interactions table lacks columns {missing}")
    for col, dtype in INTERACTION_DTYPES.items():
        if str(df[col].dtype) != str(dtype):
            raise RecsysError(f"interactions.{col} has dtype {df[col].dtype}, expected {dtype}")
    if df["user_id"].isna().any() or df["item_id"].isna().any():
        raise RecsysError("interactions has rows without user_id or item_id")
    return df


def has_timestamps(interactions: pd.DataFrame) -> bool:
    """True when every event has a timestamp, the precondition of any temporal split."""
    return bool(len(interactions)) and not interactions["timestamp"].isna().any()
