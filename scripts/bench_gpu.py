"""GPU paths against the CPU, measured in the same run on the same inputs.

    python scripts/bench_gpu.py                       # every section; artefacts from `make run`
    python scripts/bench_gpu.py --only ranker,ease    # a subset
    python scripts/bench_gpu.py --out /tmp/gpu        # write the results elsewhere

Sections (each times the CPU baseline and, where torch sees a GPU, ``device=cuda``):

* ``hardware``: what ``recsys.device`` detects (CUDA torch, faiss-gpu, cupy, fbgemm-gpu CUDA).
* ``ranker``: the served ranker (``ServingRanker`` over the bundle's ``ranker_state.pt``) scoring
  one request (``--rows`` candidates of one user) and a batch of 16 such requests, eager PyTorch,
  inputs copied to the device and scores copied back inside the timing.
* ``triton``: the same model exported to TorchScript and served by the real Triton server
  (``kind: KIND_CPU`` vs ``KIND_GPU`` in ``config.pbtxt``), one request at a time and 8 in flight.
* ``ease``: EASE fitted on the built-in ml-latest-small (a 9,742 x 9,742 Cholesky inverse).
* ``als``: implicit ALS, torch backend (conjugate gradient), fitted on ml-latest-small.

Without a GPU the CUDA columns say so and the CPU figures are still measured. Writes
``benchmarks/gpu.json`` and ``benchmarks/gpu.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recsys.device import hardware  # noqa: E402
from recsys.ranking.export import time_calls  # noqa: E402
from recsys.ranking.layout import PAD, FeatureLayout  # noqa: E402
from recsys.ranking.model import ServingRanker, ranker_from_state  # noqa: E402

SECTIONS = ("hardware", "ranker", "triton", "ease", "als")
REQUESTS_PER_BATCH = 16
IN_FLIGHT = 8


def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def rounded(stats: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in stats.items()}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# -- ranker ------------------------------------------------------------------------------------
def load_served_ranker(ranker_dir: Path) -> tuple[FeatureLayout, ServingRanker]:
    layout = FeatureLayout.from_json((ranker_dir / "layout.json").read_text())
    state = torch.load(ranker_dir / "ranker_state.pt", map_location="cpu", weights_only=True)
    return layout, ServingRanker(ranker_from_state(layout, state)).eval()


def request_rows(layout: FeatureLayout, users: int, rows_per_user: int, seed: int = 0
                 ) -> dict[str, np.ndarray]:
    """Rows shaped like served requests: each user's slots and dense values repeat on all of
    that user's candidate rows; item and context slots vary per row. Ids are random but valid."""
    rng = np.random.default_rng(seed)
    n = users * rows_per_user
    vocab = {t.name: t.num_embeddings for t in layout.tables}
    ids = np.full((n, layout.slots), PAD, np.int64)
    weights = np.zeros((n, layout.slots), np.float32)
    owner = np.repeat(np.arange(users), rows_per_user)
    for feature, start, stop in layout.slices():
        filled = max(1, (stop - start) // 2)  # half the slots used, the rest padding
        if feature.side == "user":
            per_user = rng.integers(0, vocab[feature.table], (users, filled))
            ids[:, start:start + filled] = per_user[owner]
        else:
            ids[:, start:start + filled] = rng.integers(0, vocab[feature.table], (n, filled))
        weights[:, start:start + filled] = 1.0
    user_dense = rng.random((users, layout.user_dense), dtype=np.float32)[owner]
    return {"ids": ids, "weights": weights, "user_dense": user_dense,
            "item_dense": rng.random((n, layout.item_dense), dtype=np.float32),
            "pair_dense": rng.random((n, layout.pair_dense), dtype=np.float32)}


def bench_ranker(ranker_dir: Path, rows: int, repeats: int) -> dict[str, Any]:
    layout, served = load_served_ranker(ranker_dir)
    shapes = {"1 request": request_rows(layout, 1, rows),
              f"{REQUESTS_PER_BATCH} requests": request_rows(layout, REQUESTS_PER_BATCH, rows)}
    out: dict[str, Any] = {"rows_per_request": rows, "results": []}
    reference = None
    for device in devices():
        model = served.to(device)
        for shape, arrays in shapes.items():
            def call(arrays=arrays, model=model, device=device) -> np.ndarray:
                with torch.inference_mode():
                    args = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
                    return model(**args).cpu().numpy()  # .cpu() waits for the GPU

            scores = call()
            diff = None  # compared on one request only: the CPU run's is the reference
            if shape == "1 request":
                reference = scores if reference is None else reference
                diff = float(np.abs(scores - reference).max())
            stats = rounded(time_calls(call, repeats, warmup=5))
            n = len(arrays["ids"])
            out["results"].append({
                "device": device, "batch": shape, "rows": n, **stats,
                "rows_per_s": round(n / stats["p50_ms"] * 1e3),
                "max_abs_diff_vs_cpu": diff})
    served.to("cpu")
    return out


# -- Triton ------------------------------------------------------------------------------------
def _client_loop(handle: Any, arrays: dict[str, np.ndarray], count: int,
                 latencies: list[float], errors: list[str]) -> None:
    from recsys.runtime.triton_client import infer

    with contextlib.closing(handle.grpc_client()) as client:
        for _ in range(count):
            t0 = time.perf_counter()
            try:
                infer(client, "ranker", arrays)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append((time.perf_counter() - t0) * 1e3)


def _in_flight(handle: Any, arrays: dict[str, np.ndarray], requests: int, in_flight: int
               ) -> tuple[list[float], list[str], float]:
    """``requests`` calls from ``in_flight`` client threads (closed loop); latencies, errors, wall.

    Each measured run is preceded by a short one at the same concurrency: merged batches of a new
    size make TorchScript's profiling executor specialise again, which took about a second once
    per new size on the GPU instance, a start-up cost rather than a steady-state one.
    """
    latencies: list[float] = []
    errors: list[str] = []
    threads = [threading.Thread(target=_client_loop,
                                args=(handle, arrays, requests // in_flight, latencies, errors))
               for _ in range(in_flight)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(latencies), errors, time.perf_counter() - t0


def bench_triton(ranker_dir: Path, rows: int, requests: int) -> dict[str, Any]:
    from recsys.ranking.export import export_torchscript, ranking_spec
    from recsys.runtime.triton_client import infer
    from recsys.runtime.triton_repo import write_model_repository
    from recsys.runtime.tritonserver import tritonserver
    from scripts.bench_metrics import scrape, triton_rows_per_execution

    layout, served = load_served_ranker(ranker_dir)
    arrays = request_rows(layout, 1, rows)
    with torch.inference_mode():
        want = served(**{k: torch.from_numpy(v) for k, v in arrays.items()}).numpy()
    spec = ranking_spec(layout.slots, layout.user_dense, layout.item_dense, layout.pair_dense)
    out: dict[str, Any] = {"rows_per_request": rows, "results": []}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        example = {k: torch.from_numpy(v[:64]) for k, v in arrays.items()}
        model_file = export_torchscript(served, example, Path(tmp) / "model.pt")
        for kind in (["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]):
            repo = Path(tmp) / f"repo_{kind}"
            write_model_repository(repo, "ranker", model_file, spec, fmt="torchscript",
                                   kind=kind, max_batch_size=REQUESTS_PER_BATCH * rows,
                                   preferred_batch_sizes=[rows, 4 * rows],
                                   max_queue_size=64, num_threads=1 if kind == "cpu" else 0)
            with tritonserver(repo, timeout_s=120) as handle:
                with contextlib.closing(handle.grpc_client()) as client:
                    got = infer(client, "ranker", arrays)
                diff = float(np.abs(got.reshape(want.shape) - want).max())
                for in_flight in (1, IN_FLIGHT):
                    _in_flight(handle, arrays, 8 * in_flight, in_flight)  # warm-up, see below
                    before = scrape(handle.metrics_url)
                    latencies, errors, wall = _in_flight(handle, arrays, requests, in_flight)
                    rows_per_execution = triton_rows_per_execution(
                        before, scrape(handle.metrics_url))
                    out["results"].append({
                        "instance": f"KIND_{kind.upper()}", "in_flight": in_flight,
                        "requests": len(latencies), "errors": len(errors),
                        "first_error": errors[0] if errors else None,
                        "p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
                        "p99_ms": (round(latencies[int(0.99 * (len(latencies) - 1))], 2)
                                   if latencies else None),
                        "requests_per_s": round(len(latencies) / wall, 1),
                        "mean_requests_per_execution": (round(rows_per_execution / rows, 2)
                                                        if rows_per_execution else None),
                        "max_abs_diff_vs_eager_cpu": diff})
    out["numpy"] = np.__version__
    return out


# -- collaborative filtering -------------------------------------------------------------------
def builtin_matrix() -> tuple[Any, dict[str, Any]]:
    """ml-latest-small positives (rating >= 4) as a users x items matrix, and the start of a
    section that describes it."""
    from recsys.data import load_dataset
    from recsys.data.dataset import interaction_matrix

    data = load_dataset("ml-latest-small")
    positives = data.interactions[data.interactions["rating"] >= 4.0]
    train = interaction_matrix(positives, data.n_users, data.n_items)
    return train, {"matrix": list(train.shape), "nnz": int(train.nnz), "results": []}


def bench_ease(repeats: int) -> dict[str, Any]:
    from recsys.candidates.ease import EASE

    train, out = builtin_matrix()
    users = np.arange(min(256, train.shape[0]))
    for device in devices():
        def fit(device=device) -> None:
            model = EASE(l2=500.0, device=device).fit(train)
            sync(device)
            del model

        stats = rounded(time_calls(fit, repeats, warmup=1))
        model = EASE(l2=500.0, device=device).fit(train)
        score = rounded(time_calls(lambda model=model: model.score(users, train), repeats * 3,
                                   warmup=2))
        out["results"].append({"device": device, "fit": stats,
                               f"score_{len(users)}_users": score})
    return out


def bench_als(repeats: int) -> dict[str, Any]:
    from recsys.candidates.als import ALS

    train, out = builtin_matrix()
    for device in devices():
        def fit(device=device) -> None:
            ALS(factors=128, iterations=15, backend="torch", device=device).fit(train)

        out["results"].append({"device": device,
                               "fit": rounded(time_calls(fit, repeats, warmup=1))})
    return out


def bench_hardware() -> dict[str, Any]:
    hw = hardware()
    info: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda,
                            "torch_cuda": hw.torch_cuda, "faiss_gpus": hw.faiss_gpus,
                            "cupy": hw.cupy, "summary": str(hw)}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# -- report ------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def speedups(results: list[dict[str, Any]]) -> dict[str, float]:
    """CPU p50 / CUDA p50 per batch shape."""
    p50 = {(r["batch"], r["device"]): r["p50_ms"] for r in results}
    return {batch: round(p50[(batch, "cpu")] / p50[(batch, "cuda")], 1)
            for batch, device in p50 if device == "cuda"}


def table(columns: list[str], rows: list[list[Any]], left: int = 1) -> list[str]:
    """Markdown table lines (the first ``left`` columns left-aligned, the rest right-aligned: they
    hold numbers), then a blank line."""
    return ["| " + " | ".join(columns) + " |",
            "|" + "---|" * left + "---:|" * (len(columns) - left),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows), ""]


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = ["# GPU paths against the CPU", "",
             f"`python scripts/bench_gpu.py`. Machine: {m['cpus']} CPU cores, "
             f"GPU: {m['gpu'] or 'none'}, torch {m['torch']}, Python {m['python']}. "
             "Baseline: the same code with `device=cpu`, in the same run.", ""]
    sections = report["sections"]
    if "hardware" in sections:
        lines += ["## Hardware detected by `recsys.device`", "", "```",
                  sections["hardware"].get("summary", sections["hardware"].get("error", "")),
                  "```", ""]
    if "ranker" in sections and "results" in sections["ranker"]:
        r = sections["ranker"]
        lines += [f"## Served ranker, eager PyTorch ({r['rows_per_request']} rows per request)", ""]
        lines += table(
            ["device", "batch", "rows", "p50 ms", "p90 ms", "rows/s", "max abs diff vs CPU"],
            [[x["device"], x["batch"], x["rows"], x["p50_ms"], x["p90_ms"], f"{x['rows_per_s']:,}",
              "" if x["max_abs_diff_vs_cpu"] is None else f"{x['max_abs_diff_vs_cpu']:.1e}"]
             for x in r["results"]], left=2)
    if "triton" in sections and "results" in sections["triton"]:
        r = sections["triton"]
        lines += [f"## Served ranker on Triton, TorchScript ({r['rows_per_request']} rows "
                  "per request)", "",
                  f"Client and Python-backend stub under numpy {r.get('numpy', '?')}"
                  + (" (merged from a run under another interpreter on the same machine)"
                     if "merged_from" in r else "") + ". `KIND_CPU` runs one intra-op thread, "
                  "as served; requests per execution is what the dynamic batcher merged.", ""]
        lines += table(
            ["instance", "in flight", "requests", "errors", "p50 ms", "p99 ms", "req/s",
             "requests per execution", "max abs diff"],
            [[x["instance"], x["in_flight"], x["requests"], x["errors"], x["p50_ms"], x["p99_ms"],
              x["requests_per_s"], x["mean_requests_per_execution"],
              f"{x['max_abs_diff_vs_eager_cpu']:.1e}"] for x in r["results"]])
    for name, title in (("ease", "EASE (lambda 500)"),
                        ("als", "ALS, torch backend (128 factors, 15 iterations)")):
        if name in sections and "results" in sections[name]:
            r, ease = sections[name], name == "ease"
            lines += [f"## {title} on ml-latest-small positives ({r['matrix'][0]:,} x "
                      f"{r['matrix'][1]:,}, {r['nnz']:,} entries)", ""]
            lines += table(["device", "fit p50 ms", "fit min ms"] + ["score 256 users ms"] * ease,
                           [[x["device"], x["fit"]["p50_ms"], x["fit"]["min_ms"]]
                            + ([x["score_256_users"]["p50_ms"]] if ease else [])
                            for x in r["results"]])
    for name, section in sections.items():
        if "error" in section:
            lines += [f"**{name}: not measured.** {section['error']}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranker-dir", type=Path,
                        default=REPO / "outputs" / "artefacts" / "latest" / "ranker")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections out of {', '.join(SECTIONS)}")
    parser.add_argument("--rows", type=int, default=700, help="candidate rows per request")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--triton-requests", type=int, default=400)
    parser.add_argument("--fit-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="gpu.json files of other runs whose sections join this report "
                             "(e.g. the triton section run under a numpy<2 interpreter)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        print(f"bench_gpu: unknown section(s) {unknown}; choose from {list(SECTIONS)}",
              file=sys.stderr)
        return 2
    if {"ranker", "triton"} & set(chosen) and not (args.ranker_dir / "ranker_state.pt").is_file():
        print(f"bench_gpu: no ranker_state.pt under {args.ranker_dir}; run `make run` first or "
              "pass --ranker-dir", file=sys.stderr)
        return 2
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "hardware": bench_hardware,
        "ranker": lambda: bench_ranker(args.ranker_dir, args.rows, args.repeats),
        "triton": lambda: bench_triton(args.ranker_dir, args.rows, args.triton_requests),
        "ease": lambda: bench_ease(args.fit_repeats),
        "als": lambda: bench_als(args.fit_repeats),
    }
    report: dict[str, Any] = {"machine": machine(), "sections": {}}
    for name in chosen:
        print(f"bench_gpu: {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            report["sections"][name] = runs[name]()
        except Exception as exc:  # noqa: BLE001 - one section failing must not lose the others
            traceback.print_exc()
            report["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        print(f"bench_gpu: {name} done in {time.perf_counter() - t0:.1f}s", flush=True)
        with contextlib.suppress(Exception):  # keep what was measured if a later section hangs
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    for path in args.merge:
        other = json.loads(path.read_text())
        for name, section in other["sections"].items():
            report["sections"][name] = {**section, "merged_from": other["machine"]}
    ranker = report["sections"].get("ranker", {})
    if "results" in ranker and torch.cuda.is_available():
        report["speedup"] = speedups(ranker["results"])
    (args.out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gpu.md").write_text(markdown(report) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
