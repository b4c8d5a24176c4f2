"""Triton Python-backend model that serves an exported ranker (TorchScript or ONNX).

``recsys.runtime.triton_repo`` copies this file as ``<repo>/<model>/1/model.py``; the Triton
Python-backend stub runs it, not this package, so it imports nothing from ``recsys``. Everything it
needs comes from ``config.pbtxt``: tensor names and dtypes, plus the parameters ``model_format``
(``torchscript`` or ``onnx``), ``model_file`` and ``num_threads``.

Why a Python backend at all: the Triton binary bundled with PyTriton has only this backend. Why one
forward pass per ``execute`` call: the dynamic batcher hands over several requests at once, and
only running them as one concatenated batch turns that into throughput.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside the stub (tests of merge_requests/split_rows)
    pb_utils = None


def merge_requests(
    per_request: list[dict[str, np.ndarray]], names: list[str]
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Concatenate every request's inputs along the batch axis; also return each one's rows."""
    sizes = [int(req[names[0]].shape[0]) for req in per_request]
    if len(per_request) == 1:
        return dict(per_request[0]), sizes
    return {n: np.concatenate([req[n] for req in per_request]) for n in names}, sizes


def split_rows(output: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Cut one batched output back into per-request pieces (inverse of ``merge_requests``)."""
    if output.shape[0] != sum(sizes):
        raise ValueError(f"model returned {output.shape[0]} rows for {sum(sizes)} input rows")
    return np.split(output, np.cumsum(sizes)[:-1])


class _TorchScriptRunner:
    def __init__(self, path: Path, device: str, threads: int) -> None:
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(device)
        self.model = torch.jit.load(str(path), map_location=self.device).eval()

    def __call__(self, batch: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            args = [torch.from_numpy(batch[n]).to(self.device) for n in names]
            out = self.model(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.detach().cpu().numpy() for o in outs]


class _OnnxRunner:
    def __init__(self, path: Path, gpu_id: int | None, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers: list[Any] = ["CPUExecutionProvider"]
        if gpu_id is not None:
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": gpu_id}))
        self.session = ort.InferenceSession(str(path), options, providers=providers)

    def __call__(self, batch: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        return self.session.run(None, {n: batch[n] for n in names})


class TritonPythonModel:
    """The class the Python backend instantiates, once per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.input_names = [t["name"] for t in config["input"]]
        self.outputs = [
            (t["name"], pb_utils.triton_string_to_numpy(t["data_type"])) for t in config["output"]
        ]
        path = Path(args["model_repository"]) / args["model_version"] / params["model_file"]
        threads = int(params.get("num_threads", "0") or 0)
        gpu_id = None
        if args.get("model_instance_kind") == "GPU":
            gpu_id = int(args["model_instance_device_id"])
        fmt = params["model_format"]
        if fmt == "torchscript":
            device = "cpu" if gpu_id is None else f"cuda:{gpu_id}"
            self.run = _TorchScriptRunner(path, device, threads)
        elif fmt == "onnx":
            self.run = _OnnxRunner(path, gpu_id, threads)
        else:
            raise ValueError(f"unknown model_format {fmt!r} in config.pbtxt parameters")

    def execute(self, requests: list[Any]) -> list[Any]:
        per_request = [
            {n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.input_names}
            for r in requests
        ]
        try:
            batch, sizes = merge_requests(per_request, self.input_names)
            outputs = self.run(batch, self.input_names)
            pieces = [split_rows(o, sizes) for o in outputs]
        except Exception as exc:  # noqa: BLE001 - every request gets the error, none hangs
            error = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses = []
        for i in range(len(requests)):
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(pieces[k][i], dtype=dtype))
                for k, (name, dtype) in enumerate(self.outputs)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        self.run = None
