"""``python -m recsys.ab report NAME [--out DIR] [--period-s S] [key=value overrides]``: the
experiment report from the event log.

NAME is an experiment of ``configs/ab/`` (``ab=[NAME]`` is added to the overrides when the
command line does not select it); the log is the stack's (``serve.events``: backend, path or
redis_url, or the folder beside ``serve.artefacts_root``). Writes ``<out>/<NAME>.md`` and its
PNG plots (default ``benchmarks/experiments/``) and prints the summary. A bad name, override
or an unreachable log ends with one sentence and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from recsys import RecsysError
from recsys.config.compose import compose_or_refuse, plain
from recsys.events.log import LogUnavailable, open_log
from recsys.serving.settings import ServeConfig

log = logging.getLogger("recsys.ab")
DEFAULT_OUT = Path("benchmarks") / "experiments"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recsys.ab",
                                description="Experiment reports from the event log.")
    sub = p.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="per-arm metrics, tests and plots of one experiment")
    report.add_argument("name", help="an experiment of configs/ab/")
    report.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where md and PNGs go")
    report.add_argument("--period-s", type=float, default=86_400.0,
                        help="seconds between the sequential test's looks (default a day)")
    return p


def with_experiment(overrides: list[str], name: str) -> list[str]:
    """``overrides`` selecting ``name`` in the ``ab`` group (kept when they already do)."""
    chosen = [o for o in overrides if o.split("=", 1)[0].lstrip("+") == "ab"]
    if not chosen:
        return [*overrides, f"ab=[{name}]"]
    return overrides


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    p = parser()
    args, rest = p.parse_known_args(argv)  # hydra overrides may come before or after options
    if bad := [a for a in rest if "=" not in a]:
        p.error(f"unrecognized arguments: {' '.join(bad)} (overrides are key=value)")
    args.overrides = rest
    try:
        cfg = compose_or_refuse(with_experiment(list(args.overrides), args.name))
        serve_cfg: ServeConfig = plain(cfg.serve)
        if args.name not in serve_cfg.experiments:
            raise RecsysError(f"experiment {args.name!r} is not selected by the overrides; "
                              f"selected: {sorted(serve_cfg.experiments)}")
        if args.period_s <= 0:
            raise RecsysError(f"--period-s must be > 0, got {args.period_s}")
        return report(serve_cfg, args.name, args.out, args.period_s)
    except (RecsysError, LogUnavailable, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def report(serve_cfg: ServeConfig, name: str, out: Path, period_s: float) -> int:
    from recsys.experiments.assignment import checked
    from recsys.experiments.report import build_report

    experiment = checked(name, serve_cfg.experiments[name])
    event_log = open_log(serve_cfg.events, str(serve_cfg.live_folder()))
    try:
        records = (entry.record for batch in event_log.scan() for entry in batch)
        built = build_report(records, experiment, out, period_s=period_s)
    finally:
        event_log.close()
    print(f"wrote {built.path} ({len(built.plots)} plots)")
    print(json.dumps(built.summary, indent=2))
    return 0
