"""Build runtime objects from composed configs (the Hydra-aware half of object construction)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from recsys.candidates.generator import CandidateGenerator, SourceSpec


def build_sources(cfg: DictConfig) -> dict[str, tuple[Any, int]]:
    """{slot name: (unfitted source, quota)} from ``cfg.candidates.sources``."""
    return {name: (instantiate(slot.model), int(slot.quota))
            for name, slot in cfg.candidates.sources.items()}


def build_generator(fitted: dict[str, tuple[Any, int]], cfg: DictConfig) -> CandidateGenerator:
    """The generator over already fitted sources, with the quotas and weights of ``cfg``."""
    slots = cfg.candidates.sources
    return CandidateGenerator({
        name: SourceSpec(source, quota, cfg.candidates.overfetch, slots[name].weight)
        for name, (source, quota) in fitted.items()
    })
