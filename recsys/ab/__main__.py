"""Entry point: ``python -m recsys.ab report NAME [options] [overrides]`` (``recsys.ab.cli``)."""

from __future__ import annotations

import sys

from recsys.ab.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
