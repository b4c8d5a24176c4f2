"""Triton's Python-backend stub (PyTriton 0.7) corrupts tensors under numpy 2 without an error of
its own: on a GPU host with numpy 2.5 the served ranker read item ids where genre ids belong. The
launcher must refuse up front, before any process or port is taken."""

import numpy as np
import pytest

from recsys.runtime.triton_handle import TritonStartError, check_numpy_for_stub
from recsys.runtime.tritonserver import tritonserver


def test_tritonserver_refuses_numpy_2(monkeypatch, tmp_path):
    (tmp_path / "ranker").mkdir()
    (tmp_path / "ranker" / "config.pbtxt").write_text('name: "ranker"\nbackend: "python"\n')
    monkeypatch.setattr(np, "__version__", "2.5.2")
    with pytest.raises(TritonStartError, match=r"numpy 2\.5\.2 .* needs numpy<2"):
        with tritonserver(tmp_path):
            pass


def test_numpy_1_passes_the_guard(monkeypatch):
    monkeypatch.setattr(np, "__version__", "1.26.4")
    check_numpy_for_stub()
    monkeypatch.setattr(np, "__version__", "2.0.0")
    with pytest.raises(TritonStartError, match="needs numpy<2"):
        check_numpy_for_stub()
