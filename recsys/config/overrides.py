"""Validate command-line overrides before Hydra runs, so mistakes cost one line, not a page.

Hydra's own messages for an unknown option or key span many lines and suggest a stack trace;
here every override (every value of a ``-m`` sweep too) is composed against the real config
first, and the first problem is printed as one sentence naming the valid choices. Exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf

# Hydra flags that take a value; everything starting with '-' is a flag, not an override.
_FLAGS_WITH_VALUE = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn",
                     "--config-name", "-cd", "--config-dir", "--info", "-i"}
_SKIP_VALIDATION = {"-h", "--help", "--hydra-help", "--version", "-cp", "--config-path", "-cn",
                    "--config-name", "-cd", "--config-dir", "--shell-completion", "-sc"}


def user_overrides(argv: Sequence[str]) -> list[str] | None:
    """The ``key=value`` overrides of a command line, or None if validation should be skipped."""
    out, skip_next = [], False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg in _SKIP_VALIDATION:
            return None
        elif arg in _FLAGS_WITH_VALUE:
            skip_next = True
        elif not arg.startswith("-"):
            out.append(arg)
    return [o for o in out if not o.lstrip("+~").startswith("hydra")]


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """One override list per sweep value (each value varied alone, others at their first)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    values = []
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            values.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            values.append([o.input_line])
    variants = [[v[0] for v in values]]
    for i, vs in enumerate(values):
        for v in vs[1:]:
            variant = [x[0] for x in values]
            variant[i] = v
            variants.append(variant)
    return variants


def describe(err: Exception, overrides: list[str], config_dir: str, config_name: str) -> str:
    """One sentence for a composition error, with the valid choices or keys."""
    if isinstance(err, MissingConfigException) and err.options is not None:
        group = (err.missing_cfg_file or "").rsplit("/", 1)[0]
        wanted = (err.missing_cfg_file or "").rsplit("/", 1)[-1]
        options = ", ".join(o for o in err.options if not o.startswith("schema"))
        return f"unknown {group} '{wanted}' (choose one of: {options})"
    message = str(err).strip().splitlines()
    cause = err.__cause__
    if "Could not override" in message[0] or "not in struct" in str(cause):
        key = message[0].split("'")[1] if "'" in message[0] else "?"
        return f"unknown config key '{key}'{_valid_keys(key, config_dir, config_name)}"
    detail = str(cause).strip().splitlines()[0] if cause else ""
    return " ".join(part for part in (message[0], detail) if part)


def _valid_keys(key: str, config_dir: str, config_name: str) -> str:
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        cfg = compose(config_name=config_name)
    parts = key.lstrip("+~").split(".")[:-1]
    while parts and not isinstance(OmegaConf.select(cfg, ".".join(parts)), DictConfig):
        parts.pop()  # climb to the deepest node that exists
    parent = ".".join(parts)
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if isinstance(node, DictConfig):
        return f" (valid keys{' in ' + parent if parent else ''}: {', '.join(map(str, node))})"
    return ""


def check_overrides(config_dir: str, config_name: str, argv: Sequence[str]) -> None:
    """Compose every variant of the command line; on the first failure print one line, exit 2."""
    overrides = user_overrides(argv)
    if not overrides:
        return
    try:
        variants = expand_sweeps(overrides)
    except Exception as err:  # noqa: BLE001 - Hydra's parser raises several types
        _fail(f"cannot parse overrides: {str(err).strip().splitlines()[0]}")
    for variant in variants:
        try:
            with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
                cfg = compose(config_name=config_name, overrides=variant)
                OmegaConf.to_container(cfg, resolve=True)  # type errors in interpolations
        except Exception as err:  # noqa: BLE001 - every composition error gets one line
            _fail(describe(err, variant, config_dir, config_name))


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
