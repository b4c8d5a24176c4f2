"""Ranker benchmark: quality of the two-stage pipeline and training / inference throughput.

    python scripts/bench_ranker.py                 # ml-1m (RECSYS_DATA_ROOT), everything
    python scripts/bench_ranker.py --skip-quality  # throughput only (minutes)

1. Quality (``--skip-quality`` to skip): ``train_ranker`` on ``experiment=two_tower_ml1m`` plus
   any Hydra overrides given after ``--``; EASE, every single source and MostPopular are measured
   in the same run.
2. Training throughput on the same prepared rows (one epoch each, ``--rows`` rows): TorchRec
   DMP (1 worker, in-process), the same-shaped plain-PyTorch model on ``nn.EmbeddingBag``
   (sparse Adagrad + Adam, no DMP), Ray Train with 1 and 2 workers; each with the split of
   wall time between the batch pipeline (Parquet rows -> numpy gathers -> tensors) and the model.
3. Inference: eager vs TorchScript vs onnxruntime at batch 1 / 64 / 600 (``measure_formats``).

Writes ``benchmarks/ranker.json`` and ``benchmarks/ranker.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from recsys.config import compose_config  # noqa: E402
from recsys.config.jobs import two_stage_job  # noqa: E402
from recsys.ranking.batches import BatchIterator, gather, timed  # noqa: E402
from recsys.ranking.export import measure_formats  # noqa: E402
from recsys.ranking.model import (  # noqa: E402
    ModelParams,
    ModelShape,
    ServingRanker,
    TwoTowerRanker,
    as_gather_model,
)
from recsys.train.handoff import read_worker_data  # noqa: E402
from recsys.train.launch import run_local, run_ray  # noqa: E402
from recsys.train.two_stage import loop_config, train_ranker  # noqa: E402

log = logging.getLogger("bench_ranker")


def compose_cfg(overrides: list[str]):
    return compose_config(["experiment=two_tower_ml1m", "logger=none", *overrides])


def plain_pytorch_epoch(data, params: ModelShape, batch_size: int, threads: int) -> dict:
    """One epoch of the same-shaped model on nn.EmbeddingBag: the no-TorchRec baseline."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TwoTowerRanker(data.layout, ModelParams(params.tower_dims, params.dense_dims,
                                                   params.interaction_dims, "embedding_bag"))
    sparse = [p for n, p in model.named_parameters() if n.startswith("sparse_arch.")]
    dense = [p for n, p in model.named_parameters() if not n.startswith("sparse_arch.")]
    opt_sparse = torch.optim.Adagrad(sparse, lr=0.05)
    opt_dense = torch.optim.Adam(dense, lr=1e-3)
    loader = BatchIterator(data.tables, data.train, batch_size)
    t_data = t_model = 0.0
    samples = 0
    start = time.perf_counter()
    for batch, data_s in timed(loader):
        t1 = time.perf_counter()
        logit, _ = model(**batch.inputs())
        loss = F.binary_cross_entropy_with_logits(logit, batch.labels)
        opt_sparse.zero_grad()
        opt_dense.zero_grad()
        loss.backward()
        opt_sparse.step()
        opt_dense.step()
        t_model += time.perf_counter() - t1
        t_data += data_s
        samples += len(batch)
    elapsed = time.perf_counter() - start
    return {"samples_per_s": samples / elapsed, "data_s": t_data, "model_s": t_model,
            "epoch_s": elapsed, "workers": 1}


def from_state(state: dict) -> dict:
    h = state["history"][-1]
    return {"samples_per_s": h["train/samples_per_s"], "data_s": h["train/data_s"],
            "model_s": h["train/model_s"], "epoch_s": h["train/epoch_s"],
            "workers": state["world_size"]}


