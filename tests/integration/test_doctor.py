"""`python -m recsys.doctor` end to end: every real component's smoke passes on this machine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SMOKES = ("torchrec", "faiss", "ray", "triton", "wandb", "redis")
RESULT = re.compile(r"^(PASS|FAIL)\s+(\w+)\s+([\d.]+)\s+(.*)$", re.MULTILINE)


def _doctor(*args: str, timeout: int = 300) -> tuple[int, str]:
    """Run the doctor in its own process (it starts and stops Ray and Triton itself)."""
    proc = subprocess.run([sys.executable, "-m", "recsys.doctor", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
def test_doctor_runs_every_smoke_and_all_pass():
    code, out = _doctor()
    results = {name: status for status, name, _, _ in RESULT.findall(out)}
    assert results == dict.fromkeys(SMOKES, "PASS"), out
    assert code == 0, out
    assert f"all {len(SMOKES)} smokes passed" in out
    assert "Traceback" not in out
    for label in ("torch", "torchrec", "faiss", "cupy", "ray", "tritonclient", "nvidia-pytriton",
                  "hydra-core", "wandb", "pandas", "pyarrow", "numpy"):
        assert re.search(rf"^{re.escape(label)}\s", out, re.MULTILINE), f"{label} not in table"


def test_doctor_only_faiss_runs_only_faiss():
    code, out = _doctor("--only", "faiss", timeout=120)
    assert code == 0, out
    assert [name for _, name, _, _ in RESULT.findall(out)] == ["faiss"]
    assert "all 1 smokes passed" in out
