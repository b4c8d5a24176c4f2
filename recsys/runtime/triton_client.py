"""``infer``: one gRPC inference call with numpy in and numpy out.

tritonclient's request building (an ``InferInput`` per tensor, its Triton dtype string, the
requested outputs) is the same for every caller; getting a dtype or a non-contiguous array wrong
fails deep inside the client, so it lives here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from recsys import RecsysError

__all__ = ["TritonInferError", "infer"]


class TritonInferError(RecsysError):
    """The server answered without the requested output."""


def infer(
    client: Any,
    model_name: str,
    inputs: Mapping[str, np.ndarray],
    *,
    output: str = "score",
    timeout_s: float = 30.0,
) -> np.ndarray:
    """Send ``inputs`` (batch axis first) to ``model_name`` and return the ``output`` tensor.

    ``client`` is a ``tritonclient.grpc.InferenceServerClient`` (one per thread). Server-side
    errors, e.g. a full queue, surface as tritonclient's ``InferenceServerException``.
    """
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    request = []
    for name, array in inputs.items():
        array = np.ascontiguousarray(array)
        tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        request.append(tensor)
    result = client.infer(
        model_name, request, outputs=[grpcclient.InferRequestedOutput(output)],
        client_timeout=timeout_s,
    )
    scores = result.as_numpy(output)
    if scores is None:
        raise TritonInferError(f"{model_name} returned no output named {output!r}")
    return scores
