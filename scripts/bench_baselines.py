"""Benchmark the baselines on the fixed protocol: EASE (lambda sweep) vs MostPopular, same run.

Protocol: per-user random 20% holdout, seed 42, positives = rating >= 4, train items excluded.
Writes benchmarks/baselines.json and benchmarks/baselines.md.

    python scripts/bench_baselines.py [--root PATH_TO_MOVIELENS] [--datasets ml-1m ml-100k]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from recsys import RecsysError
from recsys.candidates.ease import EASE
from recsys.candidates.popular import MostPopular
from recsys.data import load_dataset
from recsys.eval.protocol import evaluate, prepare

OUT = Path(__file__).resolve().parents[1] / "benchmarks"
COLUMNS = ["ndcg@10", "recall@20", "recall_capped@20", "hitrate@10", "mrr@10", "coverage@10",
           "novelty@10"]


def run(datasets: list[str], root: str | None, lambdas: list[float]) -> list[dict]:
    rows = []
    for name in datasets:
        dataset = load_dataset(name, None if name == "ml-latest-small" else root)
        _, data = prepare(dataset, "random", 0.2, 42, 4.0)
        models = [MostPopular()] + [EASE(l2=lam, device="cpu") for lam in lambdas]
        for model in models:
            start = time.perf_counter()
            model.fit(data.train)
            fit_s = time.perf_counter() - start
            metrics = evaluate(model, data, ks=[10, 20], progress=False)
            label = model.name + (f" (lambda={model.l2:g})" if isinstance(model, EASE) else "")
            rows.append({"dataset": name, "model": label, "fit_s": round(fit_s, 2),
                         **{k: round(metrics[k], 4) for k in COLUMNS},
                         "users": int(metrics["users"])})
            print(f"{name:16s} {label:22s} ndcg@10={metrics['ndcg@10']:.4f} "
                  f"recall@20={metrics['recall@20']:.4f} fit {fit_s:.1f}s", flush=True)
    return rows


def write(rows: list[dict]) -> None:
    OUT.mkdir(exist_ok=True)
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "cpus": os.cpu_count(), "device": "cpu"}
    (OUT / "baselines.json").write_text(json.dumps({"environment": env, "results": rows},
                                                   indent=2))
    header = ["dataset", "model", *COLUMNS, "fit_s"]
    lines = ["# Baselines on the fixed protocol", "",
             "Per-user random 20% holdout, seed 42, positives = rating >= 4, train items "
             "excluded; Recall's denominator = all held-out positives. Produced by "
             "`python scripts/bench_baselines.py`.", "",
             f"Environment: {env}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    (OUT / "baselines.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("RECSYS_DATA_ROOT"),
                        help="folder holding ml-100k/ and ml-1m/")
    parser.add_argument("--datasets", nargs="+", default=["ml-latest-small", "ml-100k", "ml-1m"])
    parser.add_argument("--lambdas", nargs="+", type=float, default=[100, 250, 500, 1000])
    args = parser.parse_args()
    try:
        write(run(args.datasets, args.root, args.lambdas))
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {OUT / 'baselines.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
