"""What ``python -m serve`` and ``python -m serve.demo`` share: the composed Hydra config and
the rule that a ``RecsysError`` ends the command with a sentence and exit code 2, never a
stack trace."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from recsys import RecsysError
from recsys.config import register_configs

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")


def compose_config(overrides: list[str]) -> DictConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def run_command(body: Callable[[DictConfig], None], argv: list[str],
                defaults: tuple[str, ...] = (), log_level: int = logging.INFO) -> int:
    logging.basicConfig(level=log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        body(compose_config([*defaults, *argv]))
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
