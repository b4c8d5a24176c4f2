"""Quiet by default: the libraries' known chatter is dropped where it comes from, errors stay."""

import logging

from recsys.runtime.quiet import FromPackages, WarningsAndAbove


def record(level: int, path: str, name: str = "root") -> logging.LogRecord:
    return logging.LogRecord(name, level, path, 1, "Successfully loaded: 'x.so'", None, None)


def test_root_logger_records_from_fbgemm_and_torchrec_go_below_error():
    keep = FromPackages(("/fbgemm_gpu/", "/torchrec/")).filter
    assert not keep(record(logging.INFO, "/site-packages/fbgemm_gpu/__init__.py"))
    assert not keep(record(logging.WARNING, "/site-packages/torchrec/distributed/utils.py"))
    assert keep(record(logging.ERROR, "/site-packages/fbgemm_gpu/__init__.py"))
    assert keep(record(logging.INFO, "/work/recsys/train/loop.py"))  # ours: kept


def test_ray_serve_startup_info_goes_its_warnings_stay():
    keep = WarningsAndAbove().filter
    assert not keep(record(logging.INFO, "serve/api.py", "ray.serve"))
    assert keep(record(logging.WARNING, "serve/api.py", "ray.serve"))
