"""Entry point: ``python -m recsys.stream [COMMAND] [overrides]`` (``recsys.stream.cli``)."""

from __future__ import annotations

import sys

from recsys.stream.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
