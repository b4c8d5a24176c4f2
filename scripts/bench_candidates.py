"""Benchmark candidate generation: every source alone, the merged set, and new users.

Protocol: per-user random 20% holdout, seed 42, positives = rating >= 4, train items excluded.
EASE and MostPopular are measured in the same run as references. The merged set's Recall@500 is
what the ranker can reach at best. Cold start: 10% of the evaluated users are removed from
training and come back as new users with 5 of their training events as history.

    python scripts/bench_candidates.py [--datasets ml-1m ml-100k ml-latest-small] [--root DIR]
        [overrides ...]   # Hydra overrides, e.g. candidates.sources.cf.quota=400 index=hnsw

Writes benchmarks/candidates.json and benchmarks/candidates.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from recsys import RecsysError
from recsys.candidates.ease import EASE
from recsys.candidates.popular import MostPopular
from recsys.candidates.types import Context, UserHistory
from recsys.config import compose_config
from recsys.config.builders import build_generator, build_sources
from recsys.data import load_dataset
from recsys.data.dataset import interaction_matrix
from recsys.eval.candidates import collect, known_user_histories, list_metrics
from recsys.eval.protocol import evaluate, positives, prepare

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks"
KS = [10, 20, 100, 500]
COLD_SHARE, COLD_HISTORY = 0.10, 5


def compose_cfg(overrides: list[str]):
    return compose_config(["candidates=default", *overrides])


def _row(dataset: str, setting: str, source: str, role: str, build_s: float | None,
         metrics: dict, latency: dict | None = None) -> dict:
    row = {"dataset": dataset, "setting": setting, "source": source, "role": role,
           "build_s": None if build_s is None else round(build_s, 2),
           **{f"recall@{k}": round(metrics[f"recall@{k}"], 4) for k in KS},
           "ndcg@10": round(metrics["ndcg@10"], 4),
           "coverage@100": round(metrics.get("coverage@100", metrics.get("coverage@500", 0)), 4),
           "users": int(metrics["users"])}
    if latency:
        row.update(latency)
    print(f"{dataset:16s} {setting:9s} {source:22s} " + " ".join(
        f"{k}={row[k]}" for k in ("recall@10", "recall@100", "recall@500", "ndcg@10",
                                  "build_s")), flush=True)
    return row


def _fit_all(cfg, train, events, items) -> tuple[dict, dict]:
    fitted, build = {}, {}
    for name, (source, quota) in build_sources(cfg).items():
        start = time.perf_counter()
        source.fit(train, events=events, items=items)
        build[name] = time.perf_counter() - start
        fitted[name] = (source, quota)
    return fitted, build


def _latency(ms: list[float]) -> dict:
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def _merged(gen, histories, truth, progress: bool) -> tuple[dict, dict]:
    ms: list[float] = []

    def one(h: UserHistory) -> np.ndarray:
        start = time.perf_counter()
        items = gen.generate(h, Context()).items
        ms.append((time.perf_counter() - start) * 1e3)
        return items

    lists = collect(one, histories, "merged", progress)
    metrics = list_metrics(lists, truth, KS)
    return metrics, _latency(ms)


def bench_dataset(name: str, root: str | None, overrides: list[str], progress: bool) -> list[dict]:
    cfg = compose_cfg(overrides)
    dataset = load_dataset(name, None if name == "ml-latest-small" else root)
    split, data = prepare(dataset, "random", 0.2, 42, 4.0)
    items = dataset.items_by_index()
    rows = []
    for ref in (EASE(l2=500.0, device="cpu"), MostPopular()):
        start = time.perf_counter()
        ref.fit(data.train)
        rows.append(_row(name, "known", ref.name, "reference", time.perf_counter() - start,
                         evaluate(ref, data, KS, progress=False)))
    fitted, build = _fit_all(cfg, data.train, split.train, items)
    for slot, (source, _) in fitted.items():
        rows.append(_row(name, "known", f"{slot} ({source.name})", "source", build[slot],
                         evaluate(source, data, KS, progress=False)))
    gen = build_generator(fitted, cfg)
    metrics, latency = _merged(gen, known_user_histories(data), data.test[data.users], progress)
    quotas = "+".join(str(q) for _, q in fitted.values())
    rows.append(_row(name, "known", f"merged ({quotas})", "merged", sum(build.values()),
                     metrics, latency))
    rows += bench_cold_start(name, cfg, dataset, split, data, items, progress)
    return rows


def bench_cold_start(name, cfg, dataset, split, data, items, progress) -> list[dict]:
    """New users: removed from training, then served from 5 of their own training events."""
    rng = np.random.default_rng(42)
    new_users = np.sort(rng.choice(data.users, int(len(data.users) * COLD_SHARE), replace=False))
    kept = split.train[~split.train["user_idx"].isin(new_users)]
    train = interaction_matrix(positives(kept, 4.0), dataset.n_users, dataset.n_items)
    by_user = split.train[split.train["user_idx"].isin(new_users)].groupby("user_idx")
    histories = []
    for u in new_users:
        events = by_user.get_group(u)
        pick = rng.choice(len(events), min(COLD_HISTORY, len(events)), replace=False)
        histories.append(UserHistory.from_frame(events.iloc[np.sort(pick)], user_idx=None))
    truth = data.test[new_users]
    fitted, build = _fit_all(cfg, train, kept, items)
    rows = []
    for slot, (source, _) in fitted.items():
        lists = collect(lambda h, s=source: s.candidates(h, Context(), max(KS)).items, histories,
                        slot, progress)
        rows.append(_row(name, "new-user", f"{slot} ({source.name})", "source", build[slot],
                         list_metrics(lists, truth, KS)))
    gen = build_generator(fitted, cfg)
    metrics, latency = _merged(gen, histories, truth, progress)
    rows.append(_row(name, "new-user", "merged", "merged", sum(build.values()), metrics,
                     latency))
    return rows


def write(rows: list[dict], overrides: list[str]) -> None:
    OUT.mkdir(exist_ok=True)
    env = {"python": platform.python_version(), "cpus": os.cpu_count(), "device": "cpu",
           "overrides": overrides, "load_avg_1m": round(os.getloadavg()[0], 2)}
    (OUT / "candidates.json").write_text(json.dumps({"environment": env, "results": rows},
                                                    indent=2))
    cols = ["dataset", "setting", "source", *[f"recall@{k}" for k in KS], "ndcg@10",
            "coverage@100", "build_s", "p50_ms", "p99_ms", "users"]
    lines = ["# Candidate generation", "",
             "Per-user random 20% holdout, seed 42, positives = rating >= 4, train items "
             "excluded; Recall's denominator = all held-out positives. *known*: every evaluated "
             "user, sources scored over the catalog; *merged*: the CandidateGenerator's list in "
             "merge order (quotas in the name), p50/p99 = latency of one `generate()` call. "
             f"*new-user*: {COLD_SHARE:.0%} of users removed from training and served from "
             f"{COLD_HISTORY} of their training events. Produced by "
             "`python scripts/bench_candidates.py`.", "", f"Environment: {env}", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |"
              for r in rows]
    (OUT / "candidates.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("RECSYS_DATA_ROOT"))
    parser.add_argument("--datasets", nargs="+", default=["ml-1m", "ml-100k", "ml-latest-small"])
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides")
    args = parser.parse_args()
    try:
        rows = [r for name in args.datasets
                for r in bench_dataset(name, args.root, args.overrides, not args.no_progress)]
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write(rows, args.overrides)
    print(f"wrote {OUT / 'candidates.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
