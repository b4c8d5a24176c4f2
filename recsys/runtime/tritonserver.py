"""``tritonserver``: the tritonserver binary bundled with PyTriton, serving a model repository.

The one way this project runs Triton: it serves *files* (a repository written by
``recsys.runtime.triton_repo``), the way production Triton does, so the exported model is what
answers. The binary and the Python-backend libraries come from the ``nvidia-pytriton`` wheel,
prepared as PyTriton 0.7 itself does (``Triton._prepare_triton_inference_server`` and
``TritonServer._get_env``) without importing PyTriton's Python package:

* the backend folder is copied to a workspace together with the stub built for *this* Python
  version (the wheel keeps one stub per version in a folder the backend does not look in);
* the wheel's bundled libraries go on LD_LIBRARY_PATH, after this interpreter's own libpython
  (``ensure_libpython_on_ld_path``: the stub must not load the system's libpython);
* this interpreter's bin folder goes first on PATH: the stub's embedded Python takes its prefix
  (hence site-packages with torch, numpy, onnxruntime) from the first ``python3`` on PATH, and it
  ignores PYTHONPATH, so PATH is the only lever.

Readiness is polled over gRPC with tritonclient, with our own deadline while watching the process;
a server that exits or never gets ready becomes a ``TritonStartError`` carrying the error lines of
its log. The log (stdout and stderr, including the CUDA warnings a CPU machine cannot act on) goes
to a file, never to the console. On exit the server gets SIGINT, then SIGKILL after a grace
period, and any Python-backend stub it leaves orphaned is killed and its shared memory freed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from recsys.runtime.ports import LOCALHOST, free_ports
from recsys.runtime.procs import children, reap
from recsys.runtime.triton_handle import (
    TritonHandle,
    TritonStartError,
    check_numpy_for_stub,
    ensure_libpython_on_ld_path,
)

__all__ = ["STUB", "TritonHandle", "TritonStartError", "pytriton_dist", "tritonserver"]

log = logging.getLogger(__name__)

STUB = "triton_python_backend_stub"


def pytriton_dist() -> Path:
    """``<site-packages>/pytriton/tritonserver``: the binary, backends and per-Python stubs.

    Found without importing ``pytriton`` (its ``__init__`` pulls in PyTriton's whole client stack,
    zmq and gevent included), since serving a repository needs only the wheel's files.
    """
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonStartError("nvidia-pytriton is not installed (it ships tritonserver)")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def _bundled_libs() -> Path:
    """The wheel's vendored libraries (auditwheel's ``nvidia_pytriton.libs`` beside the package;
    ``tritonserver/external_libs`` in an editable install), as PyTriton's ``get_libs_path``."""
    dist = pytriton_dist()
    wheel = dist.parent.parent / "nvidia_pytriton.libs"
    return wheel if wheel.is_dir() else dist / "external_libs"


def _prepare_backends(workspace: Path) -> Path:
    """Copy the Python backend plus this interpreter's stub into ``workspace``; return the
    ``--backend-directory`` to pass."""
    dist = pytriton_dist()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / STUB
    if not stub.is_file():
        raise TritonStartError(f"PyTriton ships no Python-backend stub for Python {version}")
    python_dir = workspace / "backends" / "python"
    shutil.copytree(dist / "backends" / "python", python_dir,
                    ignore=shutil.ignore_patterns("__pycache__", STUB))
    shutil.copy2(stub, python_dir / STUB)
    return workspace / "backends"


def _prepend(paths: list[str], existing: str | None) -> str:
    parts = [*paths, *(existing or "").split(os.pathsep)]
    return os.pathsep.join(dict.fromkeys(p for p in parts if p))


def server_env() -> dict[str, str]:
    """Environment for tritonserver and the stubs it spawns (see the module docstring)."""
    ensure_libpython_on_ld_path()
    env = os.environ.copy()
    libs = env.get("LD_LIBRARY_PATH", "")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libs, str(_bundled_libs())) if p)
    env["PATH"] = _prepend([str(Path(sys.executable).parent)], env.get("PATH"))
    return env


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the launching thread dies (as PyTriton does),
    so a killed test run cannot leave a server holding its ports."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _models(repo_dir: Path) -> tuple[str, ...]:
    if not repo_dir.is_dir():
        raise TritonStartError(f"model repository not found: {repo_dir}")
    models = tuple(sorted(p.parent.name for p in repo_dir.glob("*/config.pbtxt")))
    if not models:
        raise TritonStartError(f"no <model>/config.pbtxt under {repo_dir}")
    return models


def _ready(handle: TritonHandle) -> bool:
    """Server live and every model loaded (``--strict-readiness`` is on by default).

    A new client per probe: a gRPC channel that found the port closed backs off for a second or
    more before it tries again, which would delay noticing a server that has just come up.
    """
    from tritonclient.utils import InferenceServerException

    try:
        with contextlib.closing(handle.grpc_client()) as client:
            return bool(client.is_server_live(client_timeout=1.0)
                        and client.is_server_ready(client_timeout=1.0))
    except InferenceServerException:  # not listening yet (UNAVAILABLE), or still loading
        return False


