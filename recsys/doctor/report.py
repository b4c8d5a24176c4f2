"""Run checks with a time limit each and turn their outcomes into table lines and an exit code.

Kept free of any heavy import so the reporting rules (one line per failure, the component's fix,
exit code 1 on any failure, never a raw traceback unless asked) are unit-testable in milliseconds.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the real import pulls in torch; reporting must stay import-light
    from recsys.doctor.versions import VersionRow

THREAD_PREFIX = "doctor-check-"
DEFAULT_FIX = "pip install --no-deps -r requirements.lock"


@dataclass(frozen=True)
class Check:
    """A smoke: ``run()`` returns a short detail on success and raises on failure."""

    name: str
    run: Callable[[], str]
    timeout_s: float = 60.0
    fix: str = DEFAULT_FIX
    hint: Callable[[BaseException], str | None] | None = None  # error-specific fix, if any

    def fix_for(self, exc: BaseException) -> str:
        specific = None
        if self.hint is not None:
            try:
                specific = self.hint(exc)
            except Exception:  # noqa: BLE001 - a broken hint must not hide the real failure
                specific = None
        return specific or self.fix


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    seconds: float
    detail: str
    fix: str | None = None  # set on failure
    trace: str | None = None  # full traceback, shown only with --verbose
    timed_out: bool = False


def one_line(exc: BaseException, limit: int = 320) -> str:
    """``Type: message`` on one line (multi-line library errors are joined with ' | ')."""
    msg = " | ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_check(check: Check) -> CheckResult:
    """Run one check in a daemon thread and give up after ``check.timeout_s``.

    A thread (not a subprocess) keeps the already-imported torch/ray shared between checks; the
    price is that a stuck check cannot be killed, only abandoned (``__main__`` then hard-exits).
    """
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["detail"] = check.run()
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a FAIL line
            box["exc"] = exc
            box["trace"] = traceback.format_exc()

    start = time.perf_counter()
    thread = threading.Thread(target=target, name=THREAD_PREFIX + check.name, daemon=True)
    thread.start()
    thread.join(check.timeout_s)
    seconds = time.perf_counter() - start
    if thread.is_alive():
        exc = TimeoutError(f"no result within {check.timeout_s:g} s")
        return CheckResult(check.name, False, seconds, one_line(exc), check.fix_for(exc),
                           timed_out=True)
    if "exc" in box:
        exc = box["exc"]
        assert isinstance(exc, BaseException)
        return CheckResult(check.name, False, seconds, one_line(exc), check.fix_for(exc),
                           trace=str(box["trace"]))
    return CheckResult(check.name, True, seconds, str(box.get("detail", "")))


def run_checks(
    checks: Iterable[Check], on_result: Callable[[CheckResult], None] | None = None
) -> list[CheckResult]:
    """Run checks in order; ``on_result`` streams each line as soon as it is known."""
    results = []
    for check in checks:
        result = run_check(check)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def exit_code(results: Iterable[CheckResult]) -> int:
    """0 only when every check passed (an empty selection counts as a pass)."""
    return 0 if all(r.ok for r in results) else 1


def format_versions(rows: Iterable[VersionRow]) -> str:
    """Aligned component | version | GPU-variant table."""
    rows = list(rows)
    w1 = max([len("component"), *(len(r.component) for r in rows)])
    w2 = max([len("version"), *(len(r.version) for r in rows)])
    lines = [f"{'component':<{w1}}  {'version':<{w2}}  GPU variant active"]
    lines += [f"{r.component:<{w1}}  {r.version:<{w2}}  {r.gpu}" for r in rows]
    return "\n".join(lines)


NAME_WIDTH = 10


def results_header() -> str:
    return f"{'result':<6}  {'smoke':<{NAME_WIDTH}}  {'seconds':>7}  detail"


def format_result(result: CheckResult, verbose: bool = False) -> str:
    status = "PASS" if result.ok else "FAIL"
    line = f"{status:<6}  {result.name:<{NAME_WIDTH}}  {result.seconds:>7.2f}  {result.detail}"
    if not result.ok and verbose and result.trace:
        line += "\n" + result.trace.rstrip()
    return line


def format_summary(results: list[CheckResult], wall_s: float) -> str:
    failed = [r for r in results if not r.ok]
    if not failed:
        return f"all {len(results)} smokes passed in {wall_s:.1f} s"
    lines = [f"{len(failed)} of {len(results)} smokes FAILED ({wall_s:.1f} s). To fix:"]
    lines += [f"  {r.name}: {r.fix}" for r in failed]
    return "\n".join(lines)
