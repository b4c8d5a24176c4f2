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


def build_generator(fitted: dict[str, tuple[Any, int]], overfetch: float) -> CandidateGenerator:
    return CandidateGenerator({name: SourceSpec(source, quota, overfetch)
                               for name, (source, quota) in fitted.items()})
