"""The exposure record: what a response showed, logged as an ``impression`` event so that each
play or click (which carries the response's ``request_id``) is attributed to the exposure, the
experiment and the arm that showed the title.

One record per response, written by the server (``origin="serve"``), never posted by clients:

    {"event_id": <request_id>, "type": "impression", "origin": "serve", "user_id": 42,
     "ts_ms": ..., "ingest_ms": ..., "request_id": <request_id>, "surface": "home",
     "items": [318, 858, ...],                       # raw ids, position = index
     "experiments": [{"experiment": "ease_vs_ranker", "arm": "control", "kind": "ab"}],
     "teams": ["control", "ease_only", ...],         # interleaving only: the arm per slot
     "latency_ms": 12.3, "version": "20261204T...", "degraded": []}

A client's own ``impression`` events (one title, ``item_id``) stay what they were; an exposure
is told apart by its ``items`` list.
"""

from __future__ import annotations

from typing import Any

ORIGIN_SERVE = "serve"


def exposure_record(result: dict[str, Any], ts_ms: int, latency_ms: float) -> dict[str, Any]:
    """The record of one response (``result``: the request path's result as a dict, with its
    ``items`` as dicts), at ``ts_ms``."""
    items = result["items"]
    out: dict[str, Any] = {
        "event_id": result["request_id"], "type": "impression", "origin": ORIGIN_SERVE,
        "user_id": int(result["user_id"]), "ts_ms": int(ts_ms), "ingest_ms": int(ts_ms),
        "request_id": result["request_id"], "surface": result["surface"],
        "items": [int(item["item_id"]) for item in items],
        "experiments": list(result.get("experiments") or []),
        "latency_ms": round(float(latency_ms), 3), "version": result["version"],
        "degraded": list(result.get("degraded") or [])}
    if any(item.get("arm") for item in items):
        out["teams"] = [item.get("arm") for item in items]
    return out


def is_exposure(record: dict[str, Any]) -> bool:
    return record.get("type") == "impression" and isinstance(record.get("items"), list)
