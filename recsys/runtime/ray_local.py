"""``local_ray``: a private, quiet Ray instance on this machine for smokes, tests and local runs.

``address="local"`` always starts a fresh node instead of attaching to a cluster found through
RAY_ADDRESS or a stale session file, so a test can never land on someone else's cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from recsys.runtime.ports import LOCALHOST


@contextlib.contextmanager
def local_ray(num_cpus: int = 2, *, log_to_driver: bool = False, **init_kwargs: Any) -> Iterator[str]:
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
