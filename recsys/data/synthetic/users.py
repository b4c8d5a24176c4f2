"""Users, drawn one chunk at a time: activity, genre affinity, country and age bucket.

Users get a genre affinity from a Dirichlet (small concentration = focused users), an activity
level (lognormal) and a country and age bucket. Only one chunk of ``chunk_users`` users is ever in
memory; ``chunk_event_totals`` splits the event total among chunks from their activity sums so
that no step needs every user at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from recsys.data.synthetic.catalog import REGIONS, genre_prior
from recsys.data.synthetic.config import SyntheticConfig
from recsys.data.synthetic.layout import USERS_ARROW
from recsys.data.synthetic.streams import (
    _KEY_CHUNK,
    _KEY_CHUNK_TOTALS,
    _STREAM_ACTIVITY,
    _STREAM_USERS,
    _below_one,
    _rng,
)

_REGION_SHARES = np.array([0.35, 0.10, 0.10, 0.08, 0.12, 0.12, 0.06, 0.07])
AGE_BUCKETS = ("18-24", "25-34", "35-44", "45-54", "55+")
_AGE_SHARES = np.array([0.18, 0.30, 0.24, 0.16, 0.12])


def chunk_event_totals(config: SyntheticConfig) -> np.ndarray:
    """Events per chunk, (n_chunks,) int64 summing to n_events exactly: a multinomial over the
    chunks' activity sums, so each user's expected count is n_events * activity / total without
    holding all users' activities at once."""
    sums = np.array([_activity(config, c).sum() for c in range(config.n_chunks)])
    return _rng(config.seed, _KEY_CHUNK_TOTALS).multinomial(config.n_events, _below_one(sums))


def _chunk_bounds(config: SyntheticConfig, chunk: int) -> tuple[int, int]:
    lo = chunk * config.chunk_users
    return lo, min(config.n_users, lo + config.chunk_users)


def _activity(config: SyntheticConfig, chunk: int) -> np.ndarray:
    """Relative activity of the chunk's users, (n,) float64, mean 1 (lognormal)."""
    lo, hi = _chunk_bounds(config, chunk)
    rng = _rng(config.seed, _KEY_CHUNK, chunk, _STREAM_ACTIVITY)
    sigma = config.activity_sigma
    return rng.lognormal(-0.5 * sigma**2, sigma, size=hi - lo)


@dataclass
class UserChunk:
    """One chunk's users: ids, event counts and genre affinities."""

    user_id: np.ndarray  # (n,) int64
    counts: np.ndarray  # (n,) int64 events per user
    affinity: np.ndarray  # (n, n_genres) float64, rows sum to 1
    country: np.ndarray  # (n,) int code into REGIONS
    age: np.ndarray  # (n,) int code into AGE_BUCKETS

    @cached_property
    def affinity_cum_flat(self) -> np.ndarray:
        """Row r's cumulative affinity plus r, flattened, (n * n_genres,) monotone: the lookup
        table of ``_sample_rows``. Cached because every batch of the chunk needs it."""
        cum = np.cumsum(self.affinity, axis=1)
        cum[:, -1] = 1.0
        return (cum + np.arange(len(cum))[:, None]).ravel()

    @cached_property
    def top_affinity(self) -> np.ndarray:
        """(n,) float64 affinity of each user's favourite genre."""
        return self.affinity.max(axis=1)

    def table(self, names: tuple[str, ...]) -> pa.Table:
        top = self.affinity.argmax(axis=1)
        columns = {
            "user_id": pa.array(self.user_id),
            "country": pa.array(REGIONS).take(pa.array(self.country)),
            "age_bucket": pa.array(AGE_BUCKETS).take(pa.array(self.age)),
            "latent_top_genre": pa.array(list(names)).take(pa.array(top)),
        }
        return pa.Table.from_pydict(columns, schema=USERS_ARROW)


def make_users(config: SyntheticConfig, chunk: int, total_events: int) -> UserChunk:
    """Draw one chunk's users and split the chunk's ``total_events`` among them by activity."""
    lo, hi = _chunk_bounds(config, chunk)
    rng = _rng(config.seed, _KEY_CHUNK, chunk, _STREAM_USERS)
    counts = rng.multinomial(total_events, _below_one(_activity(config, chunk)))
    alpha = config.genre_concentration * config.n_genres * genre_prior(config.n_genres)
    # Dirichlet via normalised gammas; float32 draws are ~1.5x faster and precise enough here.
    gammas = rng.standard_gamma(alpha.astype(np.float32), size=(hi - lo, config.n_genres),
                                dtype=np.float32).astype(np.float64)  # (n, n_genres)
    totals = gammas.sum(axis=1, keepdims=True)
    degenerate = totals[:, 0] <= 0  # every gamma underflowed (tiny alpha): treat as uniform
    gammas[degenerate] = 1.0
    totals[degenerate] = config.n_genres
    return UserChunk(
        user_id=np.arange(lo + 1, hi + 1, dtype=np.int64),
        counts=counts,
        affinity=gammas / totals,
        country=rng.choice(len(REGIONS), size=hi - lo, p=_REGION_SHARES),
        age=rng.choice(len(AGE_BUCKETS), size=hi - lo, p=_AGE_SHARES),
    )
