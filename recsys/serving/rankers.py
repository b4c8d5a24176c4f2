"""Ranker backends for the request path: the same five inputs, P(engaged) per candidate.

* ``OnnxRanker``: onnxruntime in the calling process (the benchmark's baseline, and the path
  with no network hop);
* ``TritonRanker``: the real Triton server over gRPC with a per-call deadline, so a slow or dead
  server costs at most the deadline and the request path falls back to candidate order.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np


class RankerBackend(Protocol):
    name: str

    def score(self, inputs: Mapping[str, np.ndarray], deadline_s: float) -> np.ndarray: ...

    async def score_async(self, inputs: Mapping[str, np.ndarray], deadline_s: float
                          ) -> np.ndarray: ...


class OnnxRanker:
    name = "onnx"

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), opts,
                                            providers=["CPUExecutionProvider"])

    def score(self, inputs: Mapping[str, np.ndarray], deadline_s: float = 0.0) -> np.ndarray:
        out = self.session.run(None, {k: np.ascontiguousarray(v) for k, v in inputs.items()})
        return np.asarray(out[0], np.float32).reshape(-1)

    async def score_async(self, inputs: Mapping[str, np.ndarray], deadline_s: float = 0.0
                          ) -> np.ndarray:
        """In-process: nothing to wait on, so the same call (it holds this replica's core)."""
        return self.score(inputs, deadline_s)


class TritonRanker:
    """One gRPC client per calling thread: tritonclient clients are not shared across threads
    (a replica may run requests on several)."""

    name = "triton"

    def __init__(self, url: str, model_name: str = "ranker") -> None:
        self.url, self.model_name = url, model_name
        self._local = threading.local()
        self._aio = None  # (event loop, tritonclient.grpc.aio client)

    @property
    def client(self):
        if not hasattr(self._local, "client"):
            import tritonclient.grpc as grpcclient

            self._local.client = grpcclient.InferenceServerClient(self.url)
        return self._local.client

    def score(self, inputs: Mapping[str, np.ndarray], deadline_s: float = 0.05) -> np.ndarray:
        from recsys.runtime.triton_client import infer

        return infer(self.client, self.model_name, inputs, timeout_s=deadline_s).reshape(-1)

    async def score_async(self, inputs: Mapping[str, np.ndarray], deadline_s: float = 0.05
                          ) -> np.ndarray:
        """Async gRPC with the same deadline: the replica's event loop runs other requests'
        CPU stages while this one waits on Triton."""
        from recsys.runtime.triton_client import infer_async

        scores = await infer_async(self._aio_client(), self.model_name, inputs,
                                   timeout_s=deadline_s)
        return scores.reshape(-1)

    def _aio_client(self):
        """One aio client per event loop (a grpc.aio channel belongs to the loop it was made
        on)."""
        import asyncio

        import tritonclient.grpc.aio as aioclient

        loop = asyncio.get_running_loop()
        if self._aio is None or self._aio[0] is not loop:
            self._aio = (loop, aioclient.InferenceServerClient(self.url))
        return self._aio[1]

    def live(self) -> bool:
        try:
            return bool(self.client.is_model_ready(self.model_name, client_timeout=1.0))
        except Exception:  # noqa: BLE001 - any failure means "not live"
            return False
