"""The benchmarks' readings: Prometheus counters' increase between scrapes, and busy CPU time."""

import os
import time
from pathlib import Path

import pytest

from scripts.bench_metrics import (
    increase,
    machine_busy_s,
    parse,
    stage_means,
    triton_rows_per_execution,
)

# What Triton's metrics port prints: counters without the _total suffix, two models.
TRITON = """# HELP nv_inference_count Number of inferences performed
# TYPE nv_inference_count counter
nv_inference_count{{model="ranker",version="1"}} {rows}
nv_inference_count{{model="double",version="1"}} {other}
# HELP nv_inference_exec_count Number of model executions performed
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{{model="ranker",version="1"}} {execs}
nv_inference_exec_count{{model="double",version="1"}} 0
"""

# The router's per-stage histogram, as prometheus_client exposes it.
ROUTER = """# HELP recsys_stage_seconds Latency of one request-path stage
# TYPE recsys_stage_seconds histogram
recsys_stage_seconds_bucket{{le="0.01",stage="rank"}} {n}
recsys_stage_seconds_bucket{{le="+Inf",stage="rank"}} {n}
recsys_stage_seconds_count{{stage="rank"}} {n}
recsys_stage_seconds_sum{{stage="rank"}} {rank_s}
recsys_stage_seconds_bucket{{le="+Inf",stage="filters"}} 5.0
recsys_stage_seconds_count{{stage="filters"}} 5.0
recsys_stage_seconds_sum{{stage="filters"}} 0.5
"""


def test_triton_rows_per_execution_is_the_counters_increase_ratio():
    before = parse(TRITON.format(rows=100, other=7, execs=10))
    after = parse(TRITON.format(rows=400, other=7, execs=16))
    assert triton_rows_per_execution(before, after) == pytest.approx(300 / 6)
    assert increase(before, after, "nv_inference_count_total", model="ranker") == 300
    assert triton_rows_per_execution(after, after) is None  # nothing ran in between


def test_stage_means_are_ms_per_request_over_the_run_only():
    before = parse(ROUTER.format(n=10.0, rank_s=1.0))
    after = parse(ROUTER.format(n=30.0, rank_s=1.4))
    assert stage_means(before, after) == {"rank": pytest.approx(1e3 * 0.4 / 20)}  # filters idle
    assert stage_means({}, before) == {"rank": pytest.approx(100.0),
                                       "filters": pytest.approx(100.0)}


def test_machine_busy_seconds_follow_proc_stat():
    def from_proc_stat() -> float:  # user..steal less idle and iowait, in seconds
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    start = machine_busy_s()
    end_spin = time.process_time() + 0.3
    while time.process_time() < end_spin:
        pass
    assert machine_busy_s() - start >= 0.25  # at least our own spin, in seconds
    assert machine_busy_s() == pytest.approx(from_proc_stat(), abs=1.0)
