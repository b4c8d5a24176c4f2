"""What ``python -m serve`` and ``python -m serve.demo`` share: the composed Hydra config and
the rule that a ``RecsysError`` ends the command with a sentence and exit code 2, never a
stack trace."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig

from recsys import RecsysError
from recsys.config import CONFIG_DIR, compose_config
from recsys.config.overrides import describe
from recsys.runtime.quiet import quiet_libraries

VERBOSE = "hydra.verbose=true"  # as for train.py: keep every library's logs


def run_command(body: Callable[[DictConfig], None], argv: list[str],
                defaults: tuple[str, ...] = (), log_level: int = logging.INFO) -> int:
    verbose = VERBOSE in argv
    logging.basicConfig(level=logging.DEBUG if verbose else log_level,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    quiet_libraries(verbose)
    overrides = [*defaults, *(a for a in argv if a != VERBOSE)]
    try:
        cfg = compose_config(overrides)
    except ConfigCompositionException as err:  # a typo or an unknown choice: one sentence
        print(f"error: {describe(err, overrides, str(CONFIG_DIR), 'config')}", file=sys.stderr)
        return 2
    try:
        body(cfg)
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
