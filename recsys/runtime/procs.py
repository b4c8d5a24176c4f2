"""Process helpers over psutil: a server's children, their CPU time, and making sure they die.

tritonserver gives up on unloading Python-backend models at its exit timeout and exits
"immediately"; now and then the stub it spawned survives as an orphan (ignoring SIGTERM) holding
a shared-memory region, so teardown records the children while the server runs and reaps them
after it. ``psutil.Process`` remembers each process's start time, so a pid the kernel has since
handed to another program is never signalled (psutil checks before it sends a signal).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import psutil

__all__ = ["children", "cpu_seconds", "reap", "running"]

log = logging.getLogger(__name__)


def children(pid: int, marker: str = "") -> list[psutil.Process]:
    """Direct children of ``pid`` whose argv contains ``marker`` (all of them for "");
    empty once ``pid`` has exited."""
    try:
        kids = psutil.Process(pid).children()
    except psutil.Error:
        return []
    found = []
    for kid in kids:
        try:
            if marker in " ".join(kid.cmdline()):
                found.append(kid)
        except psutil.Error:  # exited (or became a zombie) since it was listed
            continue
    return found


def running(proc: psutil.Process) -> bool:
    """Still executing: the same process (not a recycled pid) and not a zombie, which has
    exited and only waits for its parent to collect it."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) that ``pid`` and its running children have used so far;
    0 for a pid that has exited."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children()]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:  # a child that exited between the listing and the read
            continue
        total += times.user + times.system
    return total


def reap(procs: Iterable[psutil.Process], grace_s: float = 3.0) -> list[psutil.Process]:
    """Wait up to ``grace_s`` for ``procs`` to exit, then SIGKILL the ones still running;
    returns the killed ones once the kernel has torn them down (or ``grace_s`` more passed), so
    a caller that frees their shared memory right after never races them."""
    _, alive = psutil.wait_procs(list(procs), timeout=grace_s)
    killed = []
    for proc in (p for p in alive if running(p)):
        try:
            proc.kill()
        except psutil.Error:  # exited, or its pid now belongs to another process
            continue
        killed.append(proc)
    _, stuck = psutil.wait_procs(killed, timeout=grace_s)
    for proc in (p for p in stuck if running(p)):
        log.warning("pid %s still running %.0fs after SIGKILL", proc.pid, grace_s)
    return killed
