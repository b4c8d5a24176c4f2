"""``redis-server``: the real Redis (the Debian package) on 127.0.0.1, for the Redis event log and
feature store, their tests and the doctor.

Started the way the log's durability promise needs it: AOF on (``--appendonly yes``) with the
chosen ``--appendfsync`` and no RDB snapshots (``--save ""``: the AOF is the one source of
truth), bound to 127.0.0.1 only with protected mode on, in a folder of its own (a temporary one
unless given) that also holds its log. Readiness is a real ``PING`` answered ``+PONG``: Redis
answers ``-LOADING`` while it replays the AOF, and a server that is still loading cannot take
the log's writes.

Quiet on success (the server's output goes to ``redis-server.log`` in its folder); a server that
is missing, exits or does not answer within ``READY_TIMEOUT_S`` becomes a ``RecsysError``
carrying the tail of that log. On exit it gets SIGTERM (Redis flushes the AOF and exits), then
SIGKILL after a grace period; it also gets SIGTERM if the thread that started it dies, so a
killed test run cannot leave a server behind.

``RedisHandle.kill()`` / ``restart()`` exist for fault tests: SIGKILL with no chance to flush,
then the same port and folder again, so what comes back is exactly what the AOF kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recsys import RecsysError
from recsys.runtime.ports import LOCALHOST, free_port

__all__ = ["INSTALL_HINT", "RedisHandle", "ping", "redis_binary", "redis_server"]

log = logging.getLogger(__name__)

INSTALL_HINT = "redis-server not found: apt-get install redis-server"
FSYNC_POLICIES = ("always", "everysec", "no")
READY_TIMEOUT_S = 10.0
STOP_GRACE_S = 10.0
PORT_ATTEMPTS = 3  # a free port can be taken between picking it and the server binding it
LOG_NAME = "redis-server.log"


def redis_binary() -> str:
    """The ``redis-server`` on PATH, or a ``RecsysError`` saying how to install it."""
    found = shutil.which("redis-server")
    if found is None:
        raise RecsysError(INSTALL_HINT)
    return found


def ping(port: int, host: str = LOCALHOST, timeout_s: float = 0.5) -> bool:
    """True when Redis on ``host:port`` answers ``PING`` with ``+PONG`` (not ``-LOADING``).

    Raw RESP over a socket, so neither the launcher nor the doctor needs redis-py to tell a
    ready server from a loading one.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the launching thread dies (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM)


@dataclass
class RedisHandle:
    """A running (or killed, for a fault test) ``redis-server`` and where it keeps its data."""

    port: int
    directory: Path
    fsync: str = "everysec"
    host: str = LOCALHOST
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def log_path(self) -> Path:
        return self.directory / LOG_NAME

    def command(self) -> list[str]:
        return [redis_binary(), "--port", str(self.port), "--bind", self.host,
                "--protected-mode", "yes", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "",
                "--daemonize", "no"]

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no redis-server log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Launch the server and wait until it answers PING (it loads its AOF first)."""
        if self.is_alive():
            raise RecsysError(f"redis-server is already running on {self.url}")
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, cwd=self.directory, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout_s
        while not ping(self.port, self.host):
            code = self.process.poll()
            if code is not None:
                raise RecsysError(f"redis-server exited during start-up (exit code {code}) on "
                                  f"{self.url}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RecsysError(f"redis-server did not answer PING within {timeout_s:.0f} s "
                                  f"on {self.url}:\n{self.log_tail()}")
            time.sleep(0.02)
        log.debug("redis-server pid %s ready on %s", self.process.pid, self.url)

    def kill(self) -> None:
        """SIGKILL, no chance to flush anything: what survives is what the AOF already had."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM (Redis fsyncs the AOF and exits), SIGKILL if it is still up after
        ``grace_s``."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("redis-server pid %s alive %.0f s after SIGTERM; killing", proc.pid,
                        grace_s)
            proc.kill()
            proc.wait()

    def restart(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Stop it if it runs, then start it again on the same port and folder: the AOF is
        reloaded, so clients reconnect to the same data."""
        self.stop()
        self.start(timeout_s)


def _launch(handle: RedisHandle, pick_port: bool) -> None:
    """Start ``handle``; a port taken in the meantime means another free port, when the caller
    did not ask for this one."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            handle.start()
            return
        except RecsysError:
            in_use = "Address already in use" in handle.log_tail(lines=5)
            if not (pick_port and in_use and attempt < PORT_ATTEMPTS):
                raise
            handle.port = free_port(handle.host)


@contextlib.contextmanager
def redis_server(directory: Path | None = None, port: int | None = None,
                 fsync: str = "everysec") -> Iterator[RedisHandle]:
    """Run ``redis-server`` on 127.0.0.1 (a free port unless ``port``) with AOF and
    ``appendfsync`` = ``fsync``, keeping its data in ``directory`` (a temporary folder, removed
    on exit, unless given); yields a ``RedisHandle`` once it answers PING and stops it on exit.
    """
    fsync = str(fsync)
    if fsync not in FSYNC_POLICIES:
        raise RecsysError(f"appendfsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
    redis_binary()  # the install hint before anything is created
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="recsys-redis-")))
        handle = RedisHandle(port=port or free_port(), directory=Path(directory), fsync=fsync)
        stack.callback(handle.stop)  # before the temporary folder goes (callbacks run LIFO)
        _launch(handle, pick_port=port is None)
        yield handle
