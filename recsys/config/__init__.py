"""Configuration layer: dataclass schemas for every Hydra config group, their ConfigStore
registration, and one-line validation of command-line overrides.

This is the one place in ``recsys/`` that knows about Hydra; library code takes plain values.
"""

from recsys.config.compose import CONFIG_DIR, compose_config
from recsys.config.schema import register_configs

__all__ = ["CONFIG_DIR", "compose_config", "register_configs"]
