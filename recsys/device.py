"""Decide the hardware once: CUDA torch, faiss-gpu, cupy, and a CUDA build of fbgemm-gpu.

Every probe is guarded, so a CPU machine gets one log line per missing accelerator and never an
ImportError. Code asks ``hardware()`` (cached) or ``resolve_device(cfg.device)`` instead of
probing on its own.

>>> hw = hardware(); hw.torch_cuda in (True, False)
True
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)
logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its INFO lines are noise


@dataclass(frozen=True)
class Hardware:
    torch_cuda: bool  # torch sees at least one CUDA device
    gpu_name: str | None
    faiss_gpus: int  # GPUs faiss can use (0 with faiss-cpu, or faiss-gpu on a CPU box)
    cupy: bool  # cupy imports and can run a kernel
    fbgemm_cuda: bool  # fbgemm-gpu's CUDA build is loaded (TorchRec's fused GPU kernels)

    def lines(self) -> list[str]:
        return [
            f"torch CUDA: {'yes (' + str(self.gpu_name) + ')' if self.torch_cuda else 'no'}",
            f"faiss GPUs: {self.faiss_gpus}",
            f"cupy: {'yes' if self.cupy else 'no (numpy used instead)'}",
            f"fbgemm-gpu CUDA build: {'yes' if self.fbgemm_cuda else 'no (fbgemm-gpu-cpu)'}",
        ]


def _faiss_gpus() -> int:
    try:
        import faiss

        return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
    except Exception:  # noqa: BLE001 - any failure means "no GPU FAISS"
        return 0


def _cupy_usable() -> bool:
    try:
        import cupy

        cupy.arange(1).sum()  # imports fine without a GPU; the first kernel is what fails
        return True
    except Exception:  # noqa: BLE001
        return False


def _fbgemm_cuda() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import fbgemm_gpu  # noqa: F401

        return hasattr(torch.ops.fbgemm, "dense_to_jagged") and torch.version.cuda is not None
    except Exception:  # noqa: BLE001
        return False


@functools.cache
def hardware() -> Hardware:
    """Probe once per process; log one line for every accelerator that falls back to CPU."""
    cuda = torch.cuda.is_available()
    hw = Hardware(
        torch_cuda=cuda,
        gpu_name=torch.cuda.get_device_name(0) if cuda else None,
        faiss_gpus=_faiss_gpus(),
        cupy=_cupy_usable() if cuda else False,
        fbgemm_cuda=_fbgemm_cuda(),
    )
    if not cuda:
        log.info("no CUDA device: torch, FAISS, cupy and TorchRec run on CPU")
    else:
        for ok, what in ((hw.faiss_gpus > 0, "faiss-gpu"), (hw.cupy, "cupy"),
                         (hw.fbgemm_cuda, "fbgemm-gpu (CUDA)")):
            if not ok:
                log.info("%s not usable: its CPU counterpart is used", what)
    return hw


def resolve_device(requested: str = "auto") -> torch.device:
    """Map a config value ('auto', 'cpu', 'cuda', 'cuda:1') to a usable torch.device.

    Asking for CUDA on a machine without it falls back to CPU with a warning, so one experiment
    config runs on a laptop and on a cluster.
    """
    if requested in ("auto", None):
        return torch.device("cuda" if hardware().torch_cuda else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not hardware().torch_cuda:
        log.warning("device=%s requested but no CUDA device is available: using CPU", requested)
        return torch.device("cpu")
    return device


def array_module():
    """cupy when it can run kernels, else numpy: the ``xp`` idiom for array code."""
    if hardware().cupy:
        import cupy

        return cupy
    import numpy

    return numpy
