"""Hardware decided once; CUDA requests fall back to CPU on machines without it."""

import logging

import pytest
import torch

from recsys.device import array_module, hardware, resolve_device


def test_hardware_is_probed_once():
    assert hardware() is hardware()
    assert hardware().torch_cuda == torch.cuda.is_available()
    assert all(isinstance(line, str) for line in hardware().lines())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_cuda_request_falls_back_to_cpu_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert resolve_device("cuda") == torch.device("cpu")
    assert "no CUDA device" in caplog.text
    assert resolve_device("auto") == torch.device("cpu")
    import numpy

    assert array_module() is numpy


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_is_used_when_present():
    assert resolve_device("auto").type == "cuda"