def _log_excerpt(handle: TritonHandle, errors: int = 5, tail: int = 5) -> str:
    """Triton's error lines (``E1125 ...``) and failed-model rows, then the last lines.

    The plain tail is usually the start-up options table and the shutdown countdown; the cause
    (a model that failed to load, and why) sits further up.
    """
    lines = handle.log_tail(lines=10_000).splitlines()
    picked = [ln for ln in lines if (re.match(r"E\d{4} ", ln) and "CudaDriverHelper" not in ln)
              or "UNAVAILABLE" in ln][-errors:]
    picked += [ln for ln in lines[-tail:] if ln not in picked]
    return "\n".join(ln if len(ln) <= 800 else ln[:800] + " ..." for ln in picked)


def _start_error(handle: TritonHandle, what: str) -> TritonStartError:
    tail = _log_excerpt(handle)
    hint = ""
    if "ModuleNotFoundError" in tail:
        hint = (f"\n(the Python-backend stub imports from the first python3 on PATH; expected "
                f"{Path(sys.executable).parent / 'python3'})")
    elif "_recursion_count" in tail:
        hint = "\n(the stub loaded another libpython: check LD_LIBRARY_PATH)"
    return TritonStartError(f"{what}:\n{tail}{hint}")


def _wait_ready(handle: TritonHandle, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not _ready(handle):
        if not handle.is_alive():
            raise _start_error(handle, "tritonserver exited during start-up")
        if time.monotonic() > deadline:
            raise _start_error(
                handle, f"tritonserver not ready after {timeout_s:.0f}s on {handle.grpc_url}"
            )
        time.sleep(0.1)


def _stop(popen: subprocess.Popen, shm_prefix: str, wait_s: float) -> None:
    """SIGINT, wait, SIGKILL; then reap stubs that outlived the server and free their shm."""
    stubs = children(popen.pid, marker=STUB)  # recorded while the server still owns them
    if popen.poll() is None:
        popen.send_signal(signal.SIGINT)
        try:
            popen.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            log.warning("tritonserver pid %s alive %.0fs after SIGINT; killing", popen.pid, wait_s)
            popen.kill()
            popen.wait()
    for proc in reap(stubs):
        log.warning("killed orphaned %s pid %s", STUB, proc.pid)
    for region in Path("/dev/shm").glob(f"{shm_prefix}*"):
        with contextlib.suppress(OSError):
            region.unlink()


@contextlib.contextmanager
def tritonserver(
    repo_dir: str | Path,
    *,
    host: str = LOCALHOST,
    timeout_s: float = 60.0,
    log_verbose: int = 0,
    exit_timeout_s: int = 5,
    log_dir: str | Path | None = None,
    load_models: Sequence[str] | None = None,
) -> Iterator[TritonHandle]:
    """Serve every model in ``repo_dir`` on free HTTP/gRPC/metrics ports of ``host``.

    Yields a ``TritonHandle`` (host, ports, ``grpc_url``, ``grpc_client()``, ``log_tail()``) once
    the server and all its models are ready; raises ``TritonStartError`` if the server exits or is
    not ready within ``timeout_s``. The server log goes to ``log_dir/tritonserver.log`` (a temporary
    folder, removed on exit, unless ``log_dir`` is given). ``exit_timeout_s`` bounds the server's
    own wait for in-flight requests at shutdown. ``load_models``: explicit model control
    (``--model-control-mode=explicit``): only these models are loaded at start, and the caller
    loads and unloads others while it runs (``triton_models.ServedModels``); None: every model.
    """
    repo_dir = Path(repo_dir).resolve()
    models = _models(repo_dir)
    if load_models is not None:
        missing = sorted(set(load_models) - set(models))
        if missing:
            raise TritonStartError(f"no model {missing} under {repo_dir}")
        models = tuple(load_models)
    check_numpy_for_stub()  # the stub runs under this interpreter (see server_env)
    dist = pytriton_dist()
    with contextlib.ExitStack() as stack:
        workspace = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="recsys-tis-")))
        logs = workspace if log_dir is None else Path(log_dir)
        logs.mkdir(parents=True, exist_ok=True)
        backends = _prepare_backends(workspace)
        http_port, grpc_port, metrics_port = free_ports(3, host)
        shm_prefix = f"recsys{os.getpid()}-{secrets.token_hex(4)}-"
        cmd = [
            str(dist / "bin" / "tritonserver"),
            f"--model-repository={repo_dir}",
            f"--backend-directory={backends}",
            f"--cache-directory={dist / 'caches'}",
            f"--http-address={host}", f"--http-port={http_port}",
            f"--grpc-address={host}", f"--grpc-port={grpc_port}",
            f"--metrics-address={host}", f"--metrics-port={metrics_port}",
            "--allow-gpu-metrics=false",
            f"--log-verbose={log_verbose}",
            f"--exit-timeout-secs={exit_timeout_s}",
            f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
        ]
        if load_models is not None:
            cmd += ["--model-control-mode=explicit", *(f"--load-model={m}" for m in models)]
        handle = TritonHandle(
            host=host, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
            models=models, log_path=logs / "tritonserver.log",
        )
        log_file = stack.enter_context(open(handle.log_path, "wb"))
        popen = subprocess.Popen(
            cmd, env=server_env(), stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, cwd=workspace, preexec_fn=_die_with_parent,
        )
        handle.pid, handle.process = popen.pid, popen
        stack.callback(_stop, popen, shm_prefix, exit_timeout_s + 10.0)
        _wait_ready(handle, timeout_s)
        log.info("tritonserver serving %s on %s (pid %s)", models, handle.grpc_url, popen.pid)
        yield handle
