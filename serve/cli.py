"""What ``python -m serve`` and ``python -m serve.demo`` share: the composed Hydra config and
the rule that a ``RecsysError`` ends the command with a sentence and exit code 2, never a
stack trace."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from omegaconf import DictConfig

from recsys import RecsysError
from recsys.config import compose_config


def run_command(body: Callable[[DictConfig], None], argv: list[str],
                defaults: tuple[str, ...] = (), log_level: int = logging.INFO) -> int:
    logging.basicConfig(level=log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        body(compose_config([*defaults, *argv]))
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
