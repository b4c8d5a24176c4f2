"""What both ways of running Triton share, without importing PyTriton's Python package.

``recsys.runtime.triton`` serves Python callables through PyTriton (it needs PyTriton's client
stack: zmq, gevent...); ``recsys.runtime.tritonserver`` runs the bundled binary over a model
repository and needs only the files of the ``nvidia-pytriton`` wheel. Keeping the handle, the
start error and the libpython fix here lets the second path (the one production uses) import
without the first one's dependencies, e.g. on a GPU host that carries only the wheel's files.
"""

from __future__ import annotations

import os
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
    _server: Any = field(default=None, repr=False)  # pytriton's TritonServer process wrapper

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
        """A new gRPC client: one per thread (tritonclient clients are not shared safely)."""
        import tritonclient.grpc as grpcclient

        return grpcclient.InferenceServerClient(self.grpc_url)

    def is_alive(self) -> bool:
        return self._server is not None and self._server.is_alive()

    def log_tail(self, lines: int = 15) -> str:
        """Last server log lines (file log plus the process's own stdout), for error messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        if self._server is not None:
            text += self._server.logs()
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
    ids as genre ids). Both ways of starting Triton run the stub under this interpreter, so its
    numpy is the one that matters.
    """
    import numpy as np

    if int(np.__version__.split(".")[0]) >= 2:
        raise TritonStartError(
            f"numpy {np.__version__} is installed but Triton's Python backend (PyTriton 0.7) "
            "needs numpy<2: under numpy 2 it answers with empty or corrupted tensors"
        )
