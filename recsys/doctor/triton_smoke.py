"""Triton smoke: the real tritonserver serving a tiny TorchScript model with dynamic batching,
queried concurrently over gRPC.

It is the component with the most ways to fail (numpy 2, libpython, PATH for the stub, ports,
batching config), so the smoke takes the path the serving layer takes: a model repository written
by ``recsys.runtime.triton_repo``, served by ``recsys.runtime.tritonserver`` (Python backend), and
one ``tritonclient.grpc`` client per thread. What the batcher merged is read from Triton's own
per-model statistics (rows inferred, executions, the batch sizes it ran).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

MODEL = "doctor_ranker"
FEATURES = 8


def _repository(model: Any, root: Path) -> Path:
    """``root/repo`` holding ``model`` as TorchScript, batched up to 64 rows, 5 ms queue delay."""
    import torch

    from recsys.runtime.triton_repo import write_model_repository
    from recsys.runtime.triton_specs import InputSpec, TensorSpec

    model_file = root / "model.pt"
    torch.jit.script(model).save(str(model_file))
    spec = InputSpec(inputs=(TensorSpec("features", "float32", (FEATURES,)),),
                     outputs=(TensorSpec("score", "float32", (1,)),))
    write_model_repository(root / "repo", MODEL, model_file, spec, fmt="torchscript",
                           max_batch_size=64, preferred_batch_sizes=(), max_queue_delay_us=5000,
                           num_threads=1)
    return root / "repo"


def _batch_stats(client: Any) -> tuple[int, int, int]:
    """(rows inferred, executions, largest batch executed) of the doctor's model so far."""
    stats = client.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
    sizes = [int(b["batch_size"]) for b in stats.get("batch_stats", [])]
    return (int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0)),
            max(sizes, default=0))


def triton_smoke(threads: int = 8, requests_per_thread: int = 8) -> str:
    """Serve Linear(8->1)+sigmoid; concurrent requests must match local torch outputs."""
    import torch
    import tritonclient.grpc as grpcclient

    from recsys.runtime.tritonserver import tritonserver

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, 1), torch.nn.Sigmoid()).eval()
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((threads, requests_per_thread, 1, FEATURES)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(xs.reshape(-1, FEATURES))).numpy()
    expected = expected.reshape(xs.shape[:3] + (1,))
    start = threading.Barrier(threads)

    with tempfile.TemporaryDirectory(prefix="recsys-doctor-") as tmp, \
            tritonserver(_repository(model, Path(tmp)), timeout_s=60) as server:

        def client_thread(t: int) -> np.ndarray:
            with contextlib.closing(server.grpc_client()) as client:
                client.is_server_live()  # connect first, so the requests leave together
                start.wait(timeout=30)  # all threads fire together so the batcher can merge
                out = []
                for x in xs[t]:
                    inp = grpcclient.InferInput("features", list(x.shape), "FP32")
                    inp.set_data_from_numpy(x)
                    res = client.infer(MODEL, [inp], client_timeout=30)
                    out.append(res.as_numpy("score"))
                return np.stack(out)

        with ThreadPoolExecutor(threads) as pool:
            got = np.stack(list(pool.map(client_thread, range(threads))))
        with contextlib.closing(server.grpc_client()) as client:
            version = client.get_server_metadata().version
            rows, batches, largest = _batch_stats(client)

    assert got.shape == expected.shape, f"response shape {got.shape} != {expected.shape}"
    err = float(np.abs(got - expected).max())
    assert err < 1e-5, f"server outputs differ from local torch by {err:.2e}"
    total = threads * requests_per_thread
    assert rows == total, f"the model ran {rows} rows for {total} requests"
    return (f"tritonserver {version}: {total} gRPC requests from {threads} threads match torch; "
            f"max merged batch {largest} ({batches} batches)")
