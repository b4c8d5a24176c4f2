"""Events of a chunk's users, batch by batch: sessions, genres, titles, types and engagement.

Each user's events fall into sessions (a session starts anywhere in the time span; its events
follow seconds to minutes apart and lean to one genre). Each event picks a genre by the user's
affinity, then a title of that genre by popularity, and a type from the mix. Plays carry a watch
fraction and ratings a 1-5 score, both higher where the user likes the genre, so the engagement
label (``watch_fraction > 0.7``) is learnable. ``_batches`` cuts a chunk into user ranges of at
most ``batch_events`` events, which bounds every per-event array.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from recsys.data.schema import EVENT_TYPES, INTERACTIONS_ARROW
from recsys.data.synthetic.catalog import Catalog
from recsys.data.synthetic.config import SyntheticConfig
from recsys.data.synthetic.users import UserChunk

_WATCH_KAPPA = 3.0  # Beta concentration of the watch fraction: low = many abandon or finish


def _batches(counts: np.ndarray, batch_events: int) -> Iterator[tuple[int, int]]:
    """Consecutive user ranges [a, b) holding at most ``batch_events`` events each (a single user
    above the cap gets a batch of their own)."""
    cum = np.cumsum(counts)
    total = int(cum[-1]) if len(cum) else 0
    targets = np.arange(1, -(-total // batch_events)) * batch_events
    ends = np.unique(np.concatenate([np.searchsorted(cum, targets, side="right"), [len(counts)]]))
    start = 0
    for end in ends.tolist():
        if end > start and cum[end - 1] > (cum[start - 1] if start else 0):  # skip empty ones
            yield start, end
        start = max(start, end)


def _sample_rows(cum_flat: np.ndarray, row: np.ndarray, u: np.ndarray, width: int) -> np.ndarray:
    """Categorical draw per event from its own row of probabilities: rows' cumulative sums are
    offset by the row number (row r spans (r, r+1]) so one searchsorted serves every row."""
    return np.searchsorted(cum_flat, row + u, side="right") - row * width


def _sessions(config: SyntheticConfig, rng: np.random.Generator, user: np.ndarray,
              first: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Session of each event and its timestamp. ``user`` (E,) is sorted and ``first`` marks
    each user's first event. Returns (session id (E,), session row -> user (S,), timestamp (E,))."""
    starts = rng.random(len(user)) < 1.0 / config.mean_session_length  # (E,) bool
    starts[first] = True
    session = np.cumsum(starts) - 1  # (E,) session id, consecutive within a user
    head = np.flatnonzero(starts)  # (S,) first event of each session
    session_user = user[head]  # (S,) non-decreasing
    span = config.time_span_days * 86_400.0
    opens = rng.random(len(head)) * span  # (S,) seconds after start_timestamp
    opens = opens[np.lexsort((opens, session_user))]  # a user's sessions in time order
    gap = rng.standard_exponential(len(user), dtype=np.float32)  # (E,) gaps in mean-gap units
    gap[head] = 0.0
    elapsed = np.cumsum(gap, dtype=np.float64) * config.mean_event_gap_s
    elapsed -= elapsed[head][session]  # (E,) seconds since the session opened
    timestamp = config.start_timestamp + np.floor(opens[session] + elapsed).astype(np.int64)
    return session, session_user, timestamp


def _event_genres(config: SyntheticConfig, rng: np.random.Generator, users: UserChunk,
                  row: np.ndarray, session: np.ndarray, session_user: np.ndarray) -> np.ndarray:
    """Genre per event: with probability ``session_genre_stickiness`` the session's genre, else
    a fresh draw; both follow the user's affinity."""
    n_genres = config.n_genres
    cum_flat = users.affinity_cum_flat  # (n * n_genres,)
    of_session = _sample_rows(cum_flat, session_user, rng.random(len(session_user)), n_genres)
    genre = of_session[session]  # (E,)
    fresh = np.flatnonzero(rng.random(len(row)) >= config.session_genre_stickiness)  # (F,)
    genre[fresh] = _sample_rows(cum_flat, row[fresh], rng.random(len(fresh)), n_genres)
    return genre


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_events(config: SyntheticConfig, catalog: Catalog, users: UserChunk, a: int, b: int,
                rng: np.random.Generator) -> pa.Table:
    """Events of users [a, b) of the chunk as an INTERACTIONS_ARROW table, by user and, within
    a user, by session start. All arrays are per event, (E,), E = users.counts[a:b].sum()."""
    counts = users.counts[a:b]
    row = np.repeat(np.arange(a, b), counts)  # (E,) user row within the chunk
    first = (np.cumsum(counts) - counts)[counts > 0]
    session, session_user, timestamp = _sessions(config, rng, row, first)
    genre = _event_genres(config, rng, users, row, session, session_user)
    item = catalog.sample_items(genre, rng.random(len(row)))
    kind = np.searchsorted(np.cumsum(config.type_shares()), rng.random(len(row)), side="right")
    kind = np.minimum(kind, len(EVENT_TYPES) - 1).astype(np.int8)  # (E,) code into EVENT_TYPES
    # How much the user likes the event's genre relative to their favourite, in (0, 1].
    like = users.affinity.ravel()[row * config.n_genres + genre] / users.top_affinity[row]
    rating = np.full(len(row), np.nan, dtype=np.float32)
    rated = kind == EVENT_TYPES.index("rating")
    score = 2.0 + 2.5 * like[rated] + catalog.quality[item[rated]]
    score += rng.normal(0.0, 0.8, size=len(score))
    rating[rated] = np.clip(np.rint(score), 1, 5)
    watch = np.full(len(row), np.nan, dtype=np.float32)
    played = kind == EVENT_TYPES.index("play")
    mean = _sigmoid(-1.0 + 2.5 * like[played] + catalog.quality[item[played]])
    watch[played] = rng.beta(mean * _WATCH_KAPPA, (1.0 - mean) * _WATCH_KAPPA)
    columns = [
        pa.array(users.user_id[row]),
        pa.array(item.astype(np.int64) + 1),  # item ids are 1-based
        pa.array(rating, from_pandas=True),  # NaN -> null, as pandas' own to_parquet writes it
        pa.array(timestamp),
        pa.DictionaryArray.from_arrays(pa.array(kind), pa.array(list(EVENT_TYPES))),
        pa.array(watch, from_pandas=True),
    ]
    return pa.Table.from_arrays(columns, schema=INTERACTIONS_ARROW)
