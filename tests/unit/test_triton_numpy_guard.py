"""Triton's Python-backend stub (PyTriton 0.7) corrupts tensors under numpy 2 without an error of
its own: on a GPU host with numpy 2.5 the served ranker read item ids where genre ids belong. Both
ways of starting Triton must refuse up front, before any process or port is taken."""

import numpy as np
import pytest

from recsys.runtime.triton_handle import TritonStartError
from recsys.runtime.tritonserver import tritonserver


def test_tritonserver_refuses_numpy_2(monkeypatch, tmp_path):
    (tmp_path / "ranker").mkdir()
    (tmp_path / "ranker" / "config.pbtxt").write_text('name: "ranker"\nbackend: "python"\n')
    monkeypatch.setattr(np, "__version__", "2.5.2")
    with pytest.raises(TritonStartError, match=r"numpy 2\.5\.2 .* needs numpy<2"):
        with tritonserver(tmp_path):
            pass


def test_pytriton_server_refuses_numpy_2(monkeypatch):
    from recsys.runtime.triton import ModelBinding, Tensor, triton_server

    binding = ModelBinding("echo", lambda x: {"y": x}, [Tensor(name="x", dtype=np.float32,
                                                               shape=(-1,))],
                           [Tensor(name="y", dtype=np.float32, shape=(-1,))])
    monkeypatch.setattr(np, "__version__", "2.0.0")
    with pytest.raises(TritonStartError, match="needs numpy<2"):
        with triton_server(binding):
            pass
