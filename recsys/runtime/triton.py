"""``triton_server``: a real Triton Inference Server (via PyTriton) on 127.0.0.1, torn down on exit.

PyTriton's own ``run()`` waits up to 120 s for readiness while holding a lock that ``stop()`` also
needs, so a server that dies during start-up hangs the caller for two minutes. Here the process is
started, then readiness is polled with our own deadline while watching the process, and only then
are the models loaded; start-up failures become one ``TritonStartError`` with the server's last log
lines. The two environment fixes that PyTriton needs on this stack (numpy<2 and the interpreter's
own libpython on LD_LIBRARY_PATH) are checked/applied here, not left to every caller. On exit the
server is stopped and any Python-backend stub it leaves orphaned is killed (see ``procs``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from recsys.runtime.ports import LOCALHOST, free_ports
from recsys.runtime.procs import child_pids, cmdline, reap
from recsys.runtime.triton_handle import (  # re-exported: the names callers import from here
    TritonHandle,
    TritonStartError,
    check_numpy_for_stub,
    ensure_libpython_on_ld_path,
)

__all__ = [
    "DynamicBatcher", "ModelBinding", "ModelConfig", "Tensor", "TritonHandle", "TritonStartError",
    "ensure_libpython_on_ld_path", "triton_server",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelBinding:
    """One model to serve: what ``Triton.bind`` needs, with dynamic batching on by default."""

    name: str
    infer_func: Callable[..., Any]
    inputs: Sequence[Tensor]
    outputs: Sequence[Tensor]
    max_batch_size: int = 64
    max_queue_delay_us: int = 2000
    config: ModelConfig | None = None  # overrides the two batching fields when given

    def model_config(self) -> ModelConfig:
        if self.config is not None:
            return self.config
        return ModelConfig(
            max_batch_size=self.max_batch_size,
            batcher=DynamicBatcher(max_queue_delay_microseconds=self.max_queue_delay_us),
        )


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """First line of an error plus its innermost ``XxxError: ...`` line (server tracebacks)."""
    text = str(exc).replace("Traceback (most recent call last):", "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    inner = [ln for ln in lines[1:] if ln.split(":")[0].endswith(("Error", "Exception"))]
    text = lines[0] if not inner else f"{lines[0]} ... {inner[-1]}"
    return text[:limit]


def _server_ready(handle: TritonHandle) -> bool:
    try:
        with contextlib.closing(handle.grpc_client()) as client:
            return bool(client.is_server_live() and client.is_server_ready())
    except Exception:  # noqa: BLE001 - not listening yet looks like any connection error
        return False


def _start(triton: Triton, handle: TritonHandle, timeout_s: float) -> None:
    # pytriton 0.7.0 internals, used on purpose: build the process wrapper first so its stdout
    # echo can be turned off (logs stay readable via handle.log_tail()), then start the process
    # without PyTriton's lock-holding 120 s wait.
    triton._initialize_server()
    server = triton._triton_server
    server._verbose = False
    handle._server = server
    triton._run_server()
    running = getattr(server, "_tritonserver_running_cmd", None)
    handle.pid = getattr(running, "pid", None)
    deadline = time.monotonic() + timeout_s
    while not _server_ready(handle):
        if not server.is_alive():
            raise TritonStartError(f"tritonserver exited during start-up:\n{handle.log_tail()}")
        if time.monotonic() > deadline:
            raise TritonStartError(
                f"tritonserver not ready after {timeout_s:.0f}s on {handle.grpc_url}:\n"
                f"{handle.log_tail()}"
            )
        time.sleep(0.1)
    try:
        triton.connect()  # loads the bound models; quick now that the server answers
    except Exception as exc:  # noqa: BLE001 - any load failure is reported the same way
        hint = ""
        if "_recursion_count" in str(exc):
            hint = f" (set LD_LIBRARY_PATH={sysconfig.get_config_var('LIBDIR')}:$LD_LIBRARY_PATH)"
        raise TritonStartError(f"model load failed: {_one_line(exc)}{hint}") from exc
    with contextlib.closing(handle.grpc_client()) as client:
        missing = [m for m in handle.models if not client.is_model_ready(m)]
    if missing:
        raise TritonStartError(f"models not ready: {missing}:\n{handle.log_tail()}")


class _DropExpectedExit(logging.Filter):
    """PyTriton warns 'exited with failure' when *we* stop the server with SIGINT; hide that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "exited with failure" not in record.getMessage()


