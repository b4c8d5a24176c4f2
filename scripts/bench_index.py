"""Benchmark VectorIndex types: recall@100 vs exact search, single-query latency, build, size.

For each catalog size (default 10K, 100K, 1M items, dim 64) and index type (Flat = exact, the
baseline of the same run; IVF{4*sqrt(n)},Flat with an nprobe sweep; HNSW32 with an efSearch
sweep; IVF{nlist},PQ16/PQ32 at nprobe 32) it measures:

* recall@100 of the index against Flat's top 100 for 1,000 queries;
* latency p50/p99 of 1,000 single-query ``VectorIndex.search`` calls (one query per call, as
  serving does), with FAISS on one OpenMP thread: a one-query search has nothing to split, and
  idle OpenMP threads spinning at barriers only add jitter on a busy machine;
* batch throughput (the 1,000 queries in one call, 2 threads) and build seconds (train + add,
  2 threads; IVF trains on a seeded sample of max(100k, 40 * nlist) rows);
* index size: ``len(faiss.serialize_index(index))``.

Data is a Gaussian mixture (256 centres, uneven cluster sizes, per-centre noise), searched by
cosine. Pure Gaussian noise is the worst case for every approximate index (no structure to
exploit, all distances alike), so recall here is closer to real embeddings; real catalogs still
differ, so re-run with your vectors before trusting a knob. Writes benchmarks/index.json and
benchmarks/index.md.

    python scripts/bench_index.py [--sizes 10000 100000 1000000] [--dim 64]
"""

from __future__ import annotations

import os

# Before libgomp loads: on a shared 2-core box, OpenMP threads that spin at barriers fight the
# other jobs' threads and small parallel regions (PQ k-means on 4-d subspaces) get 2x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from recsys import RecsysError  # noqa: E402
from recsys.index import VectorIndex  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "benchmarks"
K = 100
N_QUERIES = 1000
CENTRES = 256
SEED = 42
PQ16_MAX_N = 100_000


