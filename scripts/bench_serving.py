"""Serving benchmark: the whole stack under load on loopback, against two baselines in the same
run: a no-op Ray Serve app (the floor of Ray Serve + HTTP on this machine) and the same
pipeline with the ranker in-process (onnxruntime) instead of on Triton.

    python scripts/bench_serving.py [--artefacts outputs/artefacts] [--seconds 10]

Per configuration:

* closed loop with ``wrk`` (a C load generator, so the generator does not eat the cores it
  measures) at fixed concurrency: throughput, p50/p90/p99/max, errors;
* open loop at fixed request rates (an asyncio generator in its own process that sends on a
  fixed schedule and measures from the scheduled time, so a stall is not hidden by the
  generator waiting for it): p50/p95/p99/max and errors;
* per-stage mean latency from the router's ``/metrics`` and the mean Triton batch (rows per
  model execution) from Triton's own metrics.

Writes ``benchmarks/serving.json`` and ``benchmarks/serving.md``. Needs the artefacts of a ranker
run (``make run`` or ``python train.py experiment=two_tower_small``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.bench_metrics import (  # noqa: E402
    machine_busy_s,
    scrape,
    stage_means,
    triton_rows_per_execution,
)

# ---- load generators -------------------------------------------------------------------------
WRK_SCRIPT = """
local ids = {%s}
math.randomseed(42)
request = function()
  local path = "/v1/recommendations?n=20&user_id=" .. ids[math.random(#ids)]
  return wrk.format("GET", path)
end
"""
UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_closed_loop(url: str, users: list[int], connections: int, seconds: int) -> dict:
    """wrk with ``connections`` in flight (one thread); latencies in ms. ``cpu_ms_per_request``:
    the whole machine's busy CPU time over the run per answered request (wrk's own share
    included), the cost the cores pay for one request."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_SCRIPT % ", ".join(map(str, users)))
    busy = machine_busy_s()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", fh.name, url], capture_output=True, text=True, timeout=seconds + 60)
    busy = machine_busy_s() - busy
    os.unlink(fh.name)
    text = out.stdout
    done = re.search(r"(\d+) requests in", text)
    requests = int(done.group(1)) if done else 0
    pct = {p: _ms(v, u) for p, v, u in re.findall(r"\s(50|75|90|99)%\s+([\d.]+)(us|ms|s)", text)}
    mx = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(x) for x in sock.groups()) if sock else 0
    return {"connections": connections, "rps": float(rps.group(1)) if rps else 0.0,
            "p50_ms": pct.get("50"), "p90_ms": pct.get("90"), "p99_ms": pct.get("99"),
            "max_ms": _ms(*mx.groups()) if mx else None, "errors": errors,
            "requests": requests,
            "cpu_ms_per_request": 1e3 * busy / requests if requests else None}


def _ms(value: str, unit: str) -> float:
    return float(value) * UNIT_MS[unit]


async def _open_loop(url: str, users: list[int], rate: float, seconds: float) -> dict:
    import httpx

    n = int(rate * seconds)
    lat = np.full(n, np.nan)
    errors = 0
    rng = np.random.default_rng(0)
    picks = rng.choice(users, n)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits) as client:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                res = await client.get("/v1/recommendations",
                                       params={"user_id": int(picks[i]), "n": 20})
                if res.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            lat[i] = (time.perf_counter() - due) * 1e3  # from the schedule: no omission

        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - start
    done = lat[~np.isnan(lat)]
    return {"rate": rate, "sent": n, "achieved_rps": n / wall, "errors": errors,
            **{f"p{p}_ms": float(np.percentile(done, p)) for p in (50, 95, 99)},
            "max_ms": float(done.max())}


