"""Prometheus metrics of the router process: request latency, per-stage latency, fallbacks,
rows per ranker call, and Triton's batch counters.

Each request path result carries its stage timings, so the router (one process, serving
``/metrics``) records every stage without a metrics agent. With several router replicas each
exposes its own counts (scrape them all, as with any replicated service).

Triton's dynamic batcher merges requests: ``nv_inference_count`` (rows) over
``nv_inference_exec_count`` (model executions) is its mean batch size. ``/metrics`` scrapes
Triton's metrics port when it is asked (short timeout) and re-exports the two counters per
model as ``recsys_triton_inference_rows_total`` / ``recsys_triton_executions_total``, so one
scrape of the router shows both sides of the batching. Triton down or slow never fails
``/metrics``: the two lines are left out and ``recsys_triton_scrape_failures_total`` counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

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
RANK_ROWS = Histogram("recsys_rank_batch_rows",
                      "Rows one request sent to the ranker (candidates left after filters)",
                      buckets=(1, 10, 50, 100, 200, 400, 600, 800, 1000, 2000), registry=REGISTRY)
TRITON_SCRAPE_FAILURES = Counter("recsys_triton_scrape_failures",
                                 "Scrapes of Triton's metrics port that failed or timed out",
                                 registry=REGISTRY)
EVENTS = Counter("recsys_events", "Events posted to /v1/events, by outcome (accepted, "
                 "duplicate, or the rejection reason)", ["outcome"], registry=REGISTRY)
EVENTS_UNAVAILABLE = Counter("recsys_events_unavailable",
                             "Batches answered 503 because the event log was down",
                             registry=REGISTRY)
EXPOSURES = Counter("recsys_exposures", "Responses logged as impression events",
                    registry=REGISTRY)
EXPOSURES_DROPPED = Counter("recsys_exposures_dropped",
                            "Exposures not logged because the event log was down",
                            registry=REGISTRY)
ARM_LATENCY = Histogram("recsys_experiment_request_seconds",
                        "End-to-end latency in the router per experiment arm (the guardrail)",
                        ["experiment", "arm"], buckets=BUCKETS_S, registry=REGISTRY)
# Triton's counter -> (our name, without the _total a counter's exposition adds; help)
TRITON_COUNTERS = {
    "nv_inference_count": ("recsys_triton_inference_rows",
                           "Rows Triton ran through each model (its nv_inference_count)"),
    "nv_inference_exec_count": ("recsys_triton_executions",
                                "Model executions = batches (its nv_inference_exec_count)"),
}
TRITON_SCRAPE_TIMEOUT_S = 0.5


def observe_events(accepted: int, duplicates: int, reasons: Iterable[str]) -> None:
    if accepted:
        EVENTS.labels("accepted").inc(accepted)
    if duplicates:
        EVENTS.labels("duplicate").inc(duplicates)
    for reason in reasons:
        EVENTS.labels(reason).inc()


def observe(result: dict[str, Any], seconds: float) -> None:
    REQUEST_LATENCY.labels(result["surface"]).observe(seconds)
    for exp in result.get("experiments") or ():
        ARM_LATENCY.labels(exp["experiment"], exp["arm"]).observe(seconds)
    for stage, ms in result["timings_ms"].items():
        STAGE_LATENCY.labels(stage).observe(ms / 1e3)
    for stage in result["degraded"]:
        FALLBACKS.labels(stage.split(":")[0]).inc()
    if result["cold_start"]:
        COLD_START.inc()
    if result.get("diversity_relaxed"):
        DIVERSITY_RELAXED.inc()
    CANDIDATES.observe(result["candidates"])
    if result.get("rank_rows"):  # 0: the ranker was not called (nothing left, or none set)
        RANK_ROWS.observe(result["rank_rows"])


def exposition(triton_text: str | None = None, canary_file: str | None = None) -> bytes:
    """The router's metrics, then Triton's batch counters when ``triton_text`` (Triton's own
    exposition) is given, then the canary's state when ``canary_file`` exists."""
    body = generate_latest(REGISTRY)
    if triton_text:
        body += generate_latest(_Families(triton_families(triton_text)))
    if canary_file:
        body += generate_latest(_Families(canary_families(canary_file)))
    return body


def canary_families(path: str) -> list[Metric]:
    """The last canary's decision (``<artefacts>/canary.json``, serve/swap.py): one
    ``recsys_canary_state{version, state, reason}`` = 1, its users per arm at the last
    verdict. Nothing when there is no canary file or it cannot be read."""
    import json

    from prometheus_client.core import GaugeMetricFamily

    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return []
    gauge = GaugeMetricFamily("recsys_canary_state", "The last canary: its state (running, "
                              "promoted, rolled_back) and why", labels=["version", "state",
                                                                        "reason"])
    gauge.add_metric([str(state.get("version")), str(state.get("state")),
                      str(state.get("reason", ""))[:200]], 1.0)
    users = GaugeMetricFamily("recsys_canary_users", "Users per arm at the canary's last "
                              "verdict", labels=["version", "arm"])
    for arm, n in ((state.get("verdict") or {}).get("users") or {}).items():
        users.add_metric([str(state.get("version")), str(arm)], float(n))
    return [gauge, users]


async def scrape_triton(url: str | None, timeout_s: float = TRITON_SCRAPE_TIMEOUT_S
                        ) -> str | None:
    """Triton's metrics text, or None (counted) when it does not answer in ``timeout_s``: a
    stalled Triton must not stall or fail the router's own ``/metrics``."""
    if not url:
        return None
    try:
        # trust_env=False: Triton is local, a proxy from the environment must not be asked
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client:
            response = await client.get(url)
            response.raise_for_status()
            return response.text
    except httpx.HTTPError as err:
        TRITON_SCRAPE_FAILURES.inc()
        log.warning("Triton metrics at %s unavailable: %s: %s", url, type(err).__name__, err)
        return None


def triton_families(text: str) -> list[CounterMetricFamily]:
    """Triton's rows and executions counters per model (summed over model versions), under
    our names; empty families when Triton has no such lines. Malformed text is Triton's
    problem, not the router's: it yields nothing."""
    totals: dict[str, dict[str, float]] = {name: {} for name in TRITON_COUNTERS}
    try:
        for family in text_string_to_metric_families(text):
            if family.name not in totals:
                continue
            per_model = totals[family.name]
            for sample in family.samples:
                # the parser names a counter's samples <family>_total (and <family>_created)
                if sample.name in (family.name, f"{family.name}_total"):
                    model = sample.labels.get("model", "")
                    per_model[model] = per_model.get(model, 0.0) + sample.value
    except ValueError as err:
        TRITON_SCRAPE_FAILURES.inc()
        log.warning("Triton metrics text not understood: %s", err)
        return []
    out = []
    for name, (ours, doc) in TRITON_COUNTERS.items():
        family = CounterMetricFamily(ours, doc, labels=["model"])
        for model, value in sorted(totals[name].items()):
            family.add_metric([model], value)
        out.append(family)
    return out


class _Families:
    """Ready-made metric families in the shape ``generate_latest`` reads (a registry)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families
