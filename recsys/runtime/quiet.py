"""Keep the libraries' chatter out of what a user reads: one switch for every entry point
(``train.py``, ``python -m serve``, the doctor, each Ray Train worker).

What is filtered is known and harmless on a working machine, and filtered where it comes from:
fbgemm's "Successfully loaded" and TBE argument dumps and TorchRec's planner report (both log on
the root logger, so a filter on the root logger drops records from those packages below ERROR),
TorchRec / torch.fx / Ray / wandb banners (their loggers raised to ERROR), the deprecation and
autograd warnings TorchRec triggers inside torch, and Hugging Face's weight-loading bars. Errors
always get through. ``verbose=True`` (``hydra.verbose=true``, ``--verbose``) keeps everything.
"""

from __future__ import annotations

import logging
import os
import warnings

NOISY_LOGGERS = (
    "ray", "faiss", "faiss.loader", "torchrec", "fbgemm_gpu", "torch.fx._symbolic_trace",
    "torch.distributed", "tritonclient", "wandb", "sentence_transformers", "transformers",
    "filelock", "urllib3", "httpx",
)
NOISY_WARNING_MODULES = r"(torchrec|fbgemm_gpu|torch|ray|tritonclient|wandb)(\..*)?"
# packages that log on the root logger (logging.info(...) in their own code)
ROOT_LOGGING_PACKAGES = ("/fbgemm_gpu/", "/torchrec/")


class FromPackages(logging.Filter):
    """Drops records below ERROR that were logged from files inside ``packages``."""

    def __init__(self, packages: tuple[str, ...]) -> None:
        super().__init__()
        self.packages = packages

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not any(
            p in record.pathname for p in self.packages)


class WarningsAndAbove(logging.Filter):
    """For a logger whose library resets its level (Ray Serve sets ``ray.serve`` to INFO when it
    starts): its start-up chatter goes, its warnings and errors stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_libraries(verbose: bool = False) -> None:
    """Set env vars (some libraries read them once, at import) and log levels. Idempotent."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no banner, no network call
    os.environ.setdefault("WANDB_SILENT", "true")
    if verbose:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    root = logging.getLogger()
    if not any(isinstance(f, FromPackages) for f in root.filters):
        root.addFilter(FromPackages(ROOT_LOGGING_PACKAGES))
    serve_log = logging.getLogger("ray.serve")  # this process's; replicas log on their own
    if not any(isinstance(f, WarningsAndAbove) for f in serve_log.filters):
        serve_log.addFilter(WarningsAndAbove())
    warnings.filterwarnings("ignore", module=NOISY_WARNING_MODULES)
    warnings.filterwarnings("ignore", message=".*resource_tracker.*")
