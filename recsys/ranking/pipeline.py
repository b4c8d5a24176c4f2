"""The two-stage job behind ``python train.py experiment=two_tower_ml1m``.

prepare (sources + features on the training split, stacked) -> train (local or Ray Train, TorchRec
DMP) -> load the best checkpoint unsharded -> evaluate merged candidates -> ranker on the
benchmark protocol, with EASE and the best single source in the same run -> export (TorchScript,
ONNX, a Triton model repository, checked on the real Triton server) -> two-tower retrieval index.
Artefacts land in ``<run dir>/ranker/``; metrics in ``<run dir>/metrics.json``.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from recsys import RecsysError
from recsys.candidates.ease import EASE
from recsys.candidates.popular import MostPopular
from recsys.candidates.two_tower import TwoTowerRetrieval
from recsys.config.builders import build_sources
from recsys.data import load_dataset
from recsys.eval.protocol import evaluate, prepare
from recsys.ranking.evaluate import group_metrics, score_rows
from recsys.ranking.features import FeatureParams
from recsys.ranking.layout import FeatureLayout
from recsys.ranking.model import ModelParams, ServingRanker, TwoTowerRanker, as_gather_model
from recsys.ranking.pairs import NegativeMix, candidate_rows
from recsys.ranking.prepare import StackingParams, prepare_ranker_data, refit_for_serving
from recsys.ranking.retrieval import tower_vectors
from recsys.train.handoff import write_worker_data
from recsys.train.launch import run_local, run_ray
from recsys.train.loop import LoopConfig, epoch_dir

log = logging.getLogger(__name__)


def loop_config(cfg: DictConfig, run_dir: Path, tracker: dict | None) -> LoopConfig:
    t, r = cfg.trainer, cfg.ranker
    device = "cuda" if str(t.device).startswith("cuda") and torch.cuda.is_available() else "cpu"
    workers = t.num_workers if t.kind == "ray" else 1
    threads = t.threads_per_worker or max(1, (os.cpu_count() or 1) // max(1, workers))
    return LoopConfig(
        data_dir=str(run_dir / "ranker_data"),
        checkpoint_dir=str(t.checkpoint_dir or run_dir / "checkpoints"),
        model=ModelParams(**OmegaConf.to_container(r.model)), epochs=t.epochs,
        batch_size=t.batch_size, dense_lr=r.dense_lr, embedding_lr=r.embedding_lr,
        embedding_optimizer=r.embedding_optimizer,
        retrieval_loss_weight=r.retrieval_loss_weight, patience=t.patience, resume=t.resume,
        seed=cfg.seed, threads=threads, sharding=OmegaConf.to_container(t.sharding),
        device=device, progress=t.progress, tracker=tracker,
    )


def load_trained(layout: FeatureLayout, params: ModelParams, checkpoint: Path) -> TwoTowerRanker:
    """The sharded checkpoint loaded into one unsharded model (DCP reassembles the shards)."""
    import torch.distributed.checkpoint as dcp

    model = TwoTowerRanker(layout, ModelParams(**{**asdict(params), "sparse_arch": "torchrec"}))
    state = {"model": model.state_dict()}
    dcp.load(state, checkpoint_id=str(checkpoint))
    model.load_state_dict(state["model"])
    return model.eval()


def train_ranker(cfg: DictConfig, run_dir: Path) -> dict[str, dict[str, float]]:
    """The whole job (see the module docstring); returns {name: metrics}."""
    if cfg.candidates is None:
        raise RecsysError("the ranker needs candidates: add candidates=default")
    if cfg.trainer.kind not in ("local", "ray"):
        raise RecsysError(f"trainer.kind must be local or ray, got {cfg.trainer.kind!r}")
    check_export_config(cfg)
    started = time.perf_counter()
    dataset = load_dataset(**OmegaConf.to_container(cfg.data, resolve=True))
    log.info(dataset.summary())
    split, data = prepare(dataset, cfg.split.kind, cfg.split.fraction, cfg.split.seed,
                          cfg.eval.positive_threshold)
    r = cfg.ranker
    features = FeatureParams(**OmegaConf.to_container(r.features))
    stacking = StackingParams(label_fraction=r.stacking.label_fraction,
                              validation_users=r.stacking.validation_users,
                              folds=r.stacking.folds,
                              overfetch=cfg.candidates.overfetch,
                              positive_threshold=cfg.eval.positive_threshold, seed=cfg.seed)

    def make_sources():
        return build_sources(cfg)

    progress = cfg.trainer.progress
    ranker_data = prepare_ranker_data(dataset, split.train, make_sources, features,
                                      NegativeMix(**OmegaConf.to_container(r.negatives)),
                                      stacking, progress=progress)
    write_worker_data(ranker_data, run_dir / "ranker_data")
    prepared_s = time.perf_counter() - started

    run_id = uuid.uuid4().hex[:8]
    tracker_kw = None
    if cfg.logger.enabled and cfg.logger.mode != "disabled":
        tracker_kw = dict(enabled=True, mode=cfg.logger.mode, project=cfg.logger.project,
                          config=OmegaConf.to_container(cfg, resolve=True),
                          run_dir=str(run_dir), name=f"two_tower-{dataset.name}",
                          tags=list(cfg.logger.tags), run_id=run_id)
    loop = loop_config(cfg, run_dir, tracker_kw)
    t0 = time.perf_counter()
    if cfg.trainer.kind == "ray":
        state = run_ray(loop, cfg.trainer.num_workers, cfg.trainer.cpus_per_worker)
    else:
        state = run_local(loop)
    train_s = time.perf_counter() - t0
    log.info("sharding plan:\n%s", state["plan"])
    best = max(1, state["best_epoch"])
    model = load_trained(ranker_data.layout, loop.model, epoch_dir(Path(loop.checkpoint_dir), best))
    serving_model = as_gather_model(model)

    serving = refit_for_serving(dataset, split.train, make_sources, ranker_data.builder, stacking,
                                progress=progress)
    test_truth = user_items_from_matrix(data.test, data.users)
    rows, starts = candidate_rows(data.users, serving.lists, ranker_data.builder, test_truth,
                                  serving.last_ts)
    scores = score_rows(lambda b: torch.sigmoid(serving_model(**b.inputs())[0]),
                        serving.tables, rows)
    ks = list(cfg.eval.ks)
    results: dict[str, dict[str, float]] = {}
    results["two_tower"] = group_metrics(scores, rows, starts, data.test[data.users], ks,
                                         data.item_popularity())
    results["two_tower"]["candidates_recall"] = float(
        rows.labels.sum() / data.test[data.users].sum())
    ev = dict(ks=ks, batch_size=cfg.trainer.eval_batch_size, progress=progress)
    results["ease"] = evaluate(EASE(cfg.model.l2 if "l2" in cfg.model else 500.0)
                               .fit(data.train), data, **ev)
    for name, (source, _) in serving.sources.items():
        results[f"source:{name}"] = evaluate(source, data, **ev)
    if cfg.eval.compare_popular:
        results["popular"] = evaluate(MostPopular().fit(data.train), data, **ev)

    out = run_dir / "ranker"
    exported = export_ranker(serving_model, ranker_data, serving, cfg, out)
    user_vecs, item_vecs = tower_vectors(serving_model, serving.tables)
    retrieval = TwoTowerRetrieval(user_vecs, item_vecs)
    retrieval.save(out / "two_tower_retrieval")
    results["source:two_tower"] = evaluate(retrieval, data, **ev)

    version = publish_bundle(cfg, run_dir, dataset, split.train, serving, ranker_data, out,
                             retrieval)
    summary = {"prepare_s": prepared_s, "train_s": train_s, "best_epoch": best,
               "epochs_run": state["epoch"], "workers": state["world_size"],
               "train_rows": len(ranker_data.train), "test_rows": len(rows),
               "artefact_version": version, **exported}
    (run_dir / "metrics.json").write_text(json.dumps({"results": results, "run": summary,
                                                      "history": state["history"]}, indent=2))
    if tracker_kw:
        from recsys.tracking import start_tracker

        tracker = start_tracker(**{**tracker_kw, "run_dir": run_dir})
        tracker.log_metrics({f"test/{n}/{k}": v for n, m in results.items() for k, v in m.items()})
        tracker.log_artifact(out, name=f"two_tower-{dataset.name}", kind="model")
        tracker.finish()
    _print_summary(results, summary, state)
    return results


def bundle_sources(trained: dict[str, tuple[object, int]],
                   retrieval: TwoTowerRetrieval | None, quota: int
                   ) -> dict[str, tuple[object, int]]:
    """The serving slots: the trained sources, then two-tower retrieval as ``two_tower``. It
    comes last and out of ``SourceLists`` on purpose: the ranker was trained on the others'
    provenance features, and the towers exist only once the ranker does."""
    if quota < 0:
        raise RecsysError(f"ranker.export.two_tower_quota must be >= 0, got {quota}")
    if TwoTowerRetrieval.name in trained:
        raise RecsysError(f"candidates.sources.{TwoTowerRetrieval.name} clashes with the "
                          "two-tower retrieval slot the ranker job adds; rename the source")
    if retrieval is None or quota == 0:
        return dict(trained)
    return {**trained, TwoTowerRetrieval.name: (retrieval, quota)}


def publish_bundle(cfg: DictConfig, run_dir: Path, dataset, train_events, serving, ranker_data,
                   ranker_dir: Path, retrieval: TwoTowerRetrieval | None = None) -> str:
    """Write the serving bundle as a new artefact version and point ``latest`` at it.
    ``retrieval`` (the ranker's towers) becomes the ``two_tower`` slot unless
    ``ranker.export.two_tower_quota`` is 0."""
    from recsys.serving.artefacts import ArtefactStore
    from recsys.serving.bundle import write_bundle

    root = cfg.ranker.export.artefacts_root or run_dir / "artefacts"
    store = ArtefactStore(Path(root))
    path = store.new_version()
    slots = {name: {"weight": float(slot.weight)}
             for name, slot in cfg.candidates.sources.items()}
    sources = bundle_sources(serving.sources, retrieval, int(cfg.ranker.export.two_tower_quota))
    write_bundle(path, sources, slots, cfg.candidates.overfetch, serving.lists,
                 ranker_data.builder, serving.tables, dataset.items_by_index(), train_events,
                 dataset.user_index.raw_ids, dataset.item_index.raw_ids, ranker_dir,
                 positive_threshold=cfg.eval.positive_threshold)
    store.publish(path)
    log.info("serving artefacts: version %s in %s", path.name, root)
    return path.name


def request_rows_bound(cfg: DictConfig) -> int:
    """Most ranker rows one request can carry: every candidate source's quota of new titles,
    plus the two-tower retrieval slot the bundle adds."""
    quotas = sum(int(source.quota) for source in cfg.candidates.sources.values())
    return quotas + max(0, int(cfg.ranker.export.two_tower_quota))


def warmup_batch_sizes(cfg: DictConfig) -> list[int]:
    """Rows of each Triton warm-up batch: ``ranker.export.warmup_requests`` requests of the
    largest size, capped at ``max_batch_size``."""
    e = cfg.ranker.export
    rows = request_rows_bound(cfg)
    return sorted({min(int(k) * rows, int(e.max_batch_size)) for k in e.warmup_requests})


def check_export_config(cfg: DictConfig) -> None:
    """Refuse export settings that would fail only after training, or fail every request once
    served: an unknown Triton instance kind, or a ``max_batch_size`` below the rows of one
    request (Triton rejects a request larger than it, so each would fall back to candidate
    order)."""
    from recsys.runtime.triton_repo import KINDS

    e = cfg.ranker.export
    if e.instance_kind not in KINDS:
        raise RecsysError(f"ranker.export.instance_kind={e.instance_kind} is not one of "
                          f"{', '.join(KINDS)}")
    if any(int(k) < 1 for k in e.warmup_requests):
        raise RecsysError(f"ranker.export.warmup_requests={list(e.warmup_requests)}: each "
                          "entry is a number of requests, >= 1 (use [] for no warm-up)")
    if cfg.get("candidates") is None:
        return
    rows = request_rows_bound(cfg)
    if int(e.max_batch_size) < rows:
        raise RecsysError(
            f"ranker.export.max_batch_size={e.max_batch_size} is below the {rows} rows one "
            "request can carry (the candidates.sources quotas plus ranker.export.two_tower_quota)"
            f": Triton would reject every request; set it to at least {rows}, a few times more "
            "so that requests can merge")


def export_ranker(model: TwoTowerRanker, ranker_data, serving, cfg: DictConfig,
                  out: Path) -> dict[str, Any]:
    """TorchScript and/or ONNX files, the Triton repository, and the check on a real Triton."""
    from recsys.ranking.batches import gather
    from recsys.ranking.export import InputSpec, export_onnx, export_torchscript
    from recsys.runtime.triton_repo import write_model_repository

    e = cfg.ranker.export
    check_export_config(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "layout.json").write_text(ranker_data.layout.to_json())
    with open(out / "features.pkl", "wb") as fh:
        pickle.dump(ranker_data.builder, fh)
    torch.save(model.state_dict(), out / "ranker_state.pt")
    wrapped = ServingRanker(model).eval()
    layout = ranker_data.layout
    example_rows = np.arange(min(64, len(ranker_data.validation)))
    example = gather(serving.tables, ranker_data.validation, example_rows).inputs()
    files = {}
    for fmt in e.formats:
        if fmt == "torchscript":
            files[fmt] = export_torchscript(wrapped, example, out / "model.pt")
        elif fmt == "onnx":
            files[fmt] = export_onnx(wrapped, example, out / "model.onnx")
        else:
            raise RecsysError(f"unknown export format {fmt!r}; use torchscript or onnx")
    if e.serve_format not in files:
        raise RecsysError(f"ranker.export.serve_format={e.serve_format} is not in "
                          f"ranker.export.formats={list(e.formats)}")
    spec = InputSpec.ranking(layout.slots, layout.user_dense, layout.item_dense,
                             layout.pair_dense)
    repo = out / "triton_repository"
    write_model_repository(repo, "ranker", files[e.serve_format], spec, fmt=e.serve_format,
                           max_batch_size=e.max_batch_size,
                           preferred_batch_sizes=list(e.preferred_batch_sizes),
                           max_queue_delay_us=e.max_queue_delay_us,
                           max_queue_size=e.max_queue_size, instance_count=e.instance_count,
                           kind=e.instance_kind,
                           num_threads=e.num_threads,
                           warmup_batch_sizes=warmup_batch_sizes(cfg))
    result: dict[str, Any] = {"exported": sorted(files), "triton_repository": str(repo)}
    if e.check_on_triton:
        result["triton_max_abs_diff"] = check_on_triton(wrapped, repo, example)
    return result


def check_on_triton(model: torch.nn.Module, repo: Path, example: dict[str, torch.Tensor]
                    ) -> float:
    """Serve the repository on the real Triton and compare with the in-process model."""
    from recsys.runtime.triton_client import infer
    from recsys.runtime.tritonserver import tritonserver

    with torch.inference_mode():
        want = model(**example).numpy()
    with tritonserver(repo) as server:
        client = server.grpc_client()
        try:
            got = infer(client, "ranker", {k: v.numpy() for k, v in example.items()})
        finally:
            client.close()
    diff = float(np.abs(got.reshape(want.shape) - want).max())
    if diff > 1e-5:
        raise RecsysError(f"Triton's scores differ from the in-process ranker by {diff:.2e}")
    log.info("Triton equivalence: max |diff| %.2e over %d rows", diff, len(want))
    return diff


def user_items_from_matrix(matrix, users: np.ndarray) -> dict[int, np.ndarray]:
    return {int(u): matrix[int(u)].indices.astype(np.int64) for u in users}


def _print_summary(results: dict[str, dict[str, float]], summary: dict, state: dict) -> None:
    cols = ["ndcg@10", "recall@20", "auc", "coverage@10", "novelty@10"]
    print("\n" + " | ".join(["model".ljust(18), *[c.rjust(11) for c in cols]]))
    for name, m in results.items():
        print(" | ".join([name.ljust(18), *[f"{m.get(c, float('nan')):11.4f}" for c in cols]]))
    print(f"\nbest epoch {summary['best_epoch']} of {summary['epochs_run']} on "
          f"{summary['workers']} worker(s); train {summary['train_s']:.0f}s; "
          f"exported {', '.join(summary['exported'])}")
    for h in state["history"]:
        print(f"  epoch {int(h['epoch'])}: loss {h['train/loss']:.4f} "
              f"val NDCG@10 {h['val/ndcg@10']:.4f} AUC {h['val/auc']:.4f} "
              f"{h['train/samples_per_s']:.0f} samples/s")


__all__ = ["train_ranker", "load_trained", "export_ranker"]