def open_loop(url: str, users: list[int], rate: float, seconds: float) -> dict:
    """Run the asyncio generator in its own process (it must not share the server's GIL)."""
    code = ("import asyncio, json, sys; sys.path.insert(0, sys.argv[1]); "
            "from scripts.bench_serving import _open_loop; "
            "print(json.dumps(asyncio.run(_open_loop(*json.loads(sys.argv[2])))))")
    params = json.dumps([url, users, rate, seconds])
    out = subprocess.run([sys.executable, "-c", code, str(REPO), params], capture_output=True,
                         text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the configurations ----------------------------------------------------------------------
# name -> serve overrides (None: the no-op floor). The baseline for the Triton stack is the same
# stack with the ranker in-process; the two-replica row shows what a second pipeline replica buys
# on these 2 cores (both replicas share them with the proxy, the router and Triton); the fused
# row runs the pipeline inside the router's replica (serve.topology=fused: one hop less); the
# haproxy rows put Ray's C ingress in front (serve=fast is
# pipeline_triton_fused_2_replicas_haproxy).
TRITON, FUSED = ["serve.ranker=triton"], ["serve.topology=fused"]
HAPROXY = ["serve.ingress=haproxy"]
TWO_REPLICAS = ["serve.pipeline.num_replicas=2", "serve.pipeline.num_cpus=0.5"]
CONFIGS: dict[str, list[str] | None] = {
    "noop_ray_serve": None,
    "noop_router_pipeline": None,
    "noop_ray_serve_haproxy": None,
    "pipeline_triton": TRITON,
    "pipeline_in_process": ["serve.ranker=onnx"],
    "pipeline_triton_2_replicas": TRITON + TWO_REPLICAS,
    "pipeline_triton_fused": TRITON + FUSED,
    "pipeline_triton_fused_2_replicas": TRITON + FUSED + TWO_REPLICAS,
    "pipeline_triton_haproxy": TRITON + HAPROXY,
    "pipeline_triton_2_replicas_haproxy": TRITON + TWO_REPLICAS + HAPROXY,
    "pipeline_triton_fused_2_replicas_haproxy": TRITON + FUSED + TWO_REPLICAS + HAPROXY,
}
# the floors: (deployments, ingress)
FLOORS = {"noop_ray_serve": (1, "proxy"), "noop_router_pipeline": (2, "proxy"),
          "noop_ray_serve_haproxy": (1, "haproxy")}


def noop_app(hops: int = 1):
    """The floor: a FastAPI ingress that answers at once (``hops=1``), or that asks a second,
    no-op deployment through a handle (``hops=2``: the serving stack's router -> pipeline shape
    with no work in it)."""
    from fastapi import FastAPI
    from ray import serve

    api = FastAPI()

    @serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.5})
    class NoopPipeline:
        async def recommend(self, query: dict) -> dict:
            return {"user_id": query["user_id"], "items": []}

    @serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.5})
    @serve.ingress(api)
    class Noop:
        def __init__(self, pipeline=None) -> None:
            self.pipeline = pipeline

        @api.get("/v1/recommendations")
        async def recommend(self, user_id: int, n: int = 20) -> dict:
            if self.pipeline is None:
                return {"user_id": user_id, "items": []}
            return await self.pipeline.recommend.remote({"user_id": user_id, "n": n})

    return Noop.bind(NoopPipeline.bind()) if hops == 2 else Noop.bind()


