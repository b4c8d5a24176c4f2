"""Entry point: ``python -m recsys.retrain [overrides]`` (``recsys.retrain.job``): export ->
train -> gate -> publish; exit 0 published, 3 refused by the gate, 2 an error.
``python -m recsys.retrain rollback [overrides]``: ``latest`` back to the previous version."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

from recsys import RecsysError
from recsys.config.compose import compose_or_refuse, plain
from recsys.events.log import LogUnavailable
from recsys.retrain.job import REFUSED, retrain, rollback


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    command = "rollback" if argv[:1] == ["rollback"] else "retrain"
    argv = argv[1:] if command == "rollback" else argv
    try:
        cfg = compose_or_refuse(argv)
        if command == "rollback":
            current, previous = rollback(plain(cfg.serve))
            print(f"latest: {current} -> {previous} (a running stack swaps it in)")
            return 0
        with tempfile.TemporaryDirectory(prefix="retrain-") as run_dir:
            outcome = retrain(plain(cfg.serve), plain(cfg.retrain), Path(run_dir))
    except (RecsysError, LogUnavailable, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    gate = outcome.gate
    verdict = "published" if outcome.published else "refused by the gate"
    if gate["serving"] is None:
        print(f"{outcome.candidate}: published as the first version (none served yet to "
              "gate against)")
    else:
        print(f"{outcome.candidate}: {verdict} ({gate['metric']} {gate['candidate_value']:.4f} "
              f"vs serving {gate['serving']} {gate['serving_value']:.4f}, tolerance "
              f"{gate['tolerance']:g}, {gate['users']} held-out users)")
    print(json.dumps({"seconds": {k: round(v, 1) for k, v in outcome.seconds.items()}}))
    return 0 if outcome.published else REFUSED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
