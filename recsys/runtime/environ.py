"""``scoped_environ``: environment variables for one block, the previous values back after it.

Used where a library call reads its settings from the environment at start-up (wandb's offline
mode in the doctor, Ray Serve's throughput flags that Ray's processes inherit) and the caller
must not leave them behind for the rest of the process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def scoped_environ(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
