"""Command line: version table, then the selected smokes, then a summary and the exit code."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from recsys.doctor.hints import FIXES, hint_for
from recsys.doctor.report import (
    Check,
    exit_code,
    format_result,
    format_summary,
    format_versions,
    results_header,
    run_checks,
)
from recsys.runtime.quiet import quiet_libraries


def default_checks() -> list[Check]:
    """Every smoke, in the order a pipeline uses them; limits are ~5x their time on 2 CPUs."""
    from recsys.doctor.checks import (
        faiss_smoke,
        ray_smoke,
        redis_smoke,
        torchrec_smoke,
        wandb_smoke,
    )
    from recsys.doctor.triton_smoke import triton_smoke

    smokes = (("torchrec", torchrec_smoke, 60), ("faiss", faiss_smoke, 30),
              ("ray", ray_smoke, 90), ("triton", triton_smoke, 90), ("wandb", wandb_smoke, 60),
              ("redis", redis_smoke, 30))
    return [Check(name, fn, timeout_s=limit, fix=FIXES[name], hint=hint_for(name))
            for name, fn, limit in smokes]


def _names(value: str | None) -> list[str]:
    return [n.strip().lower() for n in (value or "").split(",") if n.strip()]


def select_checks(checks: Sequence[Check], only: str | None, skip: str | None) -> list[Check]:
    """Apply ``--only``/``--skip``; an unknown name is an error (a typo must not pass silently)."""
    known = {c.name for c in checks}
    wanted, unwanted = _names(only), _names(skip)
    unknown = sorted(set(wanted + unwanted) - known)
    if unknown:
        raise ValueError(f"unknown smoke(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(sorted(known))}")
    return [c for c in checks if (not wanted or c.name in wanted) and c.name not in unwanted]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m recsys.doctor",
        description="Show component versions and GPU builds, then smoke-test each real component.",
    )
    parser.add_argument("--only", help="comma-separated smokes to run (e.g. torchrec,faiss)")
    parser.add_argument("--skip", help="comma-separated smokes to leave out (e.g. triton)")
    parser.add_argument("--timeout", type=float, help="override every smoke's time limit (s)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="keep library logs and print tracebacks of failures")
    return parser.parse_args(argv)


def _print(out: TextIO, text: str = "") -> None:
    print(text, file=out, flush=True)


def main(
    argv: Sequence[str] | None = None,
    checks: Sequence[Check] | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the doctor; returns the exit code (0 only if every selected smoke passed)."""
    args = parse_args(argv)
    out = sys.stdout if out is None else out
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries(args.verbose)
    start = time.perf_counter()
    try:
        selected = select_checks(default_checks() if checks is None else checks,
                                 args.only, args.skip)
    except ValueError as exc:
        _print(out, f"error: {exc}")
        return 2
    if args.timeout:
        selected = [Check(c.name, c.run, args.timeout, c.fix, c.hint) for c in selected]

    from recsys.doctor.versions import version_rows

    _print(out, f"recsys doctor: python {platform.python_version()}, {platform.system().lower()}, "
                f"{os.cpu_count()} CPUs")
    _print(out)
    _print(out, format_versions(version_rows()))
    _print(out)
    _print(out, results_header())
    results = run_checks(selected, on_result=lambda r: _print(out, format_result(r, args.verbose)))
    _print(out)
    _print(out, format_summary(results, time.perf_counter() - start))
    return exit_code(results)
