"""Prometheus metrics of the router process: request latency, per-stage latency, fallbacks.

Each pipeline result carries its stage timings, so the router (one process, serving
``/metrics``) records every stage without a metrics agent. With several router replicas each
exposes its own counts (scrape them all, as with any replicated service).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
REGISTRY = CollectorRegistry()
BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)
REQUEST_LATENCY = Histogram("recsys_request_seconds", "End-to-end latency in the router",
                            ["surface"], buckets=BUCKETS_S, registry=REGISTRY)
STAGE_LATENCY = Histogram("recsys_stage_seconds", "Latency of one request-path stage",
                          ["stage"], buckets=BUCKETS_S, registry=REGISTRY)
FALLBACKS = Counter("recsys_fallbacks_total", "Responses where a stage fell back", ["stage"],
                    registry=REGISTRY)
COLD_START = Counter("recsys_cold_start_total", "Requests served on the cold-start path",
                     registry=REGISTRY)
DIVERSITY_RELAXED = Counter("recsys_diversity_relaxed_total",
                            "Responses whose genre quota could not be met", registry=REGISTRY)
CANDIDATES = Histogram("recsys_candidates", "Merged candidates per request",
                       buckets=(0, 50, 100, 200, 400, 600, 800, 1000, 2000), registry=REGISTRY)


def observe(result: dict[str, Any], seconds: float) -> None:
    REQUEST_LATENCY.labels(result["surface"]).observe(seconds)
    for stage, ms in result["timings_ms"].items():
        STAGE_LATENCY.labels(stage).observe(ms / 1e3)
    for stage in result["degraded"]:
        FALLBACKS.labels(stage.split(":")[0]).inc()
    if result["cold_start"]:
        COLD_START.inc()
    if result.get("diversity_relaxed"):
        DIVERSITY_RELAXED.inc()
    CANDIDATES.observe(result["candidates"])


def exposition() -> bytes:
    return generate_latest(REGISTRY)
