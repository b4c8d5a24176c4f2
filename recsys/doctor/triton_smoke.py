"""Triton smoke: a real PyTriton server with dynamic batching, queried concurrently over gRPC.

It is the component with the most ways to fail (numpy 2, libpython, ports, batching config), so
the smoke exercises the same path the serving layer uses: ``recsys.runtime.triton_server``, a
``@batch`` infer function and one ``tritonclient.grpc`` client per thread.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def triton_smoke(threads: int = 8, requests_per_thread: int = 8) -> str:
    """Serve Linear(8->1)+sigmoid; concurrent requests must match local torch outputs."""
    import torch
    import tritonclient.grpc as grpcclient
    from pytriton.decorators import batch

    from recsys.runtime.triton import ModelBinding, Tensor, triton_server

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 1), torch.nn.Sigmoid()).eval()
    seen: list[int] = []
    lock = threading.Lock()

    @batch
    def infer(features: np.ndarray) -> dict[str, np.ndarray]:
        with lock:
            seen.append(int(features.shape[0]))  # rows after the server merged requests
        with torch.inference_mode():
            return {"score": model(torch.from_numpy(features)).numpy()}

    binding = ModelBinding(
        name="doctor_ranker", infer_func=infer,
        inputs=[Tensor(name="features", dtype=np.float32, shape=(8,))],
        outputs=[Tensor(name="score", dtype=np.float32, shape=(1,))],
        max_batch_size=64, max_queue_delay_us=5000,
    )
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((threads, requests_per_thread, 1, 8)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(xs.reshape(-1, 8))).numpy().reshape(xs.shape[:3] + (1,))
    start = threading.Barrier(threads)

    with triton_server(binding, startup_timeout_s=60) as server:

        def client_thread(t: int) -> np.ndarray:
            with contextlib.closing(grpcclient.InferenceServerClient(server.grpc_url)) as client:
                start.wait(timeout=30)  # all threads fire together so the batcher can merge
                out = []
                for x in xs[t]:
                    inp = grpcclient.InferInput("features", list(x.shape), "FP32")
                    inp.set_data_from_numpy(x)
                    res = client.infer(binding.name, [inp], client_timeout=30)
                    out.append(res.as_numpy("score"))
                return np.stack(out)

        with ThreadPoolExecutor(threads) as pool:
            got = np.stack(list(pool.map(client_thread, range(threads))))
        with contextlib.closing(grpcclient.InferenceServerClient(server.grpc_url)) as client:
            version = client.get_server_metadata().version

    assert got.shape == expected.shape, f"response shape {got.shape} != {expected.shape}"
    err = float(np.abs(got - expected).max())
    assert err < 1e-5, f"server outputs differ from local torch by {err:.2e}"
    total = threads * requests_per_thread
    assert sum(seen) == total, f"infer func saw {sum(seen)} rows for {total} requests"
    return (f"tritonserver {version}: {total} gRPC requests from {threads} threads match torch; "
            f"max merged batch {max(seen)} ({len(seen)} batches)")
