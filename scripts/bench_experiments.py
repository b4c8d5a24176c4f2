"""Experiments, proven on simulated users: A/A false positives (fixed horizon and sequential),
SRM false alarms, an A/B test of EASE alone against the two-stage ranker, interleaving of the
same pair, CUPED's variance reduction, the memory of serving every arm, and one smaller run
through the real HTTP stack.

    python scripts/bench_experiments.py --artefacts <run>/artefacts \\
        [--experiment two_tower_ml1m data.root=<movielens>] [--users N] [--quick]

The users are the held-out users of the bundle's own split (``recsys.ab.simulator``: a
position-biased click model over each user's held-out ratings); every request goes through the
real request path in process (``ExperimentPaths`` over the bundle, ONNX ranker), and every
figure comes from the report's own analysis (``recsys.experiments.analysis``) of the records
the simulation wrote, in the format the stack logs.

A/A: the A/B run's control users only (one treatment, so any difference is noise) re-split
``--aa`` times by the real assignment hash with a new salt each time, each split analysed
as the report does (fixed horizon at alpha 0.05; the mSPRT at every daily look; SRM).
Interleave vs A/B: the users each needs for 80 % power at its own observed effect, from its
own standard error (n x (z SE / effect)^2). Writes benchmarks/experiments.{md,json} and the
two reports (md + PNG) under benchmarks/experiments/.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

Z = 1.959964 + 0.841621  # two-sided alpha 0.05 + 80 % power


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def setup(args):
    from omegaconf import OmegaConf

    from recsys.config import compose_config
    from recsys.data import load_dataset
    from recsys.eval.protocol import prepare
    from recsys.serving.artefacts import ArtefactStore
    from recsys.serving.bundle import load_bundle

    cfg = compose_config([f"experiment={args.experiment}", *args.overrides])
    dataset = load_dataset(**OmegaConf.to_container(cfg.data, resolve=True))
    split, data = prepare(dataset, cfg.split.kind, cfg.split.fraction, cfg.split.seed,
                          cfg.eval.positive_threshold)
    bundle = load_bundle(*ArtefactStore(args.artefacts).resolve("latest"))
    if len(bundle.user_ids) != dataset.n_users or len(bundle.item_ids) != dataset.n_items:
        sys.exit(f"{args.artefacts} was not trained on experiment={args.experiment}'s data")
    return cfg, split, data, bundle


def fresh_path(bundle, serve_cfg):
    """A request path over a fresh copy of the training users (the simulation appends)."""
    from recsys.serving.rankers import OnnxRanker
    from recsys.serving.request_path import RequestPath
    from recsys.serving.state import InMemoryUserStore

    store = InMemoryUserStore.from_events(bundle.events, bundle.items)
    return RequestPath(bundle, store, OnnxRanker(bundle.ranker_dir / "model.onnx"), serve_cfg)


def simulate(bundle, serve_cfg, experiment, settings, held_out, users, progress=True):
    from recsys.ab.simulator import Simulator
    from recsys.serving.experiment_paths import ExperimentPaths

    base = fresh_path(bundle, serve_cfg)
    paths = ExperimentPaths(base, replace(serve_cfg, experiments={experiment.name: experiment}))
    assert not paths.failed, paths.failed
    sim = Simulator(paths.recommend_sync, base.recommend_sync, settings, held_out,
                    base.item_index, bundle.user_ids, base.store.append)
    started = time.perf_counter()
    records = list(sim.run(users, progress=progress))
    seconds = time.perf_counter() - started
    exposures = sum(r["type"] == "impression" for r in records)
    return records, {"records": len(records), "requests": exposures, "seconds": seconds,
                     "requests_per_s": exposures / seconds}


def aa_runs(records, experiment, n_runs, alpha):
    """A/A splits of the control users (module doc)."""
    from recsys.experiments.analysis import collect, compare, linearised, user_table
    from recsys.experiments.assignment import bucket
    from recsys.experiments.sequential import DEFAULT_TAU_SD
    from recsys.experiments.settings import ArmConfig
    from recsys.experiments.stats import msprt, srm_test

    data = collect(records, experiment)
    control = experiment.arms[0].name
    day = 86_400_000
    start = int(data.exposures["ts_ms"].min())
    ends = list(range(start + day, int(data.exposures["ts_ms"].max()) + day, day))
    looks = [user_table(data, end) for end in ends]
    looks = [t[t["arm"] == control].copy() for t in looks]
    final = looks[-1]
    aa = replace(experiment, name="aa", arms=[ArmConfig("a"), ArmConfig("b")])
    primary = experiment.primary_metric
    fixed, sequential, srm = [], [], []
    for k in range(n_runs):
        salt = f"aa-{k}"
        arm_of = {int(u): "a" if bucket(salt, int(u)) < 5000 else "b" for u in final.index}
        for table in looks:
            table["arm"] = [arm_of[int(u)] for u in table.index]
        # one mixing variance per experiment, from all its data (as the report does)
        tau2 = (DEFAULT_TAU_SD * float(np.nanstd(linearised(final, primary), ddof=1))) ** 2
        p_looks = []
        for table in looks:
            values = linearised(table, primary).to_numpy()
            mask = (table["arm"] == "a").to_numpy()
            p_looks.append(msprt(values[mask], values[~mask], tau2))
        fixed.append(compare(final, aa, alpha)[primary]["b"].p_value)
        sequential.append(min(p_looks))
        counts = final["arm"].value_counts()
        srm.append(srm_test([int(counts.get("a", 0)), int(counts.get("b", 0))], [1, 1]))
    fixed, sequential, srm = map(np.asarray, (fixed, sequential, srm))
    return {"runs": n_runs, "users": int(len(final)), "looks": len(looks), "alpha": alpha,
            "false_positive_rate_fixed": float((fixed < alpha).mean()),
            "false_positive_rate_sequential": float((sequential < alpha).mean()),
            "srm_false_alarm_rate": float((srm < 1e-3).mean()),
            "p_uniform_ks": _ks_uniform(fixed)}


def _ks_uniform(p: np.ndarray) -> float:
    from scipy.stats import kstest

    return float(kstest(p, "uniform").pvalue)


def users_needed(n: int, se: float, effect: float) -> float:
    """Users for 80 % power at ``effect`` given the standard error ``se`` seen with ``n``."""
    if not (math.isfinite(se) and math.isfinite(effect)) or effect == 0:
        return math.inf
    return n * (Z * se / abs(effect)) ** 2


def experiment_from_config(name: str):
    from recsys.config import compose_config
    from recsys.config.compose import plain
    from recsys.experiments.assignment import checked

    exp = plain(compose_config([f"ab=[{name}]"]).serve).experiments[name]
    return checked(name, replace(exp, traffic=1.0, offset=0.0))  # every simulated user


def memory_section(bundle, serve_cfg, ab, artefacts: Path) -> dict:
    """RSS of the served path, then with the A/B experiment's arms (same version: an
    ArmPath), then with an arm of a second artefact version (a copy of the bundle's files,
    linked, published under another name), loaded once per replica."""
    import os
    import tempfile

    from recsys.experiments.settings import ArmConfig
    from recsys.serving.artefacts import ArtefactStore
    from recsys.serving.bundle import load_bundle
    from recsys.serving.experiment_paths import ExperimentPaths
    from recsys.serving.rankers import OnnxRanker
    from recsys.serving.request_path import RequestPath

    before = rss_mb()
    base = fresh_path(bundle, serve_cfg)
    served = rss_mb()
    ExperimentPaths(base, replace(serve_cfg, experiments={ab.name: ab}))
    with_arms = rss_mb()
    version, path = ArtefactStore(artefacts).resolve("latest")
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "versions" / "second"
        for src in path.rglob("*"):
            dst = other / src.relative_to(path)
            if src.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src.resolve(), dst)

        def load(v: str) -> RequestPath:
            b = load_bundle(*ArtefactStore(tmp).resolve(v))
            return RequestPath(b, base.store, OnnxRanker(b.ranker_dir / "model.onnx"),
                               serve_cfg)

        two = replace(ab, name="versions", arms=[ArmConfig("control"),
                                                 ArmConfig("second", version="second")])
        ExperimentPaths(base, replace(serve_cfg, experiments={"versions": two}), load)
        with_version = rss_mb()
    return {"process_before_mb": before, "served_path_mb": served - before,
            "ab_arms_same_version_mb": with_arms - served,
            "arm_of_another_version_mb": with_version - with_arms}


def http_section(args, bundle, held_out, settings, out_dir: Path) -> dict:
    """A smaller run through the real stack: the stack assigns, logs the exposures; the
    simulator posts its events through the API; the report reads the log."""
    import os
    import tempfile

    from recsys.ab.sim_http import run_http
    from recsys.ab.simulator import ClickModel
    from recsys.config import compose_config
    from recsys.events.log import open_log
    from recsys.experiments.report import build_report
    from serve.stack import running_stack

    key = "bench-experiments-write-key"
    os.environ["RECSYS_API_KEYS"] = f"{key}:write"
    with tempfile.TemporaryDirectory() as live:
        overrides = [f"serve.artefacts_root={args.artefacts}", "serve.port=0",
                     "serve.ranker=onnx", f"serve.events.path={live}", "ab=[ease_vs_ranker]",
                     "serve.experiments.ease_vs_ranker.traffic=1.0"]
        cfg = compose_config(overrides)
        exp = experiment_from_config("ease_vs_ranker")
        index = {int(t): i for i, t in enumerate(bundle.item_ids)}
        rng = np.random.default_rng(1)
        chosen = rng.choice(np.asarray(sorted(held_out.ratings)), args.http_users, replace=False)
        users = [(int(bundle.user_ids[u]), int(u)) for u in chosen]
        with running_stack(cfg.serve) as running:
            started = time.perf_counter()
            run = run_http(running.url, key, users, args.http_visits,
                           ClickModel(settings, held_out), settings, index, seed=2)
            seconds = time.perf_counter() - started
            time.sleep(1.0)  # the last exposures' flush
            log = open_log(running.events, str(running.live_folder))
            records = [e.record for b in log.scan() for e in b]
            log.close()
        report = build_report(records, exp, out_dir, period_s=max(seconds / 5, 1.0),
                              title="ease_vs_ranker through the HTTP stack")
    summary = report.summary
    return {"users": len(users), "requests": run.requests, "seconds": seconds,
            "events_accepted": run.events_accepted, "errors": run.errors[:5],
            "exposures_logged": int(sum(r.get("type") == "impression" and "items" in r
                                        for r in records)),
            "report": str(report.path.relative_to(REPO)) if report.path.is_relative_to(REPO)
            else str(report.path), "report_users": summary.get("users"),
            "decision": summary.get("decision")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artefacts", type=Path, required=True)
    parser.add_argument("--experiment", default="two_tower_ml1m")
    parser.add_argument("--users", type=int, default=0, help="A/B users (0 = every held-out)")
    parser.add_argument("--interleave-users", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--pre-days", type=int, default=3)
    parser.add_argument("--visits-per-day", type=float, default=0.5)
    parser.add_argument("--aa", type=int, default=1000, help="A/A re-randomisations")
    parser.add_argument("--http-users", type=int, default=40)
    parser.add_argument("--http-visits", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few users and days")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks")
    parser.add_argument("overrides", nargs="*", help="hydra overrides (data.root=...)")
    args = parser.parse_args()
    if args.quick:
        args.users, args.interleave_users, args.days, args.pre_days = 150, 80, 2, 1
        args.aa, args.http_users, args.http_visits = 200, 8, 2
    from omegaconf import OmegaConf

    from recsys.ab.simulator import HeldOut, SimSettings
    from recsys.experiments.report import build_report
    from recsys.serving.settings import RankerKind

    started = time.perf_counter()
    cfg, split, data, bundle = setup(args)
    serve_cfg = replace(OmegaConf.to_object(cfg.serve), ranker=RankerKind.onnx,
                        artefacts_root=str(args.artefacts))
    held_out = HeldOut(split.test)
    rng = np.random.default_rng(0)
    everyone = rng.permutation(data.users)
    ab_users = everyone[: args.users or None]
    mix_users = everyone[: args.interleave_users]
    settings = SimSettings(days=args.days, pre_days=args.pre_days,
                           visits_per_day=args.visits_per_day,
                           positive_rating=float(cfg.eval.positive_threshold))
    ab = experiment_from_config("ease_vs_ranker")
    mix = experiment_from_config("interleave_ease")
    reports = args.out / "experiments"
    out: dict = {"artefact_version": bundle.version, "experiment": args.experiment,
                 "settings": vars(settings), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                   time.gmtime())}
    print("memory of the arms", flush=True)
    out["memory"] = memory_section(bundle, serve_cfg, ab, args.artefacts)
    print(f"A/B: {len(ab_users)} users, {args.pre_days}+{args.days} days", flush=True)
    records, out["ab_run"] = simulate(bundle, serve_cfg, ab, settings, held_out, ab_users)
    ab_report = build_report(records, ab, reports, title="A/B: EASE alone vs the two-stage "
                             "ranker (simulated users)")
    out["ab"] = ab_report.summary
    print(f"A/A: {args.aa} re-randomisations of the control users", flush=True)
    out["aa"] = aa_runs(records, ab, args.aa, ab.alpha)
    del records
    print(f"interleave: {len(mix_users)} users", flush=True)
    records, out["interleave_run"] = simulate(bundle, serve_cfg, mix, settings, held_out,
                                              mix_users)
    mix_report = build_report(records, mix, reports, title="Team-draft interleaving: EASE "
                              "alone vs the two-stage ranker (simulated users)")
    out["interleave"] = mix_report.summary
    del records
    out["power"] = power_section(out["ab"], out["interleave"], ab.primary_metric)
    if args.http_users:
        print(f"HTTP: {args.http_users} users through the stack", flush=True)
        out["http"] = http_section(args, bundle, held_out, settings, reports)
    out["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "experiments.json").write_text(json.dumps(out, indent=2, default=str))
    (args.out / "experiments.md").write_text(markdown(out, args))
    print((args.out / "experiments.md").read_text())


def power_section(ab: dict, mix: dict, primary: str) -> dict:
    """Users each design needs for 80 % power on the same pair, from its own SE and effect."""
    est = ab["comparisons"][primary]["ease_only"]
    n_ab = est["n_control"] + est["n_treatment"]
    se_ab = (est["ci_high"] - est["ci_low"]) / (2 * 1.959964)
    need_ab = users_needed(n_ab, se_ab, est["diff"])
    se_mix = (mix["ci"][1] - mix["ci"][0]) / (2 * 1.959964)  # bootstrap CI, as a normal SE
    need_mix = users_needed(mix["users"], se_mix, mix["delta"])
    return {"ab_users": n_ab, "ab_effect": est["diff"], "ab_se": se_ab,
            "ab_users_needed": need_ab, "interleave_users": mix["users"],
            "interleave_delta": mix["delta"], "interleave_se": se_mix,
            "interleave_users_needed": need_mix,
            "ratio": need_ab / need_mix if need_mix and math.isfinite(need_mix) else math.nan}


def markdown(out: dict, args) -> str:
    import platform

    aa, ab, mix, power, mem = out["aa"], out["ab"], out["interleave"], out["power"], out["memory"]
    primary = ab["primary_metric"]
    est = ab["comparisons"][primary]["ease_only"]
    s = out["settings"]

    def ok(flag: bool) -> str:
        return "met" if flag else "**not met**"

    cuped = ab["cuped_reduction"]["ease_only"]
    lines = [
        "# Experiments: the statistics proven on simulated users", "",
        f"Machine: {platform.platform()}, 2 CPU cores, no GPU; {out['date']}; "
        f"{out['seconds'] / 60:.1f} min in all. Artefact version {out['artefact_version']} "
        f"(`{out['experiment']}`).", "",
        "```", "python scripts/bench_experiments.py --artefacts <run>/artefacts "
        + " ".join(args.overrides), "```", "",
        "Simulated users: the bundle's held-out users; a position-biased click model over "
        "their held-out ratings (`recsys/ab/simulator.py`: examine position k with "
        f"1/(k+1)^{s['examine_decay']:g}; click a held-out positive {s['click_positive']:g}, "
        f"another rated title {s['click_rated']:g}, anything else {s['click_other']:g}; "
        f"play after a click {s['play_positive']:g} / {s['play_other']:g}; watch fraction "
        "around rating / 5), visits Poisson per day with Gamma(1) activity per user, "
        f"{s['pre_days']} pre-experiment days on the control, then {s['days']} experiment "
        "days; every request through the real request path in process (`ExperimentPaths`, "
        "ONNX ranker, the served rerank), plays fed back into the user store. Every figure "
        "is the report's analysis of the records the run wrote, in the stack's log format.",
        "", "## Targets", "",
        "| target | measured | |", "|---|---|---|",
        f"| A/A false-positive rate, fixed horizon, alpha 0.05: 3-7 % | "
        f"{100 * aa['false_positive_rate_fixed']:.1f} % of {aa['runs']} | "
        f"{ok(0.03 <= aa['false_positive_rate_fixed'] <= 0.07)} |",
        f"| A/A false-positive rate, sequential (mSPRT, {aa['looks']} daily looks): 3-7 % | "
        f"{100 * aa['false_positive_rate_sequential']:.1f} % of {aa['runs']} | "
        f"{ok(0.03 <= aa['false_positive_rate_sequential'] <= 0.07)} |",
        f"| A/A SRM false alarms (p < 0.001): at most 0.5 % | "
        f"{100 * aa['srm_false_alarm_rate']:.1f} % of {aa['runs']} | "
        f"{ok(aa['srm_false_alarm_rate'] <= 0.005)} |",
        f"| A/B EASE alone vs the two-stage ranker: detected | {primary} "
        f"{est['control']:.4f} vs {est['treatment']:.4f}, p = {est['p_value']:.2g} | "
        f"{ok(est['p_value'] < 0.05)} |",
        f"| interleaving needs at least 10x fewer users than A/B for 80 % power | "
        f"{power['ab_users_needed']:,.0f} vs {power['interleave_users_needed']:,.0f} "
        f"users: {power['ratio']:.1f}x | {ok(power['ratio'] >= 10)} |",
        f"| CUPED variance reduction on {primary}: at least 20 % | {100 * cuped:.1f} % | "
        f"{ok(cuped >= 0.2)} |", "",
        "## A/A", "",
        f"The A/B run's control users ({aa['users']:,}: one treatment, so every difference "
        f"is noise) re-split {aa['runs']} times by the assignment hash (`bucket`, a new salt "
        "each time), each split analysed as the report does. Kolmogorov-Smirnov test of the "
        f"fixed-horizon p-values against uniform: p = {aa['p_uniform_ks']:.3f}.", "",
        "## A/B and interleaving on the same pair", "",
        "| design | users | effect | standard error | users for 80 % power |",
        "|---|---:|---:|---:|---:|",
        f"| A/B, {primary} (ease_only - control) | {power['ab_users']:,} | "
        f"{power['ab_effect']:+.4f} | {power['ab_se']:.4f} | "
        f"{power['ab_users_needed']:,.0f} |",
        f"| team-draft interleaving, per-user preference | {power['interleave_users']:,} | "
        f"{power['interleave_delta']:+.4f} | {power['interleave_se']:.4f} | "
        f"{power['interleave_users_needed']:,.0f} |", "",
        f"Interleaving: {mix['wins']} users prefer the control (the ranker), "
        f"{mix['losses']} EASE alone, {mix['ties']} ties; sign test p = {mix['sign_p']:.2g}. "
        "Users needed: n x (2.80 x SE / effect)^2 from each design's own standard error "
        "(A/B: the delta method; interleaving: the bootstrap CI over users).", "",
        "Reports: [A/B](experiments/ease_vs_ranker.md), "
        "[interleaving](experiments/interleave_ease.md) (per arm metrics, CIs, SRM, CUPED, "
        "the sequential test, plots).", "",
        "## Serving every arm: memory per replica", "",
        "| what | RSS MB |", "|---|---:|",
        f"| the served request path (bundle, user store, ranker) | "
        f"{mem['served_path_mb']:,.0f} |",
        f"| + the A/B arms of the same version (an `ArmPath`: own generators, shared catalog "
        f"and store) | {mem['ab_arms_same_version_mb']:,.1f} |",
        f"| + an arm of a second artefact version (loaded once) | "
        f"{mem['arm_of_another_version_mb']:,.0f} |", "",
        "## Simulation throughput (in process)", "",
        "| run | requests | records | seconds | requests/s |", "|---|---:|---:|---:|---:|"]
    for name in ("ab_run", "interleave_run"):
        r = out[name]
        lines.append(f"| {name.replace('_run', '')} | {r['requests']:,} | {r['records']:,} | "
                     f"{r['seconds']:.0f} | {r['requests_per_s']:.1f} |")
    if "http" in out:
        h = out["http"]
        lines += ["", "## Through the real HTTP stack", "",
                  f"{h['users']} users x {args.http_visits} visits against `python -m serve` "
                  "(ONNX ranker, SQLite log, `ab=[ease_vs_ranker]`): "
                  f"{h['requests']} responses, {h['exposures_logged']} exposures in the log, "
                  f"{h['events_accepted']} events accepted, errors: {h['errors'] or 'none'}; "
                  f"the report from the log: users per arm {h['report_users']}, decision: "
                  f"{h['decision']} (too few users to decide, as expected).", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
