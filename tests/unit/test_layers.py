"""The import graph runs one way: each layer of ``recsys/`` imports only its own layer and the
ones below it, ``serve/`` sits on top, and only the configuration layer (plus ``train.py``,
``serve/`` and ``scripts/``) knows about Hydra. Read from the source, so a new upward import
fails here before it becomes a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# bottom first; a package may import its own layer and any layer below
LAYERS = [
    {"__init__", "device", "progress", "tracking", "data", "index", "runtime"},
    {"candidates", "eval", "events", "experiments", "ranking"},
    {"serving"},
    {"train"},
    {"config", "doctor", "stream", "ab", "retrain"},
]
HYDRA = ("hydra", "omegaconf")


def layer_of(package: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if package in names)


def imports(path: Path) -> list[str]:
    """Absolute module names a file imports (at any depth: lazy imports count too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def package_of(path: Path) -> str:
    """``recsys/ranking/model.py`` -> ``ranking``; ``recsys/device.py`` -> ``device``."""
    parts = path.relative_to(REPO / "recsys").with_suffix("").parts
    return parts[0]


LIBRARY = sorted((REPO / "recsys").rglob("*.py"))


def test_every_recsys_package_has_a_layer():
    assert {package_of(p) for p in LIBRARY} <= set().union(*LAYERS)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(REPO)))
def test_recsys_imports_only_downward(path):
    here = layer_of(package_of(path))
    for module in imports(path):
        top, _, rest = module.partition(".")
        if top == "serve":
            pytest.fail(f"{path.name} imports {module}: recsys/ never imports serve/")
        if top == "train":
            pytest.fail(f"{path.name} imports {module}: train.py is the entry point, not a library")
        if top in HYDRA and package_of(path) != "config":
            pytest.fail(f"{path.name} imports {module}: only recsys/config/ knows about Hydra")
        if top != "recsys" or not rest:
            continue
        target = rest.split(".")[0]
        assert layer_of(target) <= here, (
            f"{path.relative_to(REPO)} imports {module}: layer {layer_of(target)} is above "
            f"its own layer {here} ({sorted(LAYERS[here])})")


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule above must be able to fail: an import from serving in ranking is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from recsys.serving.bundle import load_bundle\n")
    assert "recsys.serving.bundle" in imports(bad)
    assert layer_of("serving") > layer_of("ranking")
