"""Experiment tracking: wandb, offline by default, behind a two-method interface.

Offline mode writes the run (config, metrics, artefacts) under the run directory with no network
or account; ``wandb sync <dir>`` uploads it later. ``logger=none`` swaps in a no-op tracker.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class TrackerMode(StrEnum):
    offline = "offline"  # no network or account; `wandb sync <dir>` uploads later
    online = "online"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    """The ``logger`` config group's schema (configs/logger/wandb.yaml, none.yaml)."""

    enabled: bool = True
    mode: TrackerMode = TrackerMode.offline
    project: str = "recsys"
    tags: list[str] = field(default_factory=list)


class Tracker(Protocol):
    def log_metrics(self, metrics: dict[str, float]) -> None: ...
    def log_artifact(self, directory: Path, name: str, kind: str) -> None: ...
    def finish(self) -> None: ...


class NullTracker:
    def log_metrics(self, metrics: dict[str, float]) -> None:
        pass

    def log_artifact(self, directory: Path, name: str, kind: str) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbTracker:
    """One wandb run per training job (``reinit`` so Hydra sweeps get one run each)."""

    def __init__(self, config: dict[str, Any], run_dir: Path, mode: str, project: str,
                 name: str, tags: list[str], run_id: str | None = None,
                 announce: bool = True) -> None:
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self._wandb = wandb
        self.run = wandb.init(project=project, name=name, config=config, dir=str(run_dir),
                              mode=mode, tags=tags, reinit="finish_previous",
                              id=run_id, resume="allow" if run_id else None)
        (log.info if announce else log.debug)(
            "wandb %s run %s in %s", mode, self.run.id, self.run.dir)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self.run.log(metrics)
        self.run.summary.update(metrics)

    def log_artifact(self, directory: Path, name: str, kind: str) -> None:
        artifact = self._wandb.Artifact(name=name, type=kind)
        artifact.add_dir(str(directory))
        self.run.log_artifact(artifact)

    def finish(self) -> None:
        self.run.finish()


def start_tracker(enabled: bool, mode: str, project: str, config: dict[str, Any], run_dir: Path,
                  name: str, tags: list[str] | None = None, run_id: str | None = None,
                  announce: bool = True) -> Tracker:
    """``run_id`` lets several processes (the driver, a training worker) write one run;
    ``announce=False`` for a process resuming a run another one already announced."""
    if not enabled or mode == "disabled":
        return NullTracker()
    return WandbTracker(config, run_dir, mode, project, name, list(tags or []), run_id,
                        announce)
