"""Where a canary's state lives: ``<artefacts>/canary.json``, beside ``latest``, written by
whoever starts the canary (``python -m recsys.retrain retrain.canary=true``) and by the stack
that judges it (``serve/swap.py``): ``{"version", "share", "state": running | promoted |
rolled_back, "reason", "verdict", ...}``. Written atomically (a rename), so a reader never
sees half of it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from recsys.serving.artefacts import ArtefactStore

CANARY_FILE = "canary.json"


def write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(tmp, path)


def start_canary(store: ArtefactStore, version: str, share: float) -> Path:
    """Ask the running stack to serve ``version`` to ``share`` of users and judge it."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"a canary's share must be in (0, 1), got {share}")
    name, _ = store.resolve(version)
    path = store.root / CANARY_FILE
    write_json(path, {"version": name, "share": float(share), "state": "running",
                      "requested_ms": int(time.time() * 1000)})
    return path


def canary_state(store: ArtefactStore) -> dict[str, Any] | None:
    path = store.root / CANARY_FILE
    return json.loads(path.read_text()) if path.is_file() else None
