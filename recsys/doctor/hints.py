"""Fix hints: map a component's failure to the concrete command that fixed it before.

Each rule comes from a failure met while building this stack (see shared/DEPENDENCIES.md), so the
doctor can say "export LD_LIBRARY_PATH=..." instead of leaving the user with a server traceback.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Callable

from recsys.doctor.report import DEFAULT_FIX

FIXES: dict[str, str] = {
    "torchrec": f"{DEFAULT_FIX}  (torchrec 1.8.0 wants fbgemm-gpu-cpu==1.8.0 with torch 2.13 CPU)",
    "ray": f"{DEFAULT_FIX}; then `ray stop` to clear stale sessions and check /tmp is writable",
    "faiss": f"{DEFAULT_FIX}  (faiss-cpu==1.15.1; faiss-gpu only on CUDA images)",
    "triton": f"{DEFAULT_FIX}  (nvidia-pytriton==0.7.0 and tritonclient[grpc]==2.73.0, numpy<2)",
    "wandb": f"{DEFAULT_FIX}; check the temp dir is writable and WANDB_MODE=offline is honoured",
    "redis": "apt-get install redis-server  (the live-events log and store; redis-py==8.1.0 "
             "comes with requirements.lock)",
}


def ld_library_path_fix() -> str:
    libdir = sysconfig.get_config_var("LIBDIR")
    return f"export LD_LIBRARY_PATH={libdir}:$LD_LIBRARY_PATH"


def specific_fix(component: str, exc: BaseException) -> str | None:
    """A fix for this exact error, or None to fall back to the component's general fix."""
    text = f"{type(exc).__name__}: {exc}"
    if "_recursion_count" in text or "libpython" in text:
        return f"{ld_library_path_fix()}  (PyTriton's stub must load this interpreter's libpython)"
    if "numpy" in text and ("<2" in text or "NumPy 2" in text or "numpy 2" in text):
        return ("numpy must be <2 for PyTriton: pip install 'numpy==1.26.4' "
                "(with pyarrow<=25 and pandas 2.x)")
    if "libtorch_cuda.so" in text:
        return ("CUDA fbgemm-gpu installed next to CPU torch: "
                "pip uninstall -y fbgemm-gpu && pip install --no-deps fbgemm-gpu-cpu==1.8.0")
    if "undefined symbol" in text and "fbgemm" in text:
        return "fbgemm-gpu-cpu must match torch (1.8.0 <-> torch 2.13): " + DEFAULT_FIX
    if isinstance(exc, ImportError):
        missing = getattr(exc, "name", None)
        return f"{DEFAULT_FIX}  (cannot import {missing or 'a dependency'})"
    if isinstance(exc, TimeoutError):
        return (f"rerun `python -m recsys.doctor --only {component} --verbose` to see its logs; "
                f"then {FIXES.get(component, DEFAULT_FIX)}")
    return None


def hint_for(component: str) -> Callable[[BaseException], str | None]:
    """Bind ``specific_fix`` to one component, in the shape ``Check.hint`` expects."""
    return lambda exc: specific_fix(component, exc)
