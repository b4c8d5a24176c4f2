"""Process helpers for teardown: find a server's children and make sure they are gone.

tritonserver gives up on unloading PyTriton models at its exit timeout and exits "immediately";
now and then the Python-backend stub it spawned survives as an orphan (ignoring SIGTERM) holding a
shared-memory region. Reading /proc (Linux, like the rest of this stack) avoids a psutil dependency.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def stat_fields(stat: Path) -> list[str]:
    """A ``/proc/<pid>/stat`` line's fields after the command name (field 3, the state, comes
    first); split after the ')' because the command name may hold spaces."""
    return stat.read_text().rsplit(")", 1)[1].split()


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (empty where /proc is unavailable)."""
    children = []
    for stat in PROC.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat_fields(stat)[1]) == pid:  # field 4: the ppid
                children.append(int(stat.parent.name))
    return children


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) that ``pid`` and its running children have used so far;
    0 for a pid that has exited."""
    total = 0.0
    for p in [pid, *child_pids(pid)]:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat_fields(PROC / str(p) / "stat")
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # 14, 15
    return total


def cmdline(pid: int) -> list[str]:
    """argv of ``pid``, or [] once it has exited."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def reap(pids: dict[int, list[str]], marker: str, grace_s: float = 3.0) -> list[int]:
    """Wait up to ``grace_s`` for ``pids`` to exit, then SIGKILL the ones still running.

    ``pids`` maps pid -> argv recorded while it was known to be ours; a pid is only killed while
    its argv still contains ``marker`` (so a recycled pid is never hit). Returns the killed pids.
    """
    deadline = time.monotonic() + grace_s
    alive = dict(pids)
    while alive and time.monotonic() < deadline:
        alive = {p: a for p, a in alive.items() if marker in " ".join(cmdline(p))}
        if alive:
            time.sleep(0.05)
    killed = []
    for pid in alive:
        if marker in " ".join(cmdline(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    # SIGKILL is asynchronous: wait until the kernel has torn the processes down, so a caller
    # that checks right after (or reuses their shared memory) never sees them still running.
    deadline = time.monotonic() + grace_s
    while (any(marker in " ".join(cmdline(p)) for p in killed)
           and time.monotonic() < deadline):
        time.sleep(0.02)
    return killed
