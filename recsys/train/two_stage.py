"""The two-stage job behind ``python train.py experiment=two_tower_ml1m``.

prepare (sources + features on the training split, stacked) -> train (local or Ray Train, TorchRec
DMP) -> load the best checkpoint unsharded -> evaluate merged candidates -> ranker on the
benchmark protocol, with EASE and every single source in the same run -> export (TorchScript,
ONNX, a Triton model repository, checked on the real Triton server) -> two-tower retrieval index
-> serving bundle. Artefacts land in ``<run dir>/ranker/``; metrics in ``<run dir>/metrics.json``.

The job takes a ``TwoStageJob``: typed settings built once from the Hydra config
(``recsys.config.jobs.two_stage_job``), so nothing here reads a config tree.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys import RecsysError
from recsys.candidates.ease import EASE
from recsys.candidates.popular import MostPopular
from recsys.candidates.two_tower import TwoTowerRetrieval
from recsys.data import load_dataset
from recsys.data.splits import SplitConfig
from recsys.device import resolve_device
from recsys.eval.protocol import EvalConfig, evaluate, prepare
from recsys.ranking.evaluate import group_metrics, score_rows
from recsys.ranking.layout import FeatureLayout
from recsys.ranking.model import ModelParams, TwoTowerRanker, as_gather_model
from recsys.ranking.pairs import candidate_rows
from recsys.ranking.prepare import prepare_ranker_data, refit_for_serving
from recsys.ranking.retrieval import tower_vectors
from recsys.tracking import LoggerConfig, start_tracker
from recsys.train.handoff import write_worker_data
from recsys.train.launch import run_local, run_ray
from recsys.train.loop import LoopConfig, epoch_dir
from recsys.train.publish import check_export, export_ranker, publish_bundle
from recsys.train.settings import RankerConfig, TrainerConfig, TrainerKind

log = logging.getLogger(__name__)

Sources = dict[str, tuple[Any, int]]  # slot name -> (unfitted source, quota)


@dataclass
class TwoStageJob:
    """Everything the job reads. ``make_sources`` builds fresh unfitted candidate sources (the
    job fits them twice: stacked for the ranker's rows, then on all of train for serving)."""

    data: dict[str, Any]  # load_dataset keyword arguments
    make_sources: Callable[[], Sources]
    quotas: dict[str, int]  # slot -> most new titles it adds to a request
    weights: dict[str, float]  # slot -> its weight in the merge order
    ranker: RankerConfig = field(default_factory=RankerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=lambda: LoggerConfig(enabled=False))
    ease_l2: float = 500.0  # the EASE baseline measured in the same run
    seed: int = 42
    config: dict[str, Any] = field(default_factory=dict)  # resolved config, for the tracker
    verbose: bool = False  # workers keep the libraries' own logs too (hydra.verbose=true)


def loop_config(job: TwoStageJob, run_dir: Path, tracker: dict | None) -> LoopConfig:
    """What every training worker gets; the device is decided once, by ``recsys.device``."""
    t = job.trainer
    workers = t.num_workers if t.kind == TrainerKind.ray else 1
    threads = t.threads_per_worker or max(1, (os.cpu_count() or 1) // max(1, workers))
    return LoopConfig(data_dir=str(run_dir / "ranker_data"),
                      checkpoint_dir=str(t.checkpoint_dir or run_dir / "checkpoints"),
                      trainer=t, ranker=job.ranker, seed=job.seed, threads=threads,
                      device=resolve_device(t.device).type, tracker=tracker,
                      verbose=job.verbose)


def load_trained(layout: FeatureLayout, loop: LoopConfig, checkpoint: Path) -> TwoTowerRanker:
    """The sharded checkpoint loaded into one unsharded model (DCP reassembles the shards)."""
    import torch.distributed.checkpoint as dcp

    shape = loop.ranker.model
    model = TwoTowerRanker(layout, ModelParams(shape.tower_dims, shape.dense_dims,
                                               shape.interaction_dims, "torchrec"))
    state = {"model": model.state_dict()}
    dcp.load(state, checkpoint_id=str(checkpoint))
    model.load_state_dict(state["model"])
    return model.eval()


def train_ranker(job: TwoStageJob, run_dir: Path) -> dict[str, dict[str, float]]:
    """The whole job (see the module docstring); returns {name: metrics}."""
    if not job.quotas:
        raise RecsysError("the ranker needs candidates: add candidates=default")
    check_export(job.quotas, job.ranker.export)
    started = time.perf_counter()
    dataset = load_dataset(**job.data)
    log.info(dataset.summary())
    split, data = prepare(dataset, job.split.kind, job.split.fraction, job.split.seed,
                          job.eval.positive_threshold, job.split.days)
    r, progress = job.ranker, job.trainer.progress
    ranker_data = prepare_ranker_data(dataset, split.train, job.make_sources, r.features,
                                      r.negatives, r.stacking, progress=progress)
    write_worker_data(ranker_data, run_dir / "ranker_data")
    prepared_s = time.perf_counter() - started

    tracker_kw = None
    if job.logger.enabled and job.logger.mode != "disabled":
        tracker_kw = dict(enabled=True, mode=str(job.logger.mode), project=job.logger.project,
                          config=job.config, run_dir=str(run_dir),
                          name=f"two_tower-{dataset.name}", tags=list(job.logger.tags),
                          run_id=uuid.uuid4().hex[:8])
    loop = loop_config(job, run_dir, tracker_kw)
    t0 = time.perf_counter()
    if job.trainer.kind == TrainerKind.ray:
        state = run_ray(loop, job.trainer.num_workers, job.trainer.cpus_per_worker)
    else:
        state = run_local(loop)
    train_s = time.perf_counter() - t0
    log.debug("sharding plan:\n%s", state["plan"])
    best = max(1, state["best_epoch"])
    model = load_trained(ranker_data.layout, loop, epoch_dir(Path(loop.checkpoint_dir), best))
    serving_model = as_gather_model(model)

    log.info("refitting the sources on the whole training split, for evaluation and serving")
    serving = refit_for_serving(dataset, split.train, job.make_sources, ranker_data.builder,
                                r.stacking, progress=progress)
    test_truth = {int(u): data.test[int(u)].indices.astype(np.int64) for u in data.users}
    rows, starts = candidate_rows(data.users, serving.lists, ranker_data.builder, test_truth,
                                  serving.last_ts)
    scores = score_rows(lambda b: torch.sigmoid(serving_model(**b.inputs())[0]),
                        serving.tables, rows)
    ks = list(job.eval.ks)
    results: dict[str, dict[str, float]] = {}
    results["two_tower"] = group_metrics(scores, rows, starts, data.test[data.users], ks,
                                         data.item_popularity())
    results["two_tower"]["candidates_recall"] = float(
        rows.labels.sum() / data.test[data.users].sum())
    ev = dict(ks=ks, batch_size=job.trainer.eval_batch_size, progress=progress)
    results["ease"] = evaluate(EASE(job.ease_l2).fit(data.train), data, **ev)
    for name, (source, _) in serving.sources.items():
        results[f"source:{name}"] = evaluate(source, data, **ev)
    if job.eval.compare_popular:
        results["popular"] = evaluate(MostPopular().fit(data.train), data, **ev)

    out = run_dir / "ranker"
    exported = export_ranker(serving_model, ranker_data, serving, job.quotas, r.export, out)
    user_vecs, item_vecs = tower_vectors(serving_model, serving.tables)
    retrieval = TwoTowerRetrieval(user_vecs, item_vecs)
    retrieval.save(out / "two_tower_retrieval")
    results["source:two_tower"] = evaluate(retrieval, data, **ev)

    version = publish_bundle(Path(r.export.artefacts_root or run_dir / "artefacts"),
                             job.weights, r.stacking.overfetch, job.eval.positive_threshold,
                             r.export.two_tower_quota, dataset, split.train, serving,
                             ranker_data, out, retrieval)
    summary = {"prepare_s": prepared_s, "train_s": train_s, "best_epoch": best,
               "epochs_run": state["epoch"], "workers": state["world_size"],
               "train_rows": len(ranker_data.train), "test_rows": len(rows),
               "artefact_version": version, **exported}
    (run_dir / "metrics.json").write_text(json.dumps({"results": results, "run": summary,
                                                      "history": state["history"]}, indent=2))
    if tracker_kw:
        # the training loop announced this run already (rank 0, same run id)
        tracker = start_tracker(**{**tracker_kw, "run_dir": run_dir}, announce=False)
        tracker.log_metrics({f"test/{n}/{k}": v for n, m in results.items() for k, v in m.items()})
        tracker.log_artifact(out, name=f"two_tower-{dataset.name}", kind="model")
        tracker.finish()
    print(summary_text(results, summary, state["history"]))
    return results


def summary_text(results: dict[str, dict[str, float]], summary: dict,
                 history: list[dict[str, float]]) -> str:
    """The metrics table of every model in the run, then the training epochs."""
    cols = ["ndcg@10", "recall@20", "auc", "coverage@10", "novelty@10"]
    lines = ["", " | ".join(["model".ljust(18), *[c.rjust(11) for c in cols]])]
    for name, m in results.items():
        lines.append(" | ".join([name.ljust(18),
                                 *[f"{m.get(c, float('nan')):11.4f}" for c in cols]]))
    lines += ["", f"best epoch {summary['best_epoch']} of {summary['epochs_run']} on "
              f"{summary['workers']} worker(s); train {summary['train_s']:.0f}s; "
              f"exported {', '.join(summary['exported'])}"]
    lines += [f"  epoch {int(h['epoch'])}: loss {h['train/loss']:.4f} "
              f"val NDCG@10 {h['val/ndcg@10']:.4f} AUC {h['val/auc']:.4f} "
              f"{h['train/samples_per_s']:.0f} samples/s" for h in history]
    return "\n".join(lines)


__all__ = ["TwoStageJob", "train_ranker", "load_trained", "loop_config"]
