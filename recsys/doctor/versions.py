"""The version table: what is installed and whether each component's GPU build is in use.

Versions come from package metadata (no import, so a broken library still gets a row); the GPU
column comes from ``recsys.device.hardware()``, the same probe the rest of the code trusts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from recsys.device import hardware

NO_GPU_VARIANT = "-"


def installed(*dists: str) -> tuple[str, str] | None:
    """(distribution, version) of the first of ``dists`` that is installed, else None."""
    for dist in dists:
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _torch_gpu() -> str:
    import torch

    if torch.version.cuda is None:
        return "no (CPU build)"
    hw = hardware()
    if hw.torch_cuda:
        return f"yes (CUDA {torch.version.cuda}, {hw.gpu_name})"
    return f"no (CUDA {torch.version.cuda} build, no device visible)"


def _fbgemm_gpu() -> str:
    found = installed("fbgemm-gpu", "fbgemm-gpu-cpu", "fbgemm-gpu-genai")
    build = f"{found[0]} {found[1]}" if found else "fbgemm-gpu missing"
    return f"yes ({build})" if hardware().fbgemm_cuda else f"no ({build})"


def _faiss_gpu() -> str:
    n = hardware().faiss_gpus
    return f"yes ({n} GPU{'s' if n != 1 else ''})" if n else "no (0 GPUs)"


def _cupy_gpu() -> str:
    if installed("cupy-cuda12x", "cupy-cuda11x", "cupy") is None:
        return "no (not installed; numpy used)"
    return "yes (kernels run)" if hardware().cupy else "no (installed, not usable; numpy used)"


def _triton_gpu() -> str:
    return "yes (CUDA device visible)" if hardware().torch_cuda else "no (CPU only)"


@dataclass(frozen=True)
class Component:
    label: str
    dists: tuple[str, ...]  # first installed one wins (e.g. faiss-gpu before faiss-cpu)
    gpu: Callable[[], str] | None = None  # None: the component has no GPU build


COMPONENTS: tuple[Component, ...] = (
    Component("torch", ("torch",), _torch_gpu),
    Component("torchrec", ("torchrec",), _fbgemm_gpu),
    Component("faiss", ("faiss-gpu-cu12", "faiss-gpu", "faiss-cpu"), _faiss_gpu),
    Component("cupy", ("cupy-cuda12x", "cupy-cuda11x", "cupy"), _cupy_gpu),
    Component("ray", ("ray",)),
    Component("tritonclient", ("tritonclient",)),
    Component("nvidia-pytriton", ("nvidia-pytriton",), _triton_gpu),
    Component("hydra-core", ("hydra-core",)),
    Component("wandb", ("wandb",)),
    Component("pandas", ("pandas",)),
    Component("pyarrow", ("pyarrow",)),
    Component("numpy", ("numpy",)),
)


@dataclass(frozen=True)
class VersionRow:
    component: str
    version: str  # "not installed" when no distribution is found
    gpu: str


def version_rows(components: tuple[Component, ...] = COMPONENTS) -> list[VersionRow]:
    """One row per component; a probe that raises reports its error instead of crashing."""
    rows = []
    for comp in components:
        found = installed(*comp.dists)
        version = "not installed" if found is None else found[1]
        if found is not None and found[0] != comp.label:
            version = f"{version} ({found[0]})"  # say which build: faiss-gpu or faiss-cpu
        gpu = NO_GPU_VARIANT
        if comp.gpu is not None:
            try:
                gpu = comp.gpu()
            except Exception as exc:  # noqa: BLE001 - a probe failure is a table cell, not a crash
                gpu = f"probe failed: {type(exc).__name__}"
        rows.append(VersionRow(comp.label, version, gpu))
    return rows
