"""One way to compose the project's config outside ``train.py``'s ``@hydra.main``: the serving
CLI, the benchmarks and the tests all call ``compose_config`` so they see exactly the config a
command line would."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from recsys.config.schema import register_configs

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def compose_config(overrides: list[str] | tuple[str, ...] = (),
                   config_dir: Path | str = CONFIG_DIR) -> DictConfig:
    """The root config (``configs/config.yaml``) with ``overrides`` applied, schemas checked."""
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))
