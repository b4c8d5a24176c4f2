"""The event log as Parquet, one partition per UTC day of event time: what training reads.

    <out>/date=2026-12-04/events.parquet     every record of that day, sorted by (ts_ms, id)
    <out>/_manifest.json                      date -> {"rows", "sha256"} of each partition

Idempotent and incremental: a partition is rewritten only when its rows changed (late events
arrived for that day), judged by the SHA-256 of its rows in canonical order, so a re-run over
the same log writes nothing. Each file is written beside its place and renamed over it, and
the manifest after it, so an export killed at any moment leaves every partition either as it
was or complete; the re-run then rewrites exactly the partitions whose rows differ, and the
result has the same content hashes as an export that was never interrupted.

Columns: the fields every consumer reads (``event_id``, ``type``, ``user_id``, ``item_id``,
``ts_ms``, ``ingest_ms``, ``origin``, ``watch_fraction``, ``duration_s``, ``value``,
``request_id``, ``surface``) and ``record``: the whole record as JSON, so nothing the log
kept is lost (exposures' lists, titles, queries, contexts).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from recsys.data.event_partitions import COLUMNS, MANIFEST, partition_file, read_partitions
from recsys.events.sqlite_log import dumps

__all__ = ["COLUMNS", "MANIFEST", "Exported", "export", "read_partitions"]

DAY_MS = 86_400_000
@dataclass
class Exported:
    partitions: int = 0  # partitions the log has
    written: list[str] = field(default_factory=list)  # dates (re)written by this run
    rows: int = 0
    seconds: float = 0.0


def day_of(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(int(ts_ms) // 1000))


def partition_rows(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by day, each day in canonical order (a replayed or re-delivered log
    gives the same order whatever its partitions interleaving was)."""
    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        days[day_of(r["ts_ms"])].append(r)
    for rows in days.values():
        rows.sort(key=lambda r: (int(r["ts_ms"]), str(r["event_id"])))
    return days


def content_hash(rows: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for r in rows:
        digest.update(dumps(r).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def table_of(rows: list[dict[str, Any]]) -> pa.Table:
    def col(name: str, cast: Any) -> list[Any]:
        return [None if r.get(name) is None else cast(r[name]) for r in rows]

    return pa.table({
        "event_id": col("event_id", str), "type": col("type", str),
        "user_id": col("user_id", int), "item_id": col("item_id", int),
        "ts_ms": col("ts_ms", int), "ingest_ms": col("ingest_ms", int),
        "origin": col("origin", str), "watch_fraction": col("watch_fraction", float),
        "duration_s": col("duration_s", float), "value": col("value", float),
        "request_id": col("request_id", str), "surface": col("surface", str),
        "record": [dumps(r) for r in rows]}, schema=COLUMNS)


def read_manifest(out: Path) -> dict[str, dict[str, Any]]:
    path = out / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def write_atomic(path: Path, write: Any) -> None:
    """``write(tmp_path)`` then rename over ``path`` (readers see the old or the new file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def export(records: Iterable[dict[str, Any]], out: str | Path) -> Exported:
    """Write the partitions whose rows changed (module doc); ``records``: the whole log."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.rglob(".*.tmp"):  # a killed run's half-written file: never renamed
        stale.unlink()
    manifest = read_manifest(out)
    days = partition_rows(records)
    result = Exported(partitions=len(days), rows=sum(map(len, days.values())))
    for day in sorted(days):
        rows = days[day]
        digest = content_hash(rows)
        target = partition_file(out, day)
        if manifest.get(day, {}).get("sha256") == digest and target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, lambda tmp, rows=rows: pq.write_table(table_of(rows), tmp))
        manifest[day] = {"rows": len(rows), "sha256": digest}
        write_atomic(out / MANIFEST, lambda tmp: tmp.write_text(
            json.dumps(manifest, indent=1, sort_keys=True)))
        result.written.append(day)
    result.seconds = time.perf_counter() - started
    return result
