"""`recsys.runtime.triton_server`: a real server answers gRPC correctly and is gone afterwards."""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from pytriton.decorators import batch

from recsys.runtime import port_is_open
from recsys.runtime.procs import child_pids, cmdline
from recsys.runtime.triton import ModelBinding, Tensor, TritonHandle, triton_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]

torch.manual_seed(0)
RANKER = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Sigmoid()).eval()


@batch
def _rank(x: np.ndarray) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        return {"y": RANKER(torch.from_numpy(x)).numpy()}


@batch
def _double(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"y": x * 2}


def _binding(name: str, fn, out_dim: int) -> ModelBinding:
    return ModelBinding(name=name, infer_func=fn,
                        inputs=[Tensor(name="x", dtype=np.float32, shape=(4,))],
                        outputs=[Tensor(name="y", dtype=np.float32, shape=(out_dim,))],
                        max_batch_size=16, max_queue_delay_us=1000)


def _infer(handle: TritonHandle, model: str, x: np.ndarray) -> np.ndarray:
    with contextlib.closing(handle.grpc_client()) as client:
        inp = grpcclient.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        return client.infer(model, [inp], client_timeout=30).as_numpy("y")


def _stubs(handle: TritonHandle) -> list[int]:
    """The Python-backend stub processes (one per model instance) the server spawned."""
    stub = "triton_python_backend_stub"
    return [p for p in child_pids(handle.pid) if stub in " ".join(cmdline(p))]


def _assert_gone(handle: TritonHandle, stubs: list[int]) -> None:
    """Ports closed, the tritonserver process reaped (signal 0 finds no such pid), no stubs."""
    deadline = time.monotonic() + 10
    while port_is_open(handle.grpc_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_is_open(handle.grpc_port) and not port_is_open(handle.http_port)
    assert not handle.is_alive()
    assert handle.pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(handle.pid, 0)
    assert [p for p in stubs if cmdline(p)] == []


def test_triton_server_serves_two_models_over_grpc_and_stops():
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with triton_server([_binding("ranker", _rank, 2), _binding("double", _double, 4)]) as handle:
        assert handle.grpc_url == f"127.0.0.1:{handle.grpc_port}"
        assert port_is_open(handle.grpc_port) and handle.is_alive()
        stubs = _stubs(handle)
        assert len(stubs) == 2  # one stub per bound model
        got = _infer(handle, "ranker", x)
        doubled = _infer(handle, "double", x)
        log_dir = handle.log_path.parent
    with torch.inference_mode():
        np.testing.assert_allclose(got, RANKER(torch.from_numpy(x)).numpy(), atol=1e-6)
    np.testing.assert_allclose(doubled, 2 * x)
    _assert_gone(handle, stubs)
    assert not log_dir.exists()  # its own temp log folder is removed too


def test_triton_server_stops_when_the_body_raises():
    with pytest.raises(RuntimeError, match="caller failed"):
        with triton_server(_binding("double", _double, 4)) as handle:
            assert handle.is_alive()
            stubs = _stubs(handle)
            raise RuntimeError("caller failed")
    _assert_gone(handle, stubs)
