"""Entry point: ``python -m recsys.doctor [--only a,b] [--skip c] [--verbose]``."""

from __future__ import annotations

import os
import sys
import threading

from recsys.doctor.cli import main
from recsys.doctor.report import THREAD_PREFIX

if __name__ == "__main__":
    code = main()
    # A smoke that hit its time limit is still running in a daemon thread and may be stuck inside
    # a library (Ray, Triton); normal interpreter shutdown could then hang on its atexit hooks.
    if any(t.name.startswith(THREAD_PREFIX) and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
