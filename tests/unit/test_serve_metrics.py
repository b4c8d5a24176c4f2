"""The router's /metrics text: rows per ranker call, and Triton's batch counters re-exported
from its metrics port, left out (and counted) when Triton does not answer."""

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from recsys.runtime.ports import free_port
from serve import metrics

# what Triton 2.x prints on its metrics port (abridged): two versions of one model, another model
TRITON_TEXT = """# HELP nv_inference_count Number of inferences performed
# TYPE nv_inference_count counter
nv_inference_count{model="ranker",version="1"} 300
nv_inference_count{model="ranker",version="2"} 20
nv_inference_count{model="other",version="1"} 5
# HELP nv_inference_exec_count Number of model executions performed
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{model="ranker",version="1"} 4
nv_inference_exec_count{model="ranker",version="2"} 1
nv_inference_exec_count{model="other",version="1"} 5
# HELP nv_inference_request_summary_us Summary of inference request duration in microseconds
# TYPE nv_inference_request_summary_us summary
nv_inference_request_summary_us_count{model="ranker",version="1"} 7
nv_inference_request_summary_us_sum{model="ranker",version="1"} 1234
"""


def samples(text: bytes) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("model", "")): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples}


def failures() -> float:
    return metrics.REGISTRY.get_sample_value("recsys_triton_scrape_failures_total") or 0.0


def test_triton_rows_and_executions_are_re_exported_per_model():
    got = samples(metrics.exposition(TRITON_TEXT))
    assert got[("recsys_triton_inference_rows_total", "ranker")] == 320
    assert got[("recsys_triton_executions_total", "ranker")] == 5
    assert got[("recsys_triton_inference_rows_total", "other")] == 5
    assert not any(name.startswith("nv_") for name, _ in got)  # only the two, renamed


def test_triton_down_leaves_the_lines_out_and_counts_the_failure():
    before = failures()
    url = f"http://127.0.0.1:{free_port()}/metrics"  # nothing listens there
    assert asyncio.run(metrics.scrape_triton(url, timeout_s=0.5)) is None
    assert failures() == before + 1
    text = metrics.exposition(None).decode()
    assert "recsys_triton_inference_rows" not in text
    assert "recsys_triton_scrape_failures_total" in text
    assert asyncio.run(metrics.scrape_triton(None)) is None  # no Triton configured: no failure
    assert failures() == before + 1
    assert metrics.triton_families("not { prometheus") == [] and failures() == before + 2


def test_rows_sent_to_the_ranker_are_a_histogram():
    def count() -> float:
        return metrics.REGISTRY.get_sample_value("recsys_rank_batch_rows_count") or 0.0

    result = {"surface": "home", "timings_ms": {"rank": 2.0}, "degraded": [],
              "cold_start": False, "candidates": 120, "rank_rows": 97}
    before = count()
    metrics.observe(result, 0.01)
    assert count() == before + 1
    assert metrics.REGISTRY.get_sample_value("recsys_rank_batch_rows_bucket", {"le": "100.0"}) \
        >= 1
    metrics.observe({**result, "rank_rows": 0}, 0.01)  # the ranker was not called
    assert count() == before + 1
