"""``python -m serve [hydra overrides]``: start the stack, serve until Ctrl-C / SIGTERM, stop.

    python -m serve serve.artefacts_root=outputs/<run>/artefacts serve.port=8000
    curl '127.0.0.1:8000/v1/recommendations?user_id=1&surface=home&n=10'
"""

from __future__ import annotations

import signal
import sys
import threading

from omegaconf import DictConfig

from serve.cli import run_command


def serve_until_stopped(cfg: DictConfig) -> None:
    from serve.stack import running_stack

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with running_stack(cfg.serve) as stack:
        print(f"serving artefact version {stack.version} on {stack.url} "
              f"(docs: {stack.url}/docs); Ctrl-C stops", flush=True)
        stop.wait()


if __name__ == "__main__":
    sys.exit(run_command(serve_until_stopped, sys.argv[1:]))
