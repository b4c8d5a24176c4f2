"""Shared fixtures: the MovieLens folder, a quiet wandb, the repository root, and real
redis-servers (``tests/redis_fixtures.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.redis_fixtures"]  # redis_handle, redis_fresh, redis_url

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def movielens_root() -> Path | None:
    """RECSYS_DATA_ROOT, else the shared data folder next to the checkout (CI has it)."""
    for candidate in (os.environ.get("RECSYS_DATA_ROOT"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "ml-100k").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = movielens_root()
    if root is None:
        pytest.skip("MovieLens research datasets not found: set RECSYS_DATA_ROOT")
    return root


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
