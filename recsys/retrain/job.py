"""``python -m recsys.retrain [overrides]``: the daily loop's offline half, step by step.

    export   the event log -> daily Parquet partitions (``recsys.events.export``)
    train    the two-stage job on them (``data=events``, ``split=last_days``), into a staging
             artefact store: nothing reaches the serving store yet
    gate     the new version against the serving one, on the same held-out users, through the
             served request path (``recsys.retrain.gate``)
    publish  only if the gate passes: the version is copied into the serving store and becomes
             ``latest``, its manifest recording the gate (metric, both values, tolerance) and
             each step's time; a refused candidate stays in staging with ``gate.json`` saying why

Exit codes: 0 published, 3 refused by the gate, 2 an error (one sentence).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys import RecsysError
from recsys.retrain.settings import RetrainConfig
from recsys.serving.settings import ServeConfig

log = logging.getLogger("recsys.retrain")
REFUSED = 3
METRICS = ("ndcg@10", "recall@10")


@dataclass
class Outcome:
    published: bool
    candidate: str
    gate: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def folders(serve_cfg: ServeConfig, r: RetrainConfig) -> tuple[Path, Path, Path]:
    """The serving artefacts, the export folder and the staging store."""
    if not serve_cfg.artefacts_root:
        raise RecsysError("serve.artefacts_root is not set: the retrain compares against and "
                          "publishes into the serving artefacts")
    artefacts = Path(serve_cfg.artefacts_root)
    export_dir = Path(r.export_dir) if r.export_dir else serve_cfg.live_folder() / "export"
    staging = Path(r.staging_root) if r.staging_root else artefacts.parent / "staging"
    return artefacts, export_dir, staging


def retrain(serve_cfg: ServeConfig, r: RetrainConfig, run_dir: Path) -> Outcome:
    from recsys.events.export import export
    from recsys.events.log import open_log

    if r.metric not in METRICS:
        raise RecsysError(f"retrain.metric: {r.metric!r} is not one of {list(METRICS)}")
    if not 0.0 <= r.tolerance < 1.0:
        raise RecsysError(f"retrain.tolerance must be in [0, 1), got {r.tolerance}")
    artefacts, export_dir, staging = folders(serve_cfg, r)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    event_log = open_log(serve_cfg.events, str(serve_cfg.live_folder()))
    try:
        done = export((e.record for b in event_log.scan() for e in b), export_dir)
    finally:
        event_log.close()
    seconds["export"] = time.perf_counter() - clock
    log.info("export: %d records, %d partitions (%d written) in %.1f s", done.rows,
             done.partitions, len(done.written), seconds["export"])
    clock = time.perf_counter()
    train_cfg = train_config(r, export_dir, staging)
    candidate = train(train_cfg, run_dir)
    seconds["train"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if serving_version(artefacts, serve_cfg.version) is None:  # the first version: no gate
        gate = {"metric": r.metric, "serving": None, "serving_value": float("nan"),
                "candidate": candidate, "candidate_value": float("nan"),
                "tolerance": r.tolerance, "users": 0, "passed": True,
                "reason": "no serving version yet"}
    else:
        gate = judge(serve_cfg, r, train_cfg, artefacts, staging, candidate)
    seconds["gate"] = time.perf_counter() - clock
    log.info("gate: %s %.4f (candidate %s) vs %.4f (serving %s): %s", r.metric,
             gate["candidate_value"], candidate, gate["serving_value"], gate["serving"],
             "pass" if gate["passed"] else "refused")
    record = {"gate": gate, "seconds": seconds, "trained_from": {
        "export": str(export_dir), "records": done.rows, "partitions": done.partitions,
        "days": r.days, "holdout_days": r.holdout_days, "experiment": r.experiment}}
    if not gate["passed"]:
        (staging / "versions" / candidate / "gate.json").write_text(json.dumps(record,
                                                                               indent=2))
        return Outcome(False, candidate, gate, seconds)
    clock = time.perf_counter()
    publish(staging, artefacts, candidate, record, activate=not r.canary)
    if r.canary:  # the running stack serves it to serve.canary.share of users and judges it
        from recsys.serving.artefacts import ArtefactStore
        from recsys.serving.canary_state import start_canary

        start_canary(ArtefactStore(artefacts), candidate, serve_cfg.canary.share)
    prune(artefacts, r.keep_versions)
    seconds["publish"] = time.perf_counter() - clock
    return Outcome(True, candidate, gate, seconds)


def prune(artefacts: Path, keep: int) -> list[str]:
    """Delete the oldest published versions beyond ``keep`` (never ``latest``)."""
    from recsys.serving.artefacts import ArtefactStore

    if keep < 1:  # keep every version
        return []
    store = ArtefactStore(artefacts)
    latest = store.resolve("latest")[0]
    earlier = [v for v in store.versions() if v != latest]
    old = earlier[:len(earlier) - (keep - 1)] if len(earlier) > keep - 1 else []
    for version in old:
        shutil.rmtree(store.versions_dir / version)
    return old


def rollback(serve_cfg: ServeConfig) -> tuple[str, str]:
    """Point ``latest`` at the version published before the current one: (from, to)."""
    from recsys.serving.artefacts import ArtefactStore

    artefacts, _, _ = folders(serve_cfg, RetrainConfig())
    store = ArtefactStore(artefacts)
    current = store.resolve("latest")[0]
    earlier = [v for v in store.versions() if v < current]
    if not earlier:
        raise RecsysError(f"no version before {current} in {artefacts} to roll back to")
    store.activate(earlier[-1])
    return current, earlier[-1]


def serving_version(artefacts: Path, version: str) -> str | None:
    from recsys.serving.artefacts import ArtefactStore

    try:
        return ArtefactStore(artefacts).resolve(version)[0]
    except RecsysError:
        return None


def train_config(r: RetrainConfig, export_dir: Path, staging: Path) -> Any:
    from recsys.config import compose_config

    return compose_config([f"experiment={r.experiment}", "data=events",
                           f"data.path={export_dir}", "split=last_days",
                           f"split.days={int(r.holdout_days)}",
                           *([f"data.days={int(r.days)}"] if r.days else []),
                           f"ranker.export.artefacts_root={staging}",
                           "ranker.export.check_on_triton=false", *r.train_overrides])


def train(train_cfg: Any, run_dir: Path) -> str:
    """The two-stage job into the staging store; the new version's name."""
    from recsys.config.jobs import two_stage_job
    from recsys.serving.artefacts import ArtefactStore
    from recsys.train.two_stage import train_ranker

    job = two_stage_job(train_cfg)
    train_ranker(job, run_dir)
    return ArtefactStore(job.ranker.export.artefacts_root).resolve("latest")[0]


