"""Shared by the serving-stack tests: config composition and a small trained bundle."""

import os
from pathlib import Path

import pytest

from recsys.config import compose_config
from recsys.config.jobs import two_stage_job
from recsys.train.two_stage import train_ranker

REPO = Path(__file__).resolve().parents[2]
WRITE_KEY = "test-write-key-0123456789"  # the stacks these tests start take these keys
READ_KEY = "test-read-key-0123456789"


@pytest.fixture(scope="session", autouse=True)
def api_keys():
    """Keys for the write endpoints of every stack started here (read at stack start)."""
    before = os.environ.get("RECSYS_API_KEYS")
    os.environ["RECSYS_API_KEYS"] = f"{WRITE_KEY}:write,{READ_KEY}:read"
    yield
    if before is None:
        os.environ.pop("RECSYS_API_KEYS", None)
    else:
        os.environ["RECSYS_API_KEYS"] = before


@pytest.fixture(scope="module")
def served_artefacts(tmp_path_factory) -> Path:
    """A two-stage ranker trained on the debug data, published as a serving bundle (one per
    test module that asks: each module runs its own stack)."""
    root = tmp_path_factory.mktemp("served")
    cfg = compose_config(["debug=default", "candidates=default", "ranker=two_tower",
                          "trainer.epochs=1", "ranker.export.check_on_triton=false",
                          f"data.root={root / 'data'}"])
    train_ranker(two_stage_job(cfg), root / "run")
    return root / "run" / "artefacts"
