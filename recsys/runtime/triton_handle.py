"""A running Triton server as its callers see it, and the two checks its Python backend needs.

Kept apart from the launcher (``recsys.runtime.tritonserver``) so that code which only talks to a
server (the serving layer, the benchmarks) types against the handle without the process
management, and so the environment checks are unit-testable without starting anything.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys import RecsysError

__all__ = ["TritonHandle", "TritonStartError", "check_numpy_for_stub",
           "ensure_libpython_on_ld_path"]


class TritonStartError(RecsysError):
    """The server or one of its models did not become ready (message ends with a log excerpt)."""


@dataclass
class TritonHandle:
    """A running server: where to reach it and how to read its logs."""

    host: str
    http_port: int
    grpc_port: int
    metrics_port: int
    models: tuple[str, ...]
    log_path: Path
    pid: int | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def grpc_url(self) -> str:
        """``host:port`` as ``tritonclient.grpc.InferenceServerClient`` expects it."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        """Triton's Prometheus text (``nv_inference_count``, ``nv_inference_exec_count``...)."""
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def grpc_client(self) -> Any:
        """A new gRPC client: one per thread (tritonclient clients are not shared safely), that
        ignores any HTTP proxy in the environment (see ``triton_client.channel_args``)."""
        import tritonclient.grpc as grpcclient

        from recsys.runtime.triton_client import channel_args

        return grpcclient.InferenceServerClient(self.grpc_url, channel_args=channel_args())

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """Last lines of the server's log (its stdout and stderr), for error messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])


def ensure_libpython_on_ld_path() -> str | None:
    """Put this interpreter's libpython directory first on LD_LIBRARY_PATH (in ``os.environ``).

    PyTriton's Python-backend stub links ``libpython3.x.so``; without this the system's copy
    (another patch release) is loaded against our stdlib and model loading fails with
    ``'_thread.RLock' object has no attribute '_recursion_count'``. Returns the directory added.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir or not Path(libdir).is_dir():
        return None
    parts = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    if not parts or parts[0] != libdir:
        rest = [p for p in parts if p != libdir]
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *rest])
    return libdir


def check_numpy_for_stub() -> None:
    """Refuse to start Triton's Python backend under numpy 2.

    The stub bundled with PyTriton 0.7 is built against numpy 1; under numpy 2 it hands models
    empty or corrupted input tensors and returns empty outputs, with no error of its own (seen
    with PyTriton callables, and on a GPU host with numpy 2.5 where the served ranker read item
    ids as genre ids). The launcher runs the stub under this interpreter, so its numpy is the one
    that matters.
    """
    import numpy as np

    if int(np.__version__.split(".")[0]) >= 2:
        raise TritonStartError(
            f"numpy {np.__version__} is installed but Triton's Python backend (PyTriton 0.7) "
            "needs numpy<2: under numpy 2 it answers with empty or corrupted tensors"
        )
