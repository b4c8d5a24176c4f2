"""Launch ``train_worker`` on N workers: in this process (``trainer=local``) or on Ray Train
(``trainer=ray``). Both run the very same loop over a torch.distributed process group: gloo on
CPU, nccl on CUDA (``recsys.device``), so the local path is the 1-worker case of the Ray one."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch.distributed as dist

from recsys import RecsysError
from recsys.runtime.ports import LOCALHOST, free_port
from recsys.train.loop import LoopConfig, train_worker

log = logging.getLogger(__name__)


def backend_for(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


@contextlib.contextmanager
def single_process_group(device: str) -> Iterator[None]:
    """A world of one on 127.0.0.1, so the DMP loop runs unchanged without a launcher."""
    if dist.is_initialized():
        yield
        return
    os.environ.setdefault("MASTER_ADDR", LOCALHOST)
    os.environ["MASTER_PORT"] = str(free_port())
    dist.init_process_group(backend_for(device), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def run_local(cfg: LoopConfig) -> dict[str, Any]:
    with single_process_group(cfg.device):
        return train_worker(cfg)


def run_ray(cfg: LoopConfig, num_workers: int, cpus_per_worker: float = 1.0,
            storage_dir: Path | None = None) -> dict[str, Any]:
    """Ray Train ``TorchTrainer`` with ``num_workers`` workers on a private local Ray (or the
    cluster ``RAY_ADDRESS`` names, when set). Returns rank 0's final state."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from recsys.runtime.quiet import quiet_libraries
    from recsys.runtime.ray_local import local_ray
    from recsys.train.loop import TrainState

    use_gpu = cfg.device == "cuda"
    worker_cfg = replace(cfg, report_to_ray=True)
    storage = Path(storage_dir or Path(cfg.checkpoint_dir).parent / "ray").resolve()
    ray_ctx = (contextlib.nullcontext() if os.environ.get("RAY_ADDRESS")
               else local_ray(num_cpus=max(2, int(num_workers * cpus_per_worker + 0.5)),
                              log_to_driver=True,  # epoch lines and progress from workers
                              # Ray Train's own actors (controller, placement-group cleaner)
                              # are quieted as the driver is: see recsys.runtime.quiet
                              runtime_env={"worker_process_setup_hook": partial(
                                  quiet_libraries, cfg.verbose)}))
    with ray_ctx:
        trainer = TorchTrainer(
            train_worker,
            train_loop_config={"loop": worker_cfg},
            scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": cpus_per_worker}),
            torch_config=TorchConfig(backend=backend_for(cfg.device)),
            run_config=RunConfig(storage_path=str(storage), name="ranker"),
        )
        result = trainer.fit()
    if result.error is not None:
        raise RecsysError(f"Ray Train failed: {type(result.error).__name__}: {result.error}")
    state = TrainState.read(Path(cfg.checkpoint_dir))
    if state is None:
        raise RecsysError("Ray Train finished without writing a training state")
    return asdict(state)
