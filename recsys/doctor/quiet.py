"""Silence the libraries' start-up chatter so the doctor prints a readable table.

Ray, the FAISS loader, TorchRec, torch.fx, tritonclient and wandb each log banners or warnings
that are noise on a working CPU machine (Triton's own log goes to a file: see
``recsys.runtime.tritonserver``). ``--verbose`` keeps them (and shows tracebacks).
"""

from __future__ import annotations

import logging
import os
import warnings

NOISY_LOGGERS = (
    "ray", "faiss", "faiss.loader", "torchrec", "fbgemm_gpu", "torch.fx._symbolic_trace",
    "torch.distributed", "tritonclient", "wandb",
)
NOISY_WARNING_MODULES = r"(torchrec|fbgemm_gpu|torch|ray|tritonclient|wandb)(\..*)?"


def quiet_libraries(verbose: bool = False) -> None:
    """Set env vars and log levels before the libraries are imported (some read them once)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no banner, no network call
    os.environ.setdefault("WANDB_SILENT", "true")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if verbose:
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=NOISY_WARNING_MODULES)
    warnings.filterwarnings("ignore", message=".*resource_tracker.*")
