"""The layout of the event log's Parquet export (written by ``recsys.events.export``), read
here by the data layer so training can load it like any other dataset:

    <folder>/date=YYYY-MM-DD/events.parquet    one UTC day of event time
    <folder>/_manifest.json                    date -> rows and content hash
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "_manifest.json"
COLUMNS = pa.schema([
    ("event_id", pa.string()), ("type", pa.string()), ("user_id", pa.int64()),
    ("item_id", pa.int64()), ("ts_ms", pa.int64()), ("ingest_ms", pa.int64()),
    ("origin", pa.string()), ("watch_fraction", pa.float64()), ("duration_s", pa.float64()),
    ("value", pa.float64()), ("request_id", pa.string()), ("surface", pa.string()),
    ("record", pa.string())])


def partition_file(folder: Path, day: str) -> Path:
    return folder / f"date={day}" / "events.parquet"


def partition_dates(folder: str | Path) -> list[str]:
    return sorted(p.name.split("=", 1)[1] for p in Path(folder).glob("date=*")
                  if (p / "events.parquet").is_file())


def read_partitions(folder: str | Path, days: int | None = None,
                    columns: list[str] | None = None) -> pa.Table:
    """The exported rows of the last ``days`` calendar days up to the newest partition's
    (None = all)."""
    folder = Path(folder)
    dates = partition_dates(folder)
    if days is not None and dates:
        newest = datetime.date.fromisoformat(dates[-1])
        first = (newest - datetime.timedelta(days=int(days) - 1)).isoformat()
        dates = [d for d in dates if d >= first] if days > 0 else []
    tables = [pq.read_table(partition_file(folder, d), columns=columns) for d in dates]
    if not tables:
        schema = COLUMNS if columns is None else pa.schema([COLUMNS.field(c) for c in columns])
        return schema.empty_table()
    return pa.concat_tables(tables)
