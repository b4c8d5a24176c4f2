"""The training loop every worker runs: TorchRec ``DistributedModelParallel`` over the process
group that the launcher (local, or Ray Train's ``TorchTrainer``) has set up.

Embedding tables are built on the meta device and materialised shard by shard where the planner
puts them (so a 100M-row table never exists whole on one worker); their optimizer is fused into
the backward pass (TorchRec's ``apply_optimizer_in_backward``); the dense towers are wrapped in
DDP by DMP and stepped by Adam. Each epoch: train on this worker's shard of the rows, score the
validation candidates (sharded too, then gathered), checkpoint the sharded state with
``torch.distributed.checkpoint`` (which reshards on load, so a run can resume on another number
of workers), and stop early when validation NDCG@10 has not improved for ``patience`` epochs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from recsys.progress import progress_bar
from recsys.ranking.batches import BatchIterator, gather, timed
from recsys.ranking.evaluate import group_metrics
from recsys.ranking.model import ModelParams, TwoTowerRanker
from recsys.runtime.quiet import quiet_libraries
from recsys.train.handoff import WorkerData, read_worker_data
from recsys.train.plan import plan_summary, plan_text
from recsys.train.settings import RankerConfig, TrainerConfig

log = logging.getLogger(__name__)

VALIDATION_BATCH_ROWS = 8192  # candidate rows scored per validation step
STATE_FILE = "state.json"


@dataclass
class LoopConfig:
    """What one worker needs: where the prepared rows and checkpoints are, the trainer and
    ranker settings (their defaults live once, in ``recsys.train.settings``), and what the
    launcher decides (device, threads, tracking)."""

    data_dir: str
    checkpoint_dir: str
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    seed: int = 42
    threads: int | None = None  # torch intra-op threads per worker (cores / workers)
    device: str = "cpu"  # resolved already (recsys.device): cpu | cuda
    tracker: dict[str, Any] | None = None  # start_tracker kwargs; rank 0 logs each epoch
    report_to_ray: bool = False  # set by the Ray launcher: ray.train.report each epoch
    verbose: bool = False  # keep the libraries' own logs (hydra.verbose=true)


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    best_ndcg: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    plan: str = ""
    world_size: int = 1

    @classmethod
    def read(cls, directory: Path) -> TrainState | None:
        path = Path(directory) / STATE_FILE
        return cls(**json.loads(path.read_text())) if path.exists() else None

    def write(self, directory: Path) -> None:
        path = Path(directory) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)


def epoch_dir(checkpoint_dir: Path, epoch: int) -> Path:
    return Path(checkpoint_dir) / f"epoch_{epoch:03d}"


def _embedding_optimizer(name: str):
    import torchrec.optim as trec_optim

    return {"adagrad": torch.optim.Adagrad, "rowwise_adagrad": trec_optim.RowWiseAdagrad,
            "sgd": torch.optim.SGD, "adam": torch.optim.Adam}[name]


def build_sharded(cfg: LoopConfig, layout, device: torch.device):
    """(DMP model, combined optimizer, plan text) for this worker."""
    from torchrec.distributed.model_parallel import DistributedModelParallel
    from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
    from torchrec.distributed.planner.types import ParameterConstraints
    from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
    from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
    from torchrec.optim.optimizers import in_backward_optimizer_filter

    torch.manual_seed(cfg.seed)  # same dense init on every worker (DDP also broadcasts)
    shape = cfg.ranker.model
    params = ModelParams(shape.tower_dims, shape.dense_dims, shape.interaction_dims, "torchrec")
    model = TwoTowerRanker(layout, params, sparse_device=torch.device("meta"))
    apply_optimizer_in_backward(_embedding_optimizer(cfg.ranker.embedding_optimizer),
                                model.sparse_arch.ebc.parameters(), {"lr": cfg.ranker.embedding_lr})
    present = {t.name for t in layout.tables}
    unused = sorted(set(cfg.trainer.sharding) - present)
    if unused:  # e.g. `user` with ranker.features.user_id=false: nothing to constrain
        log.info("sharding constraints for absent tables ignored: %s", ", ".join(unused))
    constraints = {table: ParameterConstraints(sharding_types=list(types))
                   for table, types in cfg.trainer.sharding.items() if table in present}
    world = dist.get_world_size()
    planner = EmbeddingShardingPlanner(
        topology=Topology(world_size=world, compute_device=device.type),
        constraints=constraints or None)
    plan = planner.collective_plan(model, None, dist.GroupMember.WORLD)
    dmp = DistributedModelParallel(model, device=device, plan=plan)
    dense = KeyedOptimizerWrapper(dict(in_backward_optimizer_filter(dmp.named_parameters())),
                                  lambda ps: torch.optim.Adam(ps, lr=cfg.ranker.dense_lr))
    optimizer = CombinedOptimizer([dmp.fused_optimizer, dense])
    return dmp, optimizer, plan_text(plan)


def save_checkpoint(dmp, optimizer, directory: Path) -> None:
    import torch.distributed.checkpoint as dcp

    dcp.save({"model": dmp.state_dict(), "optim": optimizer.state_dict()},
             checkpoint_id=str(directory))


def load_checkpoint(dmp, optimizer, directory: Path) -> None:
    import torch.distributed.checkpoint as dcp

    # Adam creates its moments on the first step: until then its state_dict has no entries,
    # and DCP only fills the keys the target already has, so the dense optimizer state would
    # be silently dropped. A zero-gradient step materialises it (it leaves the weights as they
    # are, and the step counts are overwritten by the load).
    for _, opt in getattr(optimizer, "optimizers", [("", optimizer)]):
        if not opt.state:
            opt.init_state()
    state = {"model": dmp.state_dict(), "optim": optimizer.state_dict()}
    dcp.load(state, checkpoint_id=str(directory))
    dmp.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optim"])


def loss_fn(outputs: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor,
            retrieval_weight: float) -> torch.Tensor:
    logit, dot = outputs
    loss = F.binary_cross_entropy_with_logits(logit, labels)
    if retrieval_weight:
        loss = loss + retrieval_weight * F.binary_cross_entropy_with_logits(dot, labels)
    return loss


@torch.no_grad()
def validate(dmp, data: WorkerData, cfg: LoopConfig, device: torch.device) -> dict[str, float]:
    """Every worker scores an equal slice of the validation rows (the sharded forward is a
    collective), the slices are gathered, and each worker computes the same metrics."""
    rank, world = dist.get_rank(), dist.get_world_size()
    n = len(data.validation)
    per = -(-n // world)
    batches = -(-per // VALIDATION_BATCH_ROWS)
    lo = rank * per
    out = []
    dmp.eval()
    for b in range(batches):
        start = lo + b * VALIDATION_BATCH_ROWS
        idx = np.arange(start, start + VALIDATION_BATCH_ROWS) % max(n, 1)  # pad by wrapping
        batch = gather(data.tables, data.validation, idx).to(device)
        out.append(torch.sigmoid(dmp(**batch.inputs())[0]).cpu().numpy())
    dmp.train()
    mine = np.concatenate(out)[: max(0, min(per, n - lo))]
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, mine)
    scores = np.concatenate(parts)[:n]
    return group_metrics(scores, data.validation, data.validation_starts,
                         data.validation_truth, [10, 20], data.item_popularity)


def train_worker(config: LoopConfig | dict[str, LoopConfig]) -> dict[str, Any]:
    """Run by every worker; returns the final ``TrainState`` as a dict (rank 0's is used).
    Ray Train hands its workers a dict: ``{"loop": LoopConfig}``."""
    cfg = config if isinstance(config, LoopConfig) else config["loop"]
    quiet_libraries(cfg.verbose)  # a Ray Train worker is a fresh process
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = (torch.device("cuda", torch.cuda.current_device()) if cfg.device == "cuda"
              else torch.device("cpu"))
    data = read_worker_data(Path(cfg.data_dir))
    dmp, optimizer, plan = build_sharded(cfg, data.layout, device)
    ckpt_dir = Path(cfg.checkpoint_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = TrainState.read(ckpt_dir) if cfg.trainer.resume else None
    if state is not None and state.epoch > 0:
        load_checkpoint(dmp, optimizer, epoch_dir(ckpt_dir, state.epoch))
        if rank == 0:
            log.info("resumed from epoch %d (saved by %d workers, now %d)", state.epoch,
                     state.world_size, world)
    state = state or TrainState()
    state.plan, state.world_size = plan, world
    if rank == 0:
        log.info("sharding plan (%d worker%s): %s", world, "s" * (world > 1),
                 plan_summary(plan))
    tracker = _tracker(cfg) if rank == 0 else None
    loader = BatchIterator(data.tables, data.train, cfg.trainer.batch_size, rank=rank,
                           world_size=world, seed=cfg.seed)
    stopped = False
    for epoch in range(state.epoch, cfg.trainer.epochs):
        if state.bad_epochs >= cfg.trainer.patience:
            stopped = True
            break
        loader.epoch = epoch
        t_data = t_model = loss_sum = 0.0
        samples = 0
        start = time.perf_counter()
        bar = progress_bar(total=len(loader), desc=f"epoch {epoch + 1}/{cfg.trainer.epochs}",
                           enabled=rank == 0 and cfg.trainer.progress)
        for batch, data_s in timed(loader):
            batch = batch.to(device)
            t1 = time.perf_counter()
            loss = loss_fn(dmp(**batch.inputs()), batch.labels, cfg.ranker.retrieval_loss_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            t_data += data_s
            t_model += time.perf_counter() - t1
            loss_sum += float(loss.detach())
            samples += len(batch)
            bar.update()
        bar.close()
        elapsed = time.perf_counter() - start
        metrics = {f"val/{k}": v for k, v in validate(dmp, data, cfg, device).items()
                   if k in ("ndcg@10", "recall@20", "auc")}
        metrics.update({"epoch": epoch + 1, "train/loss": loss_sum / max(1, len(loader)),
                        "train/samples_per_s": samples * world / elapsed,
                        "train/data_s": t_data, "train/model_s": t_model,
                        "train/epoch_s": elapsed})
        save_checkpoint(dmp, optimizer, epoch_dir(ckpt_dir, epoch + 1))
        ndcg = metrics["val/ndcg@10"]
        improved = ndcg > state.best_ndcg
        state.best_ndcg, state.best_epoch = ((ndcg, epoch + 1) if improved
                                             else (state.best_ndcg, state.best_epoch))
        state.bad_epochs = 0 if improved else state.bad_epochs + 1
        state.epoch = epoch + 1
        state.history.append(metrics)
        if rank == 0:
            state.write(ckpt_dir)
            log.info("epoch %d: loss %.4f val NDCG@10 %.4f AUC %.4f, %.0f samples/s "
                     "(data %.1fs, model %.1fs)", epoch + 1, metrics["train/loss"], ndcg,
                     metrics["val/auc"], metrics["train/samples_per_s"], t_data, t_model)
            tracker.log_metrics(metrics)
        if cfg.report_to_ray:
            _report(metrics)
        dist.barrier()
    if stopped and rank == 0:
        log.info("early stop: no better validation NDCG@10 for %d epochs (best %.4f at %d)",
                 cfg.trainer.patience, state.best_ndcg, state.best_epoch)
    if tracker is not None:
        tracker.finish()
    return asdict(state)


def _tracker(cfg: LoopConfig):
    from recsys.tracking import NullTracker, start_tracker

    if not cfg.tracker:
        return NullTracker()
    kw = dict(cfg.tracker)
    kw["run_dir"] = Path(kw["run_dir"])
    return start_tracker(**kw)


def _report(metrics: dict[str, float]) -> None:
    """Tell Ray Train about the epoch (its Result and dashboard show the curve)."""
    import ray.train

    try:
        ray.train.report(metrics)
    except Exception as err:  # noqa: BLE001 - reporting is bookkeeping, never fatal
        log.debug("ray.train.report failed: %s", err)