def make_data(n: int, dim: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(items, queries) from one Gaussian mixture; queries are fresh draws, not items."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CENTRES, dim), dtype=np.float32)
    spread = rng.uniform(0.3, 1.0, CENTRES).astype(np.float32)  # tight and loose clusters
    weights = rng.dirichlet(np.full(CENTRES, 2.0))  # uneven sizes, like genres

    def draw(m: int) -> np.ndarray:
        label = rng.choice(CENTRES, m, p=weights)
        noise = rng.standard_normal((m, dim), dtype=np.float32)
        return centres[label] + spread[label, None] * noise

    return draw(n), draw(N_QUERIES)


def configs(n: int) -> list[tuple[str, str, list[int], dict]]:
    """(label, factory, knob values, build kwargs); the knob is nprobe or efSearch."""
    nlist = round(4 * math.sqrt(n))
    train = {"max_train": max(100_000, 40 * nlist)}
    runs = [
        ("Flat", "Flat", [0], {}),
        (f"IVF{nlist},Flat", f"IVF{nlist},Flat", [8, 32, 128], train),
        ("HNSW32", "HNSW32", [64, 128, 256], {}),
        (f"IVF{nlist},PQ16", f"IVF{nlist},PQ16", [32], train),
        (f"IVF{nlist},PQ32", f"IVF{nlist},PQ32", [32], train),
    ]
    # Each IVF build at 1M costs ~2 min on 2 shared cores; PQ16 already loses ~30% recall@100
    # at 100K, so it is dropped there to keep the whole run near 10 minutes.
    return [r for r in runs if n <= PQ16_MAX_N or not r[0].endswith("PQ16")]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(np.intersect1d(f, t, assume_unique=True)) for f, t in zip(found, truth,
                                                                         strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


def latency_ms(index: VectorIndex, queries: np.ndarray) -> tuple[float, float]:
    """p50/p99 of one-query searches on one FAISS thread (after 20 warm-up calls)."""
    faiss.omp_set_num_threads(1)
    for q in queries[:20]:
        index.search(q[None], K)
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        start = time.perf_counter()
        index.search(q[None], K)
        times[i] = time.perf_counter() - start
    faiss.omp_set_num_threads(2)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def bench_size(items: np.ndarray, queries: np.ndarray) -> list[dict]:
    n, rows, truth = len(items), [], None
    for label, factory, knobs, kwargs in configs(n):
        start = time.perf_counter()
        index = VectorIndex(factory, metric="cosine", use_gpu=False).build(items, **kwargs)
        build_s = time.perf_counter() - start
        size = len(faiss.serialize_index(index.index))
        for knob in knobs:
            name = "efSearch" if "HNSW" in factory else "nprobe" if "IVF" in factory else "-"
            if name != "-":
                index.set_search_params(**{"ef_search" if name == "efSearch" else name: knob})
            start = time.perf_counter()
            found = index.search(queries, K)[1]
            batch_s = time.perf_counter() - start
            truth = found if truth is None else truth  # Flat runs first: the exact answer
            p50, p99 = latency_ms(index, queries)
            row = {"n": n, "index": label, "knob": f"{name}={knob}" if name != "-" else "exact",
                   "build_s": round(build_s, 2), "size_mb": round(size / 2**20, 1),
                   "size_bytes": size, f"recall@{K}": round(recall(found, truth), 4),
                   "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
                   "batch_qps": round(len(queries) / batch_s), "load_avg_1m": os.getloadavg()[0]}
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        del index
    return rows


def environment(load_start: tuple[float, ...]) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return {"python": platform.python_version(), "faiss": faiss.__version__, "cpu": cpu,
            "cpus": os.cpu_count(), "faiss_threads_build_batch": 2, "faiss_threads_single": 1,
            "load_avg_start": [round(x, 2) for x in load_start],
            "load_avg_end": [round(x, 2) for x in os.getloadavg()],
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def write(rows: list[dict], env: dict, args: argparse.Namespace, total_s: float) -> None:
    OUT.mkdir(exist_ok=True)
    setup = {"dim": args.dim, "k": K, "queries": N_QUERIES, "centres": CENTRES, "seed": SEED,
             "metric": "cosine", "total_s": round(total_s, 1)}
    (OUT / "index.json").write_text(json.dumps({"environment": env, "setup": setup,
                                                "results": rows}, indent=2))
    shared = max(env["load_avg_start"][0], max(r["load_avg_1m"] for r in rows)) > 0.5
    header = ["n", "index", "knob", f"recall@{K}", "p50_ms", "p99_ms", "batch_qps", "build_s",
              "size_mb"]
    lines = [
        "# Vector index benchmark", "",
        f"recall@{K} against exact search (Flat, same run) for {N_QUERIES} queries; latency of "
        f"{N_QUERIES} single-query `VectorIndex.search` calls (k={K}, 1 FAISS thread, wrapper "
        "included); batch QPS = the same queries in one call (2 threads); build = train + add "
        "(2 threads, IVF trained on a sample of max(100k, 40*nlist) rows); size = "
        "`len(faiss.serialize_index(...))`. Produced by `python scripts/bench_index.py`.", "",
        f"Data: Gaussian mixture, {CENTRES} centres with uneven sizes and per-centre noise, "
        f"dim {args.dim}, cosine. Pure Gaussian noise would be the worst case for every "
        "approximate index, so these recalls are closer to (but not a promise for) real "
        "embeddings.", "",
        f"Machine: {env['cpu']}, {env['cpus']} CPUs, faiss {env['faiss']}, "
        f"Python {env['python']}, OMP_WAIT_POLICY={env['omp_wait_policy']}; whole run "
        f"{total_s / 60:.1f} min. IVF,PQ16 runs only up to {PQ16_MAX_N:,} items (time budget).",
        "",
    ]
    if shared:
        lines += [f"**Shared machine:** other jobs were running (1-min load average "
                  f"{env['load_avg_start'][0]} at start, up to "
                  f"{max(r['load_avg_1m'] for r in rows):.2f} during the run, on "
                  f"{env['cpus']} cores; see `load_avg_1m` per row in index.json), so absolute "
                  "timings are noisy and p99 especially; recall and size are not affected.", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"{r[h]:,}" if isinstance(r[h], int) else str(r[h])
                                for h in header) + " |" for r in rows]
    (OUT / "index.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    load_start, start = os.getloadavg(), time.perf_counter()
    try:
        items, queries = make_data(max(args.sizes), args.dim)
        rows = []
        for n in sorted(args.sizes):
            rows += bench_size(items[:n], queries)  # prefixes: same distribution, one draw
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write(rows, environment(load_start), args, time.perf_counter() - start)
    print(f"wrote {OUT / 'index.md'} in {(time.perf_counter() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
