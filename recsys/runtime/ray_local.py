"""``local_ray``: a private, quiet Ray instance on this machine for smokes, tests and local runs.

``address="local"`` always starts a fresh node instead of attaching to a cluster found through
RAY_ADDRESS or a stale session file, so a test can never land on someone else's cluster.

Binding to loopback: ``_node_ip_address="127.0.0.1"`` alone is not enough on Linux, Ray swaps a
loopback address for the machine's outward IP and its servers listen on every interface. Ray's
single-machine mode (the one it uses on macOS/Windows, switched by
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) keeps the node IP at 127.0.0.1 and binds there.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from recsys.runtime.ports import LOCALHOST

_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _single_machine_mode() -> Iterator[None]:
    """Ray's loopback-only mode for the block: env var for the processes Ray spawns, and the
    constant Ray already read from it at import time (ray 2.60 reads it only to pick the node IP).
    """
    from ray._private import ray_constants

    old_env, old_flag = os.environ.get(_SINGLE_MACHINE_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_SINGLE_MACHINE_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = old_flag
        if old_env is None:
            os.environ.pop(_SINGLE_MACHINE_ENV, None)
        else:
            os.environ[_SINGLE_MACHINE_ENV] = old_env


@contextlib.contextmanager
def local_ray(
    num_cpus: int = 2, *, log_to_driver: bool = False, **init_kwargs: Any
) -> Iterator[str]:
    """Start Ray on 127.0.0.1 (dashboard off, logs quiet) and shut it down on exit.

    If Ray is already initialised in this process (a caller or a test fixture owns it), reuse it
    and leave it running: shutting down someone else's Ray would break them. Yields the GCS
    address so callers can hand it to subprocesses.
    """
    import ray

    if ray.is_initialized():
        yield ray.get_runtime_context().gcs_address
        return
    # Usage-stats reporting tries the network and prints a banner; neither belongs in a smoke.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with _single_machine_mode():
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address=LOCALHOST,
            logging_level=logging.ERROR,
            log_to_driver=log_to_driver,
            configure_logging=True,
            **init_kwargs,
        )
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.shutdown()