def subsample(data_dir: Path, rows: int, out: Path) -> Path:
    """A copy of the prepared data with the first ``rows`` training rows (shuffled once)."""
    from recsys.train.handoff import write_worker_data  # noqa: F401 - same file layout

    shutil.copytree(data_dir, out, dirs_exist_ok=True)
    data = read_worker_data(data_dir)
    if rows < len(data.train):
        idx = np.sort(np.random.default_rng(0).permutation(len(data.train))[:rows])
        data.train.take(idx).write(out / "train.parquet")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--rows", type=int, default=200_000, help="training rows per epoch "
                        "in the throughput runs")
    parser.add_argument("--quality-from", type=Path, action="append", default=None,
                        help="reuse a finished run's folder (metrics.json and ranker_data) "
                        "instead of training the quality run again; repeat it for more runs: "
                        "the first is the main table, every run is in the workers comparison")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the quality run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("torchrec", "fbgemm_gpu", "root"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = compose_cfg(["trainer.progress=false", *args.overrides])
    work = Path(tempfile.mkdtemp(prefix="bench-ranker-"))
    report: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "torch": torch.__version__,
                                "cuda": torch.cuda.is_available()}}
    if args.quality_from is not None:
        runs = []
        for folder in args.quality_from:
            metrics = json.loads((folder / "metrics.json").read_text())
            run = {**metrics["run"], "triton_repository": "<run dir>/ranker/triton_repository"}
            runs.append({"results": metrics["results"], "run": run,
                         "history": metrics["history"], "source": "reused run"})
        report["quality"], report["quality_runs"] = runs[0], runs
        data_dir = args.quality_from[0] / "ranker_data"
    elif not args.skip_quality:
        t0 = time.perf_counter()
        results = train_ranker(two_stage_job(cfg), work / "quality")
        metrics = json.loads((work / "quality" / "metrics.json").read_text())
        run = {**metrics["run"], "triton_repository": "<run dir>/ranker/triton_repository"}
        report["quality"] = {"results": results, "run": run,
                             "history": metrics["history"], "wall_s": time.perf_counter() - t0}
        data_dir = work / "quality" / "ranker_data"
    else:
        cfg_short = compose_cfg(["trainer.progress=false", "trainer.epochs=1",
                                 "ranker.export.check_on_triton=false", *args.overrides])
        train_ranker(two_stage_job(cfg_short), work / "prep")
        data_dir = work / "prep" / "ranker_data"
    sub = subsample(data_dir, args.rows, work / "throughput_data")
    data = read_worker_data(sub)
    cores = os.cpu_count() or 1
    throughput = {}
    for name, kind, workers in [("torchrec_dmp_local", "local", 1), ("ray_1_worker", "ray", 1),
                                ("ray_2_workers", "ray", 2)]:
        loop = loop_config(two_stage_job(cfg), work / name, None)
        loop.data_dir, loop.checkpoint_dir = str(sub), str(work / name / "ckpt")
        loop.trainer = replace(loop.trainer, epochs=1, resume=False, progress=False)
        loop.threads = max(1, cores // workers)
        state = run_local(loop) if kind == "local" else run_ray(loop, workers)
        throughput[name] = from_state(state)
        log.info("%s: %.0f samples/s", name, throughput[name]["samples_per_s"])
    throughput["plain_pytorch_embeddingbag"] = plain_pytorch_epoch(
        data, loop.ranker.model, loop.trainer.batch_size, cores)
    report["throughput"] = {"rows": len(data.train), "batch_size": loop.trainer.batch_size,
                            "runs": throughput}
    model = as_gather_model(TwoTowerRanker(data.layout, ModelParams(sparse_arch="gather")))
    example = gather(data.tables, data.validation, np.arange(64)).inputs()
    report["inference"] = measure_formats(ServingRanker(model), example,
                                          batch_sizes=(1, 64, 600))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ranker.json").write_text(json.dumps(report, indent=2, default=float))
    (args.out / "ranker.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = ["# Ranker benchmark", "",
             f"Machine: {m['cpus']} CPU cores, torch {m['torch']}, CUDA: {m['cuda']}. "
             "Produced by `python scripts/bench_ranker.py`.", ""]
    q = report.get("quality")
    if q:
        lines += ["## Two-stage quality (ml-1m, per-user random 20%, seed 42, rating >= 4)", "",
                  "| model | NDCG@10 | Recall@20 | AUC | coverage@10 | novelty@10 |",
                  "|---|---|---|---|---|---|"]
        for name, r in q["results"].items():
            auc = r.get("auc", float("nan"))
            lines.append(f"| {name} | {r['ndcg@10']:.4f} | {r['recall@20']:.4f} | "
                         f"{'' if auc != auc else f'{auc:.4f}'} | {r['coverage@10']:.4f} | "
                         f"{r['novelty@10']:.2f} |")
        run = q["run"]
        lines += ["", f"Best epoch {run['best_epoch']} of {run['epochs_run']}, "
                  f"{run['train_rows']:,} training rows, {run['test_rows']:,} test candidate "
                  f"rows; prepare {run['prepare_s']:.0f} s, train {run['train_s']:.0f} s. "
                  "`two_tower` AUC is over every test user's merged candidates (positive = "
                  "held-out rating >= 4).", "",
                  "| epoch | loss | val NDCG@10 | val AUC | samples/s |", "|---|---|---|---|---|"]
        for h in q["history"]:
            lines.append(f"| {int(h['epoch'])} | {h['train/loss']:.4f} | "
                         f"{h['val/ndcg@10']:.4f} | {h['val/auc']:.4f} | "
                         f"{h['train/samples_per_s']:.0f} |")
        lines.append("")
    if len(report.get("quality_runs", [])) > 1:
        lines += ["### The same job on 1 and on 2 Ray workers", "",
                  "| workers | two_tower NDCG@10 | Recall@20 | AUC | best epoch | train s |",
                  "|---|---|---|---|---|---|"]
        for q in report["quality_runs"]:
            r, run = q["results"]["two_tower"], q["run"]
            lines.append(f"| {run.get('workers', '?')} | {r['ndcg@10']:.4f} | "
                         f"{r['recall@20']:.4f} | {r['auc']:.4f} | {run['best_epoch']} | "
                         f"{run['train_s']:.0f} |")
        lines.append("")
    t = report["throughput"]
    lines += [f"## Training throughput ({t['rows']:,} rows, batch {t['batch_size']} per "
              "worker, one epoch)", "",
              "| run | workers | samples/s | batch pipeline s | model s | epoch s |",
              "|---|---|---|---|---|---|"]
    for name, r in t["runs"].items():
        lines.append(f"| {name} | {r['workers']} | {r['samples_per_s']:.0f} | "
                     f"{r['data_s']:.1f} | {r['model_s']:.1f} | {r['epoch_s']:.1f} |")
    lines += ["", "## Inference in-process (p50 ms / rows per s)", "",
              "| format | batch 1 | batch 64 | batch 600 |", "|---|---|---|---|"]
    for fmt, by_batch in report["inference"].items():
        cells = [f"{v['p50_ms']:.2f} ms / {v['rows_per_s']:.0f}" for v in by_batch.values()]
        lines.append(f"| {fmt} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
