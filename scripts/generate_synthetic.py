"""Generate a synthetic events dataset (users x items x events) as chunked Parquet.

    python scripts/generate_synthetic.py --users 1000000 --items 100000 --events 20000000 \\
        --out data/synthetic-1m

Exit code 2 with a one-line message on a bad setting (no traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from recsys import RecsysError
from recsys.data.synthetic import SyntheticConfig, generate

_DEFAULTS = SyntheticConfig()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=_DEFAULTS.n_users, help="number of users")
    parser.add_argument("--items", type=int, default=_DEFAULTS.n_items, help="number of titles")
    parser.add_argument("--events", type=int, default=_DEFAULTS.n_events,
                        help="total events (exact)")
    parser.add_argument("--genres", type=int, default=_DEFAULTS.n_genres)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument("--chunk-users", type=int, default=_DEFAULTS.chunk_users,
                        help="users per part file (bounds per-user memory)")
    parser.add_argument("--batch-events", type=int, default=_DEFAULTS.batch_events,
                        help="events materialised at once (bounds per-event memory)")
    parser.add_argument("--popularity-exponent", type=float,
                        default=_DEFAULTS.popularity_exponent)
    parser.add_argument("--genre-concentration", type=float,
                        default=_DEFAULTS.genre_concentration)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset already in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = SyntheticConfig(
        n_users=args.users, n_items=args.items, n_events=args.events, n_genres=args.genres,
        popularity_exponent=args.popularity_exponent,
        genre_concentration=args.genre_concentration, seed=args.seed,
        chunk_users=args.chunk_users, batch_events=args.batch_events,
    )
    start = time.perf_counter()
    try:
        out = generate(config, args.out, progress=not args.no_progress, overwrite=args.overwrite)
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"wrote {config.n_events:,} events of {config.n_users:,} users x {config.n_items:,} "
          f"items to {out} in {seconds:.1f} s ({config.n_events / seconds:,.0f} events/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
