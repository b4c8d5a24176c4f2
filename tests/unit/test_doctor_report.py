"""Doctor reporting rules: a failing smoke means exit code 1, its name and its fix, no traceback."""

from __future__ import annotations

import io
import sysconfig
import threading

import numpy as np
import pytest

from recsys.doctor import cli
from recsys.doctor.hints import hint_for
from recsys.doctor.report import Check, exit_code, format_result, format_summary, run_checks
from recsys.doctor.versions import COMPONENTS, Component, version_rows

BRIEF_COMPONENTS = {"torch", "torchrec", "faiss", "cupy", "ray", "tritonclient", "nvidia-pytriton",
                    "hydra-core", "wandb", "pandas", "pyarrow", "numpy"}


def _passes() -> str:
    return "all good"


def _widget_breaks() -> str:
    raise RuntimeError("widget jammed\nsecond line of a library message")


@pytest.fixture(autouse=True)
def _no_global_quieting(monkeypatch):
    """main() normally silences library loggers for the process; keep the test session intact."""
    monkeypatch.setattr(cli, "quiet_libraries", lambda verbose=False: None)


def test_failing_check_gives_exit_code_1_and_names_component_with_fix():
    checks = [Check("ok", _passes), Check("widget", _widget_breaks, fix="reinstall widget")]
    results = run_checks(checks)
    assert [r.ok for r in results] == [True, False]
    assert exit_code(results) == 1 and exit_code(results[:1]) == 0
    line = format_result(results[1])
    assert line.startswith("FAIL") and "widget" in line
    assert "RuntimeError: widget jammed | second line" in line and "\n" not in line
    summary = format_summary(results, 1.0)
    assert "1 of 2 smokes FAILED" in summary and "widget: reinstall widget" in summary
    assert "Traceback" not in line + summary
    assert "Traceback" in format_result(results[1], verbose=True)


def test_main_prints_versions_results_and_fix_and_returns_1():
    out = io.StringIO()
    code = cli.main([], checks=[Check("ok", _passes), Check("widget", _widget_breaks,
                                                           fix="reinstall widget")], out=out)
    text = out.getvalue()
    assert code == 1
    assert "PASS    ok" in text and "FAIL    widget" in text and "reinstall widget" in text
    assert "Traceback" not in text
    for label in BRIEF_COMPONENTS:
        assert f"\n{label} " in text, f"{label} missing from the version table"


def test_only_and_skip_select_checks_and_unknown_names_are_errors():
    checks = [Check("a", _passes), Check("b", _passes), Check("c", _passes)]
    assert [c.name for c in cli.select_checks(checks, "a,c", None)] == ["a", "c"]
    assert [c.name for c in cli.select_checks(checks, None, "b")] == ["a", "c"]
    with pytest.raises(ValueError, match="unknown smoke"):
        cli.select_checks(checks, "nope", None)
    out = io.StringIO()
    assert cli.main(["--only", "nope"], checks=checks, out=out) == 2
    assert "unknown smoke(s) nope" in out.getvalue()


def test_timeout_is_a_failure_not_a_hang():
    release = threading.Event()
    try:
        result = run_checks([Check("slow", lambda: str(release.wait(10)), timeout_s=0.2)])[0]
    finally:
        release.set()
    assert not result.ok and result.timed_out and result.seconds < 2
    assert "TimeoutError" in result.detail


def _triton_without_libpython() -> str:
    raise AttributeError("'_thread.RLock' object has no attribute '_recursion_count'")


def test_error_specific_hints_replace_the_generic_fix():
    check = Check("triton", _triton_without_libpython, fix="generic", hint=hint_for("triton"))
    result = run_checks([check])[0]
    assert f"export LD_LIBRARY_PATH={sysconfig.get_config_var('LIBDIR')}" in result.fix
    numpy_err = RuntimeError("numpy 2.4.6 is installed but PyTriton 0.7 needs numpy<2")
    assert "numpy must be <2 for PyTriton" in hint_for("triton")(numpy_err)
    missing = ModuleNotFoundError("No module named 'faiss'", name="faiss")
    assert "pip install --no-deps -r requirements.lock" in hint_for("faiss")(missing)
    assert hint_for("faiss")(ValueError("unrelated")) is None  # falls back to Check.fix


def test_version_table_includes_every_component():
    rows = version_rows()
    assert {r.component for r in rows} == BRIEF_COMPONENTS == {c.label for c in COMPONENTS}
    numpy_row = next(r for r in rows if r.component == "numpy")
    assert numpy_row.version == np.__version__ and numpy_row.gpu == "-"
    assert all(r.version and r.gpu for r in rows)


def test_a_broken_gpu_probe_is_a_table_cell_not_a_crash():
    def broken() -> str:
        raise OSError("driver exploded")

    comp = Component("numpy", ("numpy",), broken)
    absent = Component("nothing", ("surely-not-installed-dist",))
    rows = version_rows((comp, absent))
    assert rows[0].gpu == "probe failed: OSError"
    assert rows[1].version == "not installed"
