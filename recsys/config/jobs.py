"""Hydra config -> the typed job objects the library runs (done once, at the job's top).

``OmegaConf.to_object`` turns each structured node into its schema dataclass, the same class
the library reads, so the values (and their defaults) come from one definition.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from recsys.config.builders import build_sources
from recsys.train.two_stage import TwoStageJob


def two_stage_job(cfg: DictConfig, verbose: bool = False) -> TwoStageJob:
    """The ranker job's settings from the composed root config; ``verbose``:
    ``hydra.verbose=true`` (the workers keep the libraries' logs too)."""
    slots = cfg.candidates.sources if cfg.get("candidates") is not None else {}
    return TwoStageJob(
        data=OmegaConf.to_container(cfg.data, resolve=True),
        make_sources=lambda: build_sources(cfg),
        quotas={name: int(slot.quota) for name, slot in slots.items()},
        weights={name: float(slot.weight) for name, slot in slots.items()},
        ranker=_typed(cfg.ranker), trainer=_typed(cfg.trainer), split=_typed(cfg.split),
        eval=_typed(cfg.eval), logger=_typed(cfg.logger),
        ease_l2=float(cfg.model.l2) if "l2" in cfg.model else 500.0,
        seed=int(cfg.seed), config=OmegaConf.to_container(cfg, resolve=True), verbose=verbose)


def _typed(node: DictConfig) -> Any:
    return OmegaConf.to_object(node)