def judge(serve_cfg: ServeConfig, r: RetrainConfig, train_cfg: Any, artefacts: Path,
          staging: Path, candidate: str) -> dict[str, Any]:
    """Both versions on the held-out day's users (``recsys.retrain.gate``)."""
    import numpy as np

    from recsys.config.jobs import two_stage_job
    from recsys.data import load_dataset
    from recsys.data.splits import split_interactions
    from recsys.retrain.gate import passes, positives_of, replay_quality
    from recsys.serving.artefacts import ArtefactStore
    from recsys.serving.bundle import load_bundle

    job = two_stage_job(train_cfg)
    dataset = load_dataset(**job.data)
    split = split_interactions(dataset.interactions, "last_days", days=int(r.holdout_days))
    columns = ["user_id", "item_id", "rating", "timestamp"]
    positives = positives_of(split.test[columns], split.train[columns],
                             job.eval.positive_threshold)
    if r.users and len(positives) > r.users:
        keep = np.random.default_rng(0).choice(sorted(positives), r.users, replace=False)
        positives = {int(u): positives[int(u)] for u in keep}
    serving_version, serving_path = ArtefactStore(artefacts).resolve(serve_cfg.version)
    values = {}
    for name, (version, path) in (("serving", (serving_version, serving_path)),
                                  ("candidate", ArtefactStore(staging).resolve(candidate))):
        values[name] = replay_quality(load_bundle(version, path), split.train[columns],
                                      positives, serve_cfg)
    serving, new = values["serving"][r.metric], values["candidate"][r.metric]
    return {"metric": r.metric, "serving": serving_version, "serving_value": serving,
            "candidate": candidate, "candidate_value": new, "tolerance": r.tolerance,
            "users": values["candidate"]["users"], "passed": passes(new, serving, r.tolerance),
            "serving_metrics": values["serving"], "candidate_metrics": values["candidate"]}


def publish(staging: Path, artefacts: Path, candidate: str, record: dict[str, Any],
            activate: bool = True) -> None:
    """The candidate's files into the serving store, then ``latest`` to it (atomic)."""
    from recsys.serving.artefacts import ArtefactStore

    store = ArtefactStore(artefacts)
    target = store.versions_dir / candidate
    if target.exists():
        raise RecsysError(f"artefact version {candidate} already exists in {artefacts}")
    tmp = store.versions_dir / f".{candidate}.incoming"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(staging / "versions" / candidate, tmp, ignore=shutil.ignore_patterns(
        "manifest.json"))
    tmp.rename(target)
    store.publish(target, extra={"retrain": record}, activate=activate)
