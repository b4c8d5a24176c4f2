"""Exported ranker served by a real tritonserver answers exactly like the eager model.

For TorchScript and ONNX: export the toy ranker, write a model repository (Python backend, the
one the bundled tritonserver has), start the server, then compare scores for one 37-row request
and for 8 concurrent requests, which the dynamic batcher merges into one forward pass. Afterwards
the server, its stubs and its ports must be gone.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import numpy as np
import pytest
import torch

from recsys.ranking.export import export_onnx, export_torchscript
from recsys.runtime import port_is_open
from recsys.runtime.procs import children, running
from recsys.runtime.triton_client import infer
from recsys.runtime.triton_handle import TritonHandle, TritonStartError
from recsys.runtime.triton_repo import write_model_repository
from recsys.runtime.tritonserver import STUB, tritonserver
from tests.unit.test_triton_repo import SPEC, toy_inputs, toy_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPORTERS = {"torchscript": (export_torchscript, "m.pt"), "onnx": (export_onnx, "m.onnx")}
THREADS, ROWS_PER_THREAD = 8, 5


def _numpy(inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in inputs.items()}


def _eager(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return model(**inputs).numpy()


def _stats(handle: TritonHandle, model: str) -> tuple[int, int]:
    """(rows inferred, model executions) so far: fewer executions than requests = batching."""
    with contextlib.closing(handle.grpc_client()) as client:
        s = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    return int(s.get("inference_count", 0)), int(s.get("execution_count", 0))


def _concurrent(handle: TritonHandle, model: str) -> list[tuple[dict, np.ndarray]]:
    """THREADS requests released together by a barrier; returns (inputs, scores) per thread."""
    barrier = threading.Barrier(THREADS)
    results: list = [None] * THREADS
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        inputs = toy_inputs(ROWS_PER_THREAD, seed=100 + i)
        try:
            with contextlib.closing(handle.grpc_client()) as client:
                client.is_server_live()  # connect before the barrier, so requests leave together
                barrier.wait(timeout=30)
                results[i] = (inputs, infer(client, model, _numpy(inputs)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def _assert_gone(handle: TritonHandle, stubs: list) -> None:
    deadline = time.monotonic() + 10
    ports = (handle.grpc_port, handle.http_port, handle.metrics_port)
    while any(port_is_open(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(port_is_open(p) for p in ports)
    assert not handle.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(handle.pid, 0)
    assert [p.pid for p in stubs if running(p)] == []


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_ranker_served_by_triton_matches_eager(tmp_path, fmt):
    model = toy_model()
    export, file_name = EXPORTERS[fmt]
    model_file = export(model, toy_inputs(4), tmp_path / file_name)
    # A long queue delay with a preferred size of exactly THREADS * ROWS_PER_THREAD rows: the
    # batcher waits for all concurrent requests and runs them as one batch.
    write_model_repository(
        tmp_path / "repo", "ranker", model_file, SPEC, fmt=fmt, max_batch_size=256,
        preferred_batch_sizes=[THREADS * ROWS_PER_THREAD], max_queue_delay_us=100_000,
        max_queue_size=64, num_threads=1,
    )
    with tritonserver(tmp_path / "repo", timeout_s=90) as handle:
        assert handle.models == ("ranker",)
        assert handle.grpc_url == f"127.0.0.1:{handle.grpc_port}"
        stubs = children(handle.pid, marker=STUB)
        assert len(stubs) == 1  # one stub per model instance

        batch = toy_inputs(37, seed=1)
        with contextlib.closing(handle.grpc_client()) as client:
            got = infer(client, "ranker", _numpy(batch))
        assert got.shape == (37, 1) and got.dtype == np.float32
        np.testing.assert_allclose(got, _eager(model, batch), atol=1e-5)

        rows_before, runs_before = _stats(handle, "ranker")
        for inputs, scores in _concurrent(handle, "ranker"):
            assert scores.shape == (ROWS_PER_THREAD, 1)
            np.testing.assert_allclose(scores, _eager(model, inputs), atol=1e-5)
        rows_after, runs_after = _stats(handle, "ranker")
        assert rows_after - rows_before == THREADS * ROWS_PER_THREAD
        assert runs_after - runs_before < THREADS  # dynamic batching merged requests
    _assert_gone(handle, stubs)


def test_warmup_batches_run_before_the_model_reports_ready(tmp_path):
    model = toy_model()
    model_file = export_torchscript(model, toy_inputs(4), tmp_path / "m.pt")
    write_model_repository(tmp_path / "repo", "ranker", model_file, SPEC, fmt="torchscript",
                           max_batch_size=256, warmup_batch_sizes=[37, 200], num_threads=1)
    with tritonserver(tmp_path / "repo", timeout_s=90, log_verbose=1) as handle:
        log = handle.log_path.read_text(errors="replace")
        for sample in ("rows_37", "rows_200"):  # Triton's own account of each warm-up run
            assert f"running warmup sample '{sample}'" in log
        batch = toy_inputs(37, seed=3)
        with contextlib.closing(handle.grpc_client()) as client:
            np.testing.assert_allclose(infer(client, "ranker", _numpy(batch)),
                                       _eager(model, batch), atol=1e-5)


def test_broken_model_fails_start_with_the_server_log(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torchscript file")
    write_model_repository(tmp_path / "repo", "ranker", bad, SPEC)
    with pytest.raises(TritonStartError, match="exited during start-up") as info:
        with tritonserver(tmp_path / "repo", timeout_s=90):
            pytest.fail("a broken model must not become ready")
    assert "ranker" in str(info.value)  # the log excerpt names the failing model
