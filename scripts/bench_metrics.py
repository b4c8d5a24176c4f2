"""What the benchmarks read off the machine and the servers around a run.

* Prometheus text (the router's ``/metrics``, Triton's metrics port), parsed by prometheus_client
  into samples, so a run's figures are the counters' increase between two scrapes;
* the machine's busy CPU time, from psutil.

Shared by ``bench_serving.py`` (per-stage latency, Triton's merged batches, CPU per request) and
``bench_gpu.py`` (Triton's merged batches).
"""

from __future__ import annotations

import psutil
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]  # (sample name, labels) -> value

# Triton's batch counters as prometheus_client names their samples: a counter family's samples
# carry "_total" even where the exposition (Triton's) leaves it out.
TRITON_ROWS = "nv_inference_count_total"  # rows run through each model
TRITON_EXECUTIONS = "nv_inference_exec_count_total"  # model executions = batches
STAGE_SECONDS = "recsys_stage_seconds"  # the router's per-stage histogram, label "stage"


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by sample name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str, timeout_s: float = 10.0) -> Samples:
    import httpx

    return parse(httpx.get(url, timeout=timeout_s).text)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the ``name`` samples whose labels include ``labels`` (all series by default)."""
    want = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and want <= have)


def increase(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def stage_means(before: Samples, after: Samples) -> dict[str, float]:
    """Mean ms per request-path stage between two scrapes of the router (stages that ran)."""
    stages = sorted({dict(labels)["stage"] for name, labels in after
                     if name == f"{STAGE_SECONDS}_count" and "stage" in dict(labels)})
    means = {}
    for stage in stages:
        n = increase(before, after, f"{STAGE_SECONDS}_count", stage=stage)
        if n:
            means[stage] = 1e3 * increase(before, after, f"{STAGE_SECONDS}_sum", stage=stage) / n
    return means


def triton_rows_per_execution(before: Samples, after: Samples) -> float | None:
    """Mean rows per model execution between two scrapes of Triton: what the batcher merged;
    None when nothing ran."""
    executions = increase(before, after, TRITON_EXECUTIONS)
    return increase(before, after, TRITON_ROWS) / executions if executions else None


def machine_busy_s() -> float:
    """CPU seconds every core of this machine has spent busy since boot (all but idle and
    iowait; guest time is already inside user time)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal
