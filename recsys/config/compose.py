"""One way to compose the project's config outside ``train.py``'s ``@hydra.main``: the serving
CLI, the benchmarks and the tests all call ``compose_config`` so they see exactly the config a
command line would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from recsys import RecsysError
from recsys.config.schema import register_configs

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def compose_config(overrides: list[str] | tuple[str, ...] = (),
                   config_dir: Path | str = CONFIG_DIR) -> DictConfig:
    """The root config (``configs/config.yaml``) with ``overrides`` applied, schemas checked."""
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def compose_or_refuse(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """``compose_config``, with a typo or an unknown choice as a ``RecsysError`` in one
    sentence (for the command lines outside ``train.py`` that know no Hydra)."""
    from recsys.config.overrides import describe

    try:
        return compose_config(overrides)
    except ConfigCompositionException as err:
        raise RecsysError(describe(err, list(overrides), str(CONFIG_DIR), "config")) from None
    except OverrideParseException as err:  # bad override syntax: Hydra's own first line
        raise RecsysError(str(err).splitlines()[0] + " (quote values that hold '=' or "
                          "commas: key=['a=1','b=2'])") from None


def plain(node: Any) -> Any:
    """A composed node as its schema's dataclass (typed groups) or plain containers."""
    return OmegaConf.to_object(node)
