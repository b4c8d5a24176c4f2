"""Shared by the serving-stack tests: config composition and a small trained bundle."""

from pathlib import Path

import pytest

from recsys.config import compose_config
from recsys.config.jobs import two_stage_job
from recsys.train.two_stage import train_ranker

REPO = Path(__file__).resolve().parents[2]


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
