"""The daily retrain's knobs (``retrain.*`` on the command line of ``python -m recsys.retrain``):
export the log, train from it, judge the new version against the serving one on the newest
held-out day, publish only if it passes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RetrainConfig:
    experiment: str = "two_tower_small"  # the train preset (configs/experiment/) the job runs
    export_dir: str | None = None  # where the log is exported; null = <live folder>/export
    staging_root: str | None = None  # where candidates are trained; null = beside artefacts
    days: int | None = None  # history read from the export (data.days); null = all of it
    holdout_days: int = 1  # the newest days held out for the evaluation and the gate
    metric: str = "ndcg@10"  # ndcg@10 | recall@10: the gate's metric, on the served path
    # publish when candidate >= serving * (1 - tolerance); 0 = no worse than the serving one
    tolerance: float = 0.0
    users: int = 0  # held-out users replayed through both versions (0 = all)
    train_overrides: list[str] = field(default_factory=list)  # e.g. [trainer=ray]
    keep_versions: int = 5  # published versions kept in the serving store (rollback targets)
    # publish as a canary: the running stack serves it to serve.canary.share of users, judges
    # it on the log and promotes or rolls it back (serve/swap.py); false: latest at once
    canary: bool = False
