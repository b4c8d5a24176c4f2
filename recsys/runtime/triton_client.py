"""``infer``: one gRPC inference call with numpy in and numpy out; ``channel_args`` for clients.

tritonclient's request building (an ``InferInput`` per tensor, its Triton dtype string, the
requested outputs) is the same for every caller; getting a dtype or a non-contiguous array wrong
fails deep inside the client, so it lives here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from recsys import RecsysError

__all__ = ["TritonInferError", "channel_args", "infer", "infer_async"]


class TritonInferError(RecsysError):
    """The server answered without the requested output."""


def channel_args() -> list[tuple[str, int]]:
    """tritonclient's default gRPC channel options, plus: never through an HTTP proxy.

    gRPC honours ``http_proxy``/``https_proxy`` even for 127.0.0.1, so on a machine with a proxy
    set every call to the Triton we started next to us failed (readiness, then every request).
    Passing ``channel_args`` replaces tritonclient's defaults, hence they are repeated here.
    """
    from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions

    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.enable_http_proxy", 0),
    ]


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

    result = client.infer(model_name, _request(inputs),
                          outputs=[grpcclient.InferRequestedOutput(output)],
                          client_timeout=timeout_s)
    return _output(result, model_name, output)


async def infer_async(
    client: Any,
    model_name: str,
    inputs: Mapping[str, np.ndarray],
    *,
    output: str = "score",
    timeout_s: float = 30.0,
) -> np.ndarray:
    """``infer`` on a ``tritonclient.grpc.aio.InferenceServerClient``: the caller's event loop
    serves other requests while Triton computes (the serving replica's rank stage)."""
    import tritonclient.grpc as grpcclient

    result = await client.infer(model_name, _request(inputs),
                                outputs=[grpcclient.InferRequestedOutput(output)],
                                client_timeout=timeout_s)
    return _output(result, model_name, output)


def _request(inputs: Mapping[str, np.ndarray]) -> list:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    request = []
    for name, array in inputs.items():
        array = np.ascontiguousarray(array)
        tensor = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        request.append(tensor)
    return request


def _output(result: Any, model_name: str, output: str) -> np.ndarray:
    scores = result.as_numpy(output)
    if scores is None:
        raise TritonInferError(f"{model_name} returned no output named {output!r}")
    return scores
