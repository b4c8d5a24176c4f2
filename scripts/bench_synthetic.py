"""Benchmark the synthetic generator: throughput (events/s) and peak memory as the data grows.

Each case runs in a fresh child process, so its peak RSS (``ru_maxrss``) is its own; the child
also reports the RSS before generation (interpreter + imports), so the table shows what the
generator itself adds. Results go to benchmarks/synthetic.json and benchmarks/synthetic.md.

    python scripts/bench_synthetic.py            # the standard cases, ~1 minute on 2 cores
    python scripts/bench_synthetic.py --huge     # plus 10M users / 1M items / 50M, 200M events
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from recsys.data.synthetic import SyntheticConfig, generate

ROOT = Path(__file__).resolve().parents[1]
BASE = SyntheticConfig(n_users=1_000_000, n_items=100_000, n_events=5_000_000)
CASES: dict[str, SyntheticConfig] = {
    # Two chunk sizes at the same data: smaller chunks hold fewer users' affinities at once.
    "1M users, 5M events, chunk 10k": replace(BASE, chunk_users=10_000),
    "1M users, 5M events, chunk 100k": BASE,
    # Four and eight times the events at the same chunking: memory should stay about flat.
    "1M users, 20M events, chunk 100k": replace(BASE, n_events=20_000_000),
    "1M users, 40M events, chunk 100k": replace(BASE, n_events=40_000_000),
    # The target's shape (1M titles, 100 events per user) at 1/50 of its size: the basis of the
    # extrapolation, since per-user and per-event costs then scale together.
    "200k users, 1M items, 20M events": SyntheticConfig(
        n_users=200_000, n_items=1_000_000, n_events=20_000_000),
}
TARGET = SyntheticConfig(n_users=10_000_000, n_items=1_000_000, n_events=1_000_000_000)
SHAPE_CASE = "200k users, 1M items, 20M events"
HUGE = {
    "10M users, 1M items, 50M events": replace(TARGET, n_events=50_000_000),
    "10M users, 1M items, 200M events": replace(TARGET, n_events=200_000_000),
}


def _current_rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def run_child(config_json: str, out_dir: str) -> None:
    """Generate one case in this (fresh) process and print its measurements as JSON."""
    config = SyntheticConfig(**json.loads(config_json))
    load_before = os.getloadavg()[0]  # other work on the machine skews wall times
    rss_before = _current_rss_mb()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    generate(config, out_dir, progress=False)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime + usage.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)
    size = sum(p.stat().st_size for p in Path(out_dir).rglob("*") if p.is_file())
    print(json.dumps({
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "events_per_s": round(config.n_events / wall),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "added_rss_mb": round(usage.ru_maxrss / 1024 - rss_before, 1),
        "disk_mb": round(size / 2**20, 1),
        "bytes_per_event": round(size / config.n_events, 2),
        "load_avg_before": round(load_before, 2),
    }))


def run_case(name: str, config: SyntheticConfig, tmp_root: Path) -> dict:
    """One case in a child process; its output folder is deleted afterwards."""
    out = Path(tempfile.mkdtemp(prefix="synthetic-bench-", dir=tmp_root))
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(asdict(config)), str(out / "data")],
            capture_output=True, text=True, check=False,
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"case {name!r} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    size = {k: getattr(config, k) for k in ("n_users", "n_items", "n_events", "chunk_users",
                                            "batch_events")}
    row = {"case": name, **size, **result}
    print(f"{name:40s} {row['wall_s']:7.1f} s {row['events_per_s']:>11,} ev/s "
          f"peak {row['peak_rss_mb']:7.1f} MB (+{row['added_rss_mb']:.1f})", flush=True)
    return row


def extrapolate(rows: list[dict]) -> dict:
    """Time and disk for 10M users / 1M items / 1B events, scaled linearly from the case of the
    same shape (users, events and chunks all grow 50x; the catalog's ~2 s is then negligible)."""
    shape = next(r for r in rows if r["case"] == SHAPE_CASE)
    n = TARGET.n_events
    return {
        "target": {k: getattr(TARGET, k) for k in ("n_users", "n_items", "n_events")},
        "from_case": shape["case"],
        "wall_s": round(n / shape["events_per_s"]),
        "cpu_s": round(n * shape["cpu_s"] / shape["n_events"]),
        "disk_gb": round(n * shape["bytes_per_event"] / 2**30, 1),
        "peak_rss_mb": "about that of the 10M-user cases: memory does not grow with events",
    }


def markdown(report: dict) -> str:
    head = ("| case | users | items | events | chunk users | wall s | CPU s | events/s "
            "| peak RSS MB | added RSS MB | disk MB | bytes/event | load avg |")
    lines = ["# Synthetic generator benchmark", "",
             f"Machine: {report['machine']}. Each case runs in a fresh process; *added RSS* is "
             "peak RSS minus the RSS after imports (~the interpreter, numpy, pandas, pyarrow). "
             "CPU s above wall s is the Parquet writer thread overlapping generation. *load avg* "
             "is the 1-minute load when the case started: above ~1 other work shared the 2 "
             "cores and the wall time is pessimistic.", "",
             head, "|" + "---|" * (head.count("|") - 1)]
    for r in report["cases"]:
        lines.append(
            f"| {r['case']} | {r['n_users']:,} | {r['n_items']:,} | {r['n_events']:,} | "
            f"{r['chunk_users']:,} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['events_per_s']:,} | {r['peak_rss_mb']:.0f} | {r['added_rss_mb']:.0f} | "
            f"{r['disk_mb']:.0f} | {r['bytes_per_event']:.1f} | {r['load_avg_before']:.1f} |")
    x = report["extrapolation"]
    lines += ["", f"Extrapolated to {x['target']['n_users']:,} users / {x['target']['n_items']:,} "
              f"items / {x['target']['n_events']:,} events (from *{x['from_case']}*): "
              f"~{x['wall_s'] / 60:.0f} min wall, ~{x['cpu_s'] / 60:.0f} CPU-min, "
              f"~{x['disk_gb']} GiB of Parquet; peak memory {x['peak_rss_mb']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--huge", action="store_true",
                        help="also run 10M users / 1M items / 50M and 200M events (~3 min)")
    parser.add_argument("--tmp", type=Path, default=None, help="scratch folder for the output")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG_JSON", "OUT_DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(*args.child)
        return 0
    cases = {**CASES, **(HUGE if args.huge else {})}
    rows = [run_case(name, config, args.tmp) for name, config in cases.items()]
    report = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
                   f"Python {platform.python_version()}",
        "cases": rows,
        "extrapolation": extrapolate(rows),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "synthetic.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "synthetic.md").write_text(markdown(report))
    print(f"wrote {args.out / 'synthetic.json'} and {args.out / 'synthetic.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
