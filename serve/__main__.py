"""``python -m serve [hydra overrides]``: start the stack, serve until Ctrl-C / SIGTERM, stop.

    python -m serve serve.artefacts_root=outputs/<run>/artefacts serve.port=8000
    curl '127.0.0.1:8000/v1/recommendations?user_id=1&surface=home&n=10'
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from hydra import compose, initialize_config_dir

from recsys import RecsysError
from recsys.config import register_configs

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=argv)
    from serve.stack import running_stack

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with running_stack(cfg.serve) as stack:
            print(f"serving artefact version {stack.version} on {stack.url} "
                  f"(docs: {stack.url}/docs); Ctrl-C stops", flush=True)
            stop.wait()
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
