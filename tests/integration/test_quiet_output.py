"""What a user sees from the ranker job: its stages, the metric table and where things went,
none of the libraries' banners (they come back with hydra.verbose=true)."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration
NOISE = ("Successfully loaded", "GreedyPerfPartitioner", "planner", "FutureWarning",
         "UserWarning", "Traceback", "TBE=", "Sharding spec not found")


def run_job(tmp_path, *extra: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "train.py", "debug=default", "candidates=fast", "ranker=two_tower",
         "trainer.epochs=1", "logger=none", "ranker.export.check_on_triton=false",
         f"data.root={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (proc.stdout + proc.stderr).splitlines()


def test_the_ranker_job_prints_only_what_a_user_reads(tmp_path):
    lines = run_job(tmp_path)
    noisy = [line for line in lines if any(n in line for n in NOISE)]
    assert not noisy, noisy
    assert any(line.startswith("two_tower ") for line in lines)  # the metric table
    assert len(lines) < 45, "\n".join(lines)


def test_hydra_verbose_brings_the_library_logs_back(tmp_path):
    lines = run_job(tmp_path, "hydra.verbose=true")
    assert any("Successfully loaded" in line for line in lines)
