"""`recsys.runtime.tritonserver`: a real server answers gRPC correctly and is gone afterwards."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from recsys.runtime import port_is_open
from recsys.runtime.procs import children, running
from recsys.runtime.triton_handle import TritonHandle
from recsys.runtime.triton_repo import write_model_repository
from recsys.runtime.triton_specs import InputSpec, TensorSpec
from recsys.runtime.tritonserver import STUB, tritonserver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

torch.manual_seed(0)
RANKER = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Sigmoid()).eval()


class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def _add_model(repo: Path, name: str, model: torch.nn.Module, out_dim: int) -> None:
    """``name`` in ``repo``: TorchScript of ``model``, x [B, 4] float32 -> y [B, out_dim]."""
    model_file = repo.parent / f"{name}.pt"
    torch.jit.script(model).save(str(model_file))
    spec = InputSpec(inputs=(TensorSpec("x", "float32", (4,)),),
                     outputs=(TensorSpec("y", "float32", (out_dim,)),))
    write_model_repository(repo, name, model_file, spec, max_batch_size=16,
                           preferred_batch_sizes=(), max_queue_delay_us=1000, num_threads=1)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """Two models, so the server must load (and stop) one stub per model."""
    repo = tmp_path_factory.mktemp("triton") / "repo"
    _add_model(repo, "ranker", RANKER, 2)
    _add_model(repo, "double", Double(), 4)
    return repo


def _infer(handle: TritonHandle, model: str, x: np.ndarray) -> np.ndarray:
    with contextlib.closing(handle.grpc_client()) as client:
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        return client.infer(model, [inp], client_timeout=30).as_numpy("y")


def _assert_gone(handle: TritonHandle, stubs: list) -> None:
    """Ports closed, the tritonserver process reaped (signal 0 finds no such pid), no stubs."""
    deadline = time.monotonic() + 10
    while port_is_open(handle.grpc_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_is_open(handle.grpc_port) and not port_is_open(handle.http_port)
    assert not handle.is_alive()
    assert handle.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(handle.pid, 0)
    assert [p.pid for p in stubs if running(p)] == []


def test_tritonserver_serves_two_models_over_grpc_and_stops(repo):
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with tritonserver(repo, timeout_s=90) as handle:
        assert handle.models == ("double", "ranker")
        assert handle.grpc_url == f"127.0.0.1:{handle.grpc_port}"
        assert handle.metrics_url == f"http://127.0.0.1:{handle.metrics_port}/metrics"
        assert port_is_open(handle.grpc_port) and handle.is_alive()
        stubs = children(handle.pid, marker=STUB)
        assert len(stubs) == 2  # one stub per model instance
        got = _infer(handle, "ranker", x)
        doubled = _infer(handle, "double", x)
        log_dir = handle.log_path.parent
    with torch.inference_mode():
        np.testing.assert_allclose(got, RANKER(torch.from_numpy(x)).numpy(), atol=1e-6)
    np.testing.assert_allclose(doubled, 2 * x)
    _assert_gone(handle, stubs)
    assert not log_dir.exists()  # its own temp log folder is removed too


def test_tritonserver_stops_when_the_body_raises(repo):
    with pytest.raises(RuntimeError, match="caller failed"):
        with tritonserver(repo, timeout_s=90) as handle:
            assert handle.is_alive()
            stubs = children(handle.pid, marker=STUB)
            raise RuntimeError("caller failed")
    _assert_gone(handle, stubs)


def test_an_http_proxy_in_the_environment_is_not_used_for_loopback(repo, monkeypatch):
    """gRPC sends even 127.0.0.1 through ``http_proxy``: readiness and every call then failed
    on a machine with a proxy set. Port 9 (discard) on loopback stands in for the proxy."""
    for var in ("http_proxy", "https_proxy", "grpc_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    x = np.ones((2, 4), np.float32)
    with tritonserver(repo, timeout_s=90) as handle:
        np.testing.assert_allclose(_infer(handle, "double", x), 2 * x)