_STUB = "triton_python_backend_stub"


def _reap_stubs(stubs: dict[int, list[str]]) -> None:
    """Kill Python-backend stubs that outlived the server, and free their shared memory."""
    for pid in reap(stubs, marker=_STUB):
        argv = stubs[pid]
        log.warning("killed orphaned %s pid %s", _STUB, pid)
        # argv[2] is the stub's shm region; PyTriton names it pytrtion<our pid>-<hash>...
        if len(argv) > 2 and argv[2].startswith(f"pytrtion{os.getpid()}-"):
            with contextlib.suppress(OSError):
                Path("/dev/shm", argv[2]).unlink()


def _stop(triton: Triton, handle: TritonHandle, wait_s: float = 10.0) -> None:
    stubs = {}
    if handle.pid is not None:
        stubs = {p: cmdline(p) for p in child_pids(handle.pid)}
        stubs = {p: argv for p, argv in stubs.items() if _STUB in " ".join(argv)}
    server_log = logging.getLogger("pytriton.server.triton_server")
    drop = _DropExpectedExit()
    server_log.addFilter(drop)
    try:
        triton.stop()
        deadline = time.monotonic() + wait_s
        while handle.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if handle.is_alive():
            log.warning("tritonserver pid %s still alive after stop; killing it", handle.pid)
            handle._server._tritonserver_running_cmd.process.kill()
    finally:
        server_log.removeFilter(drop)
        _reap_stubs(stubs)


@contextlib.contextmanager
def triton_server(
    bindings: ModelBinding | Sequence[ModelBinding],
    *,
    host: str = LOCALHOST,
    startup_timeout_s: float = 60.0,
    exit_timeout_s: int = 1,
    log_dir: Path | None = None,
) -> Iterator[TritonHandle]:
    """Serve ``bindings`` on free HTTP/gRPC/metrics ports of ``host``; stop the server on exit.

    ``infer_func`` runs in this process (PyTriton proxies requests to it), so it can record what it
    sees, e.g. merged batch sizes. Raises ``TritonStartError`` if the server exits or is not ready
    within ``startup_timeout_s``. ``exit_timeout_s`` bounds the wait for in-flight requests at stop
    (0 makes the Python backend exit non-gracefully and leak shared memory, hence 1).
    """
    bindings = [bindings] if isinstance(bindings, ModelBinding) else list(bindings)
    if not bindings:
        raise ValueError("triton_server needs at least one ModelBinding")
    check_numpy_for_stub()
    ensure_libpython_on_ld_path()
    own_dir = log_dir is None
    log_dir = Path(tempfile.mkdtemp(prefix="recsys-triton-")) if log_dir is None else log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port, metrics_port = free_ports(3, host)
    handle = TritonHandle(
        host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
        models=tuple(b.name for b in bindings), log_path=log_dir / "tritonserver.log",
    )
    config = TritonConfig(
        http_address=host, http_port=http_port, grpc_address=host, grpc_port=grpc_port,
        metrics_address=host, metrics_port=metrics_port, allow_gpu_metrics=False,
        log_file=handle.log_path, exit_timeout_secs=exit_timeout_s,
    )
    triton = Triton(config=config)
    try:
        for b in bindings:
            triton.bind(model_name=b.name, infer_func=b.infer_func, inputs=list(b.inputs),
                        outputs=list(b.outputs), config=b.model_config())
        _start(triton, handle, startup_timeout_s)
        log.info("triton serving %s on %s (pid %s)", handle.models, handle.grpc_url, handle.pid)
        yield handle
    finally:
        _stop(triton, handle)
        if own_dir:
            shutil.rmtree(log_dir, ignore_errors=True)
