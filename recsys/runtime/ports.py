"""Free-port helpers: every server we start binds 127.0.0.1 on a port the OS says is free.

Fixed ports collide between parallel test runs and with whatever else runs on a laptop; asking the
kernel for port 0 avoids both.
"""

from __future__ import annotations

import contextlib
import socket

LOCALHOST = "127.0.0.1"


def free_ports(n: int, host: str = LOCALHOST) -> list[int]:
    """Return ``n`` distinct ports that were free on ``host`` a moment ago.

    All sockets stay open until every port is picked, so the kernel cannot hand out the same port
    twice (a server needing HTTP, gRPC and metrics ports gets three different ones). There is an
    unavoidable window between closing and the server binding; on one machine it is negligible.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
    return ports


def free_port(host: str = LOCALHOST) -> int:
    """One free TCP port on ``host`` (bind to port 0 and read back what the kernel chose)."""
    return free_ports(1, host)[0]


def port_is_open(port: int, host: str = LOCALHOST, timeout_s: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port`` (used to prove teardown)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        return sock.connect_ex((host, port)) == 0