def measure(url: str, users: list[int], args, metrics_url: str | None,
            triton_metrics: str | None, triton_pid: int | None = None) -> dict:
    import httpx

    from recsys.runtime.procs import cpu_seconds

    for _ in range(20):  # warm every replica and connection
        httpx.get(f"{url}/v1/recommendations", params={"user_id": users[0], "n": 20}, timeout=30)
    result: dict = {"closed_loop": [], "open_loop": []}
    for c in args.connections:
        before = scrape(metrics_url) if metrics_url else {}
        tb = scrape(triton_metrics) if triton_metrics else {}
        triton_cpu = cpu_seconds(triton_pid) if triton_pid else 0.0  # server + its stub
        run = wrk_closed_loop(url, users, c, args.seconds)
        if triton_pid and run["requests"]:
            run["triton_cpu_ms_per_request"] = (
                1e3 * (cpu_seconds(triton_pid) - triton_cpu) / run["requests"])
        if metrics_url:
            run["stage_ms"] = stage_means(before, scrape(metrics_url))
        if triton_metrics:
            run["triton_mean_batch_rows"] = triton_rows_per_execution(tb, scrape(triton_metrics))
        result["closed_loop"].append(run)
        print(f"  closed c={c}: {run['rps']:.0f} req/s p50 {run['p50_ms']} p99 "
              f"{run['p99_ms']} errors {run['errors']}", flush=True)
    for rate in args.rates:
        run = open_loop(url, users, rate, args.seconds)
        result["open_loop"].append(run)
        print(f"  open {rate:.0f}/s: p50 {run['p50_ms']:.1f} p99 {run['p99_ms']:.1f} "
              f"errors {run['errors']}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artefacts", type=Path, default=REPO / "outputs" / "artefacts")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--rates", type=float, nargs="+", default=[25, 50, 100])
    parser.add_argument("--users", choices=["all", "active"], default="all",
                        help="all: every known user, uniformly (the real mix); active: the 200 "
                             "with the longest histories (the worst case for the sources)")
    parser.add_argument("--only", nargs="+", choices=CONFIGS, default=list(CONFIGS),
                        help="configurations to run (default: all, in one run)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk); it is the closed-loop "
                 "load generator")
    import httpx
    from ray import serve

    from recsys.config import compose_config
    from recsys.runtime.environ import scoped_environ
    from recsys.runtime.ports import free_port
    from recsys.runtime.ray_local import local_ray
    from recsys.serving.artefacts import ArtefactStore
    from recsys.serving.bundle import load_bundle
    from serve.stack import ray_serve_env, running_stack

    bundle = load_bundle(*ArtefactStore(args.artefacts).resolve("latest"))
    counts = bundle.events["user_idx"].value_counts()
    chosen = counts.index[:200] if args.users == "active" else counts.index
    users = [int(bundle.user_ids[i]) for i in chosen]
    report: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                    "artefact_version": bundle.version, "seconds": args.seconds,
                    "dataset_items": int(len(bundle.item_ids)), "users": args.users,
                    "user_count": len(users),
                    "history_median": float(np.median(counts.loc[chosen])), "runs": {}}
    serve_cfg = compose_config().serve
    report["throughput_optimized"] = bool(serve_cfg.throughput_optimized)
    for name, (hops, ingress) in FLOORS.items():
        if name not in args.only:
            continue
        print(f"no-op Ray Serve floor, {hops} deployment(s), {ingress}", flush=True)
        # the same Ray Serve mode as the stack (serve.throughput_optimized)
        mode = ray_serve_env(serve_cfg.throughput_optimized, ingress, "127.0.0.1")
        with scoped_environ(mode), local_ray():
            port = free_port()
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            serve.run(noop_app(hops), name="noop", route_prefix="/", blocking=False)
            report["runs"][name] = measure(f"http://127.0.0.1:{port}", users, args, None, None)
            serve.shutdown()
    for name, overrides in CONFIGS.items():
        if name in FLOORS or name not in args.only:
            continue
        print(name, flush=True)
        cfg = compose_config([f"serve.artefacts_root={args.artefacts}", "serve.port=0",
                              *overrides])
        with running_stack(cfg.serve) as stack:
            triton = stack.triton
            report["runs"][name] = measure(stack.url, users, args, f"{stack.url}/metrics",
                                           triton.metrics_url if triton else None,
                                           triton.pid if triton else None)
            sample = httpx.get(f"{stack.url}/v1/recommendations",
                               params={"user_id": users[0], "n": 20}, timeout=30).json()
            report["runs"][name]["sample_items"] = len(sample["items"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(report, indent=2))
    (args.out / "serving.md").write_text(markdown(report))
    print(markdown(report))


def throughput_bound(report: dict) -> list[str]:
    """The most any configuration with the ranker on Triton can answer here. A request costs
    at least one pass through the no-op Ray Serve floor plus the Triton processes' share of its
    ranker call, and both run on the same cores, so the cheapest CPU time per request of each
    (at its most efficient load point) adds up to a ceiling of cores / (floor + Triton)."""
    runs = report["runs"]
    triton = [r["triton_cpu_ms_per_request"] for run in runs.values()
              for r in run["closed_loop"] if r.get("triton_cpu_ms_per_request")]
    floor = runs.get("noop_ray_serve")
    if not floor or not triton:
        return []
    floor_ms = min(r["cpu_ms_per_request"] for r in floor["closed_loop"])
    floor_rps = max(r["rps"] for r in floor["closed_loop"])
    triton_ms, cores = min(triton), report["machine"]["cpus"]
    ceiling = 1e3 * cores / (floor_ms + triton_ms)
    rows = ["", "## Throughput ceiling on this machine", "",
            f"- No-op Ray Serve floor: peak {floor_rps:.0f} req/s; at best {floor_ms:.2f} ms of "
            "the machine's CPU per request (wrk included).",
            f"- Triton (server + Python-backend stub) inside the stack: at best "
            f"{triton_ms:.2f} ms of CPU per request (the column Triton CPU ms/req).",
            f"- A request that only crossed Ray Serve and called Triton, with no pipeline work, "
            f"would cost {floor_ms + triton_ms:.2f} ms: {cores} cores answer at most "
            f"**{ceiling:.0f} req/s = {ceiling / floor_rps:.2f} x the no-op floor**.",
            "", "| configuration | peak req/s | x no-op floor |", "|---|---|---|"]
    for name, run in runs.items():
        if run["closed_loop"] and not name.startswith("noop_"):
            best = max(r["rps"] for r in run["closed_loop"])
            rows.append(f"| {name} | {best:.0f} | {best / floor_rps:.2f} |")
    return rows


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = ["# Serving benchmark", "",
             f"Machine: {m['cpus']} CPU cores. Artefact version {report['artefact_version']} "
             f"({report['dataset_items']:,} titles). Produced by "
             "`python scripts/bench_serving.py`; every configuration in the same run, "
             f"{report['seconds']} s per load point, n=20 per request, user ids drawn "
             f"uniformly from {report['user_count']:,} "
             f"{'known users' if report['users'] == 'all' else 'most active users'} "
             f"(median history {report['history_median']:.0f} events). Ray Serve throughput "
             f"mode {'on' if report.get('throughput_optimized') else 'off'} for every row.", "",
             "## Closed loop (wrk, fixed concurrency)", "",
             "| configuration | connections | req/s | p50 ms | p90 ms | p99 ms | max ms | errors "
             "| Triton rows/exec | CPU ms/req | Triton CPU ms/req |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(value: float | None, fmt: str) -> str:
        return "" if value is None else format(value, fmt)

    for name, run in report["runs"].items():
        for r in run["closed_loop"]:
            lines.append(f"| {name} | {r['connections']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
                         f"{r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | "
                         f"{r['errors']} | {cell(r.get('triton_mean_batch_rows'), '.0f')} | "
                         f"{cell(r.get('cpu_ms_per_request'), '.1f')} | "
                         f"{cell(r.get('triton_cpu_ms_per_request'), '.2f')} |")
    lines += ["", "CPU ms/req: the whole machine's busy CPU time during the run per answered "
              "request (wrk included), what the cores pay for one request; Triton CPU ms/req: "
              "the Triton server's and its stub's share of it."]
    lines += throughput_bound(report)
    lines += ["", "## Open loop (fixed request rate, latency from the scheduled send time)", "",
              "| configuration | rate/s | achieved/s | p50 ms | p95 ms | p99 ms | max ms "
              "| errors |",
              "|---|---|---|---|---|---|---|---|"]
    for name, run in report["runs"].items():
        for r in run["open_loop"]:
            lines.append(f"| {name} | {r['rate']:.0f} | {r['achieved_rps']:.0f} | "
                         f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | "
                         f"{r['max_ms']:.1f} | {r['errors']} |")
    lines += ["", "## Where the time goes (mean ms per stage, closed loop)", "",
              "| configuration | connections | " + " | ".join(
                  ["features", "candidates", "filters", "rank", "rerank", "response"]) + " |",
              "|---|---|---|---|---|---|---|---|"]
    for name, run in report["runs"].items():
        for r in run["closed_loop"]:
            if "stage_ms" in r:
                s = r["stage_ms"]
                lines.append(f"| {name} | {r['connections']} | " + " | ".join(
                    f"{s.get(k, float('nan')):.1f}" for k in
                    ("features", "candidates", "filters", "rank", "rerank", "response")) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
