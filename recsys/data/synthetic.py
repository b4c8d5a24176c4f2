"""Synthetic users x items x events at scale, written in chunks to Parquet with bounded memory.

MovieLens tops out at a few million ratings; the scale work (sharded embeddings, ANN indices,
serving load) needs catalogs of a million titles and a billion events whose statistics resemble a
streaming service. This module draws them from a small generative story:

* **Items** get a primary genre (sometimes a second), a popularity weight ``rank**-exponent``
  (ranks randomly permuted, so the head is spread over genres) and a latent quality.
* **Users** get a genre affinity from a Dirichlet (small concentration = focused users), an
  activity level (lognormal) and a country and age bucket.
* **Events**: each user's events fall into sessions (a session starts anywhere in the time span;
  its events follow seconds to minutes apart and lean to one genre). Each event picks a genre by
  the user's affinity, then a title of that genre by popularity, and a type from the mix. Plays
  carry a watch fraction and ratings a 1-5 score, both higher where the user likes the genre, so
  the engagement label (``watch_fraction > 0.7``) is learnable.

Output folder layout (Parquet files use the canonical Arrow schemas of ``schema.py``; absent
ratings and watch fractions are nulls there, NaN once loaded)::

    items.parquet                      the catalog (item ids 1..n_items)
    users/part-00000.parquet ...       one part per chunk of ``chunk_users`` users (ids 1..n_users):
                                       country, age bucket and latent_top_genre (ground truth)
    interactions/part-00000.parquet    the same chunks' events, by user, sessions in time order;
                                       one row group per batch of ``batch_events``
    meta.json                          config and counts; written last, so it marks completion

Memory is bounded by the chunk (``chunk_users`` users' affinities) and the batch
(``batch_events`` events materialised at once), never by the totals: the catalog is held in memory
(O(n_items)) but users and events stream through. Everything is deterministic: each chunk draws
from its own ``SeedSequence`` stream keyed by (seed, chunk number), so the same config (chunking
included) gives byte-identical files in any process. Other chunk sizes give a different draw with
the same totals and statistics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from recsys import RecsysError
from recsys.data.dataset import Dataset
from recsys.data.schema import (
    EVENT_TYPES,
    INTERACTIONS_ARROW,
    ITEM_LIST_COLUMNS,
    ITEMS_ARROW,
    make_interactions,
    make_items,
)

META_FORMAT = "recsys-synthetic"
META_VERSION = 1

# Ordered by share of the catalog (and of the audience's taste): the first genre is the largest.
GENRE_NAMES = (
    "Drama", "Comedy", "Action", "Thriller", "Romance", "Documentary", "Crime", "Adventure",
    "Horror", "Sci-Fi", "Family", "Animation", "Fantasy", "Mystery", "Children", "Music", "War",
    "Western", "Musical", "Film-Noir",
)  # fmt: skip
_KIDS_GENRES = ("Family", "Animation", "Children")  # titles rated G or PG only
REGIONS = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "CA")
_REGION_SHARES = np.array([0.35, 0.10, 0.10, 0.08, 0.12, 0.12, 0.06, 0.07])
AGE_BUCKETS = ("18-24", "25-34", "35-44", "45-54", "55+")
_AGE_SHARES = np.array([0.18, 0.30, 0.24, 0.16, 0.12])
MATURITY_RATINGS = ("G", "PG", "PG-13", "R")
_MATURITY_SHARES = np.array([0.12, 0.28, 0.35, 0.25])

_GENRE_SKEW = 0.7  # genre g's share of catalog and taste ~ (g + 1) ** -0.7
_SECOND_GENRE_P = 0.3  # chance that a title has a second genre
_REGION_AVAILABILITY = 0.6  # chance that a title is licensed in a given region
_QUALITY_SD = 0.5  # latent item quality, shifts watch fraction and rating
_WATCH_KAPPA = 3.0  # Beta concentration of the watch fraction: low = many abandon or finish
_LAST_YEAR = 2024
# Dictionary-encode only the repetitive columns (ids of sorted users, the 4 event types) and
# compress with zstd: 40% smaller files and 40% faster writes than pyarrow's defaults here.
_EVENTS_PARQUET = {"use_dictionary": ["user_id", "event_type"], "compression": "zstd"}

# SeedSequence spawn keys: distinct first words so the streams never collide.
_KEY_ITEMS, _KEY_CHUNK_TOTALS, _KEY_CHUNK = 0, 1, 2
_STREAM_ACTIVITY, _STREAM_USERS, _STREAM_EVENTS = 0, 1, 2

USERS_ARROW = pa.schema(
    [
        ("user_id", pa.int64()),
        ("country", pa.string()),
        ("age_bucket", pa.string()),
        # Ground truth of the generator (argmax of the genre affinity), for checking that a model
        # recovers taste; a real source has no such column, so do not feed it to a model.
        ("latent_top_genre", pa.string()),
    ]
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of a synthetic dataset. Defaults give a 500k-event set in a few seconds."""

    n_users: int = 10_000
    n_items: int = 2_000
    n_events: int = 500_000  # exact total; users' activity splits it
    n_genres: int = 20
    popularity_exponent: float = 1.0  # item weight ~ rank ** -exponent (0 = uniform)
    genre_concentration: float = 0.3  # mean Dirichlet alpha per genre; small = focused users
    mean_session_length: float = 8.0  # events per session (geometric)
    session_genre_stickiness: float = 0.5  # chance an event keeps its session's genre
    mean_event_gap_s: float = 60.0  # seconds between events of a session (exponential)
    play_share: float = 0.6
    click_share: float = 0.25
    rating_share: float = 0.1
    search_share: float = 0.05
    activity_sigma: float = 1.0  # lognormal sigma of user activity: 0 = every user alike
    start_timestamp: int = 1_704_067_200  # 2024-01-01T00:00:00Z
    time_span_days: float = 365.0
    seed: int = 0
    chunk_users: int = 100_000  # users per part file; bounds per-user arrays
    batch_events: int = 500_000  # events materialised at once; bounds per-event arrays

    @property
    def n_chunks(self) -> int:
        return -(-self.n_users // self.chunk_users)

    def type_shares(self) -> np.ndarray:
        """Shares in ``EVENT_TYPES`` order, the order of the event_type dictionary codes."""
        by_name = {"rating": self.rating_share, "play": self.play_share,
                   "click": self.click_share, "search": self.search_share}
        return np.array([by_name[t] for t in EVENT_TYPES], dtype=np.float64)

    def validate(self) -> SyntheticConfig:
        """Raise a RecsysError naming every nonsensical setting, before any file is touched."""
        problems = []
        for name in ("n_users", "n_items", "n_events", "n_genres", "chunk_users", "batch_events"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        for name in ("seed", "start_timestamp"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                problems.append(f"{name} must be a non-negative integer, got {value!r}")
        floats = [f.name for f in fields(self) if f.type in ("float", float)]
        bad_float = {n for n in floats if not _is_real(getattr(self, n))}
        problems += [f"{n} must be a finite number, got {getattr(self, n)!r}" for n in bad_float]
        checks = [
            ("popularity_exponent", lambda v: v >= 0, "must be >= 0"),
            ("genre_concentration", lambda v: v > 0, "must be > 0"),
            ("mean_session_length", lambda v: v >= 1, "must be >= 1"),
            ("session_genre_stickiness", lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
            ("mean_event_gap_s", lambda v: v >= 0, "must be >= 0"),
            ("activity_sigma", lambda v: v >= 0, "must be >= 0"),
            ("time_span_days", lambda v: v > 0, "must be > 0"),
        ]
        for name, ok, rule in checks:
            value = getattr(self, name)
            if name not in bad_float and not ok(value):
                problems.append(f"{name} {rule}, got {value!r}")
        share_names = ("play_share", "click_share", "rating_share", "search_share")
        if not bad_float.intersection(share_names):
            shares = {n: getattr(self, n) for n in share_names}
            total = sum(shares.values())
            if min(shares.values()) < 0 or abs(total - 1.0) > 1e-6:
                problems.append(f"event type shares must be >= 0 and sum to 1, got {shares} "
                                f"(sum {total:g})")
        if _is_int(self.n_genres) and _is_int(self.n_items) and self.n_genres > self.n_items > 0:
            problems.append(f"n_genres ({self.n_genres}) cannot exceed n_items ({self.n_items}): "
                            "every genre needs a title")
        if problems:
            raise RecsysError("invalid synthetic config: " + "; ".join(problems))
        return self


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return False
    return bool(np.isfinite(value))


# --------------------------------------------------------------------------------------------
# Random streams


def _rng(seed: int, *key: int) -> np.random.Generator:
    """A generator for one purpose (items, chunk c's users...), independent of call order."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _below_one(weights: np.ndarray) -> np.ndarray:
    """Probabilities that sum to a hair under 1, so ``multinomial`` never rejects them for
    rounding; the last category absorbs the missing 1e-9 (about one event in a billion)."""
    return weights / (weights.sum() * (1.0 + 1e-9))


# --------------------------------------------------------------------------------------------
# Catalog


@dataclass
class Catalog:
    """The items as numpy arrays (plus the per-genre sampling table events draw from)."""

    genre_names: tuple[str, ...]
    primary: np.ndarray  # (n_items,) int16 genre code
    secondary: np.ndarray  # (n_items,) int16 genre code, -1 when none
    weight: np.ndarray  # (n_items,) float64 popularity weight
    quality: np.ndarray  # (n_items,) float32 latent quality
    # Sampling table: members of genre g are member_item[g_start[g]:g_end[g]], most popular first;
    # member_cum is the running sum of their weights over the whole table (genre by genre).
    member_item: np.ndarray  # (n_members,) int64 item index
    member_cum: np.ndarray  # (n_members,) float64
    g_start: np.ndarray  # (n_genres,) int64
    g_end: np.ndarray  # (n_genres,) int64
    g_lo: np.ndarray  # (n_genres,) float64 cumulative weight before the genre
    g_mass: np.ndarray  # (n_genres,) float64 total weight of the genre
    guide: GuideTable  # speeds up the inverse-CDF lookups in member_cum

    def sample_items(self, genre: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Item index per event: by popularity within the event's genre, one inverse-CDF lookup
        in the concatenated table (genre offsets make it a single monotone array)."""
        target = self.g_lo[genre] + u * self.g_mass[genre]  # (E,)
        pos = self.guide.searchsorted(target)
        pos = np.minimum(pos, self.g_end[genre] - 1)  # u * mass may round up to the boundary
        return self.member_item[pos]


class GuideTable:
    """``np.searchsorted(cum, x, side="right")`` for many random x, 3-6x faster on big tables.

    A binary search over a million-entry table misses cache at every level (~300 ns per
    event). The guide (Chen & Asau's cutpoint method) splits [0, total) into ``2 * len(cum)``
    equal cells and stores each cell's answer for its left edge, a lower bound for any x in the
    cell; a few vectorised forward steps finish the job (a cell rarely spans more than a few
    entries), and the rare leftovers (far tail of steep power laws) fall back to searchsorted.
    Results equal searchsorted's exactly.
    """

    max_steps = 8

    def __init__(self, cum: np.ndarray):
        self.cum = cum  # (n,) float64, non-decreasing
        self.n_cells = 2 * len(cum)
        self.scale = self.n_cells / cum[-1]  # cells per unit of mass
        self.first = np.searchsorted(cum, np.arange(self.n_cells) / self.scale, side="right")

    def searchsorted(self, x: np.ndarray) -> np.ndarray:
        cell = np.minimum((x * self.scale).astype(np.int64), self.n_cells - 1)  # (E,)
        cell -= cell / self.scale > x  # float rounding may put x left of its cell's edge
        pos = self.first[cell]  # (E,) lower bound of the answer
        last = len(self.cum) - 1
        todo = np.flatnonzero(self.cum[np.minimum(pos, last)] <= x)  # answers further right
        for _ in range(self.max_steps):
            if not len(todo):
                return pos
            pos[todo] += 1
            todo = todo[self.cum[np.minimum(pos[todo], last)] <= x[todo]]
        pos[todo] = np.searchsorted(self.cum, x[todo], side="right")
        return pos


def genre_prior(n_genres: int) -> np.ndarray:
    """Share of catalog and of taste per genre: a mild power law, so Drama outweighs Film-Noir."""
    prior = (1.0 + np.arange(n_genres)) ** -_GENRE_SKEW
    return prior / prior.sum()


def genre_names(n_genres: int) -> tuple[str, ...]:
    extra = [f"Genre {k + 1}" for k in range(len(GENRE_NAMES), n_genres)]
    return (GENRE_NAMES + tuple(extra))[:n_genres]


def make_catalog(config: SyntheticConfig) -> Catalog:
    """Draw the catalog; O(n_items) memory, which is fine up to tens of millions of titles."""
    rng = _rng(config.seed, _KEY_ITEMS)
    n, n_genres = config.n_items, config.n_genres
    primary = rng.choice(n_genres, size=n, p=genre_prior(n_genres)).astype(np.int16)
    primary[rng.permutation(n)[:n_genres]] = np.arange(n_genres)  # no genre left empty
    secondary = np.full(n, -1, dtype=np.int16)
    if n_genres > 1:
        has_second = rng.random(n) < _SECOND_GENRE_P
        shift = 1 + rng.integers(0, n_genres - 1, size=n)  # never the primary genre
        secondary[has_second] = ((primary + shift) % n_genres)[has_second]
    rank = 1.0 + rng.permutation(n)  # 1 = the most popular title
    weight = rank ** -config.popularity_exponent
    quality = rng.normal(0.0, _QUALITY_SD, size=n).astype(np.float32)
    return _with_sampling_table(genre_names(n_genres), primary, secondary, weight, quality)


def _with_sampling_table(names, primary, secondary, weight, quality) -> Catalog:
    """Index every (genre, item) membership, genre by genre and most popular first (popular
    targets then share cache lines during the lookups)."""
    n_genres = len(names)
    has_second = secondary >= 0
    member_genre = np.concatenate([primary, secondary[has_second]]).astype(np.int64)
    member_item = np.concatenate([np.arange(len(primary)), np.flatnonzero(has_second)])
    order = np.lexsort((-weight[member_item], member_genre))
    member_genre, member_item = member_genre[order], member_item[order]
    member_cum = np.cumsum(weight[member_item])
    g_start = np.searchsorted(member_genre, np.arange(n_genres), side="left")
    g_end = np.searchsorted(member_genre, np.arange(n_genres), side="right")
    cum0 = np.concatenate([[0.0], member_cum])  # cum0[i] = weight of members before i
    g_lo = cum0[g_start]
    return Catalog(names, primary, secondary, weight, quality, member_item, member_cum, g_start,
                   g_end, g_lo, cum0[g_end] - g_lo, GuideTable(member_cum))


def catalog_table(config: SyntheticConfig, catalog: Catalog) -> pa.Table:
    """The catalog as an Arrow table (ITEMS_ARROW), built column-wise: no Python object per
    title, so a million titles take about a second."""
    rng = _rng(config.seed, _KEY_ITEMS, 1)
    n = config.n_items
    item_id = np.arange(1, n + 1, dtype=np.int64)
    title = pc.binary_join_element_wise("Synthetic Title ", pc.cast(pa.array(item_id), pa.string()),
                                        "")
    age = np.minimum(rng.exponential(12.0, size=n), 100).astype(np.int16)
    year = (_LAST_YEAR - age).astype(np.int16)
    day = rng.integers(0, 365, size=n)
    release = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + day
    maturity = rng.choice(len(MATURITY_RATINGS), size=n, p=_MATURITY_SHARES)
    kids = np.isin(np.array(catalog.genre_names)[catalog.primary], _KIDS_GENRES)
    maturity[kids] = rng.integers(0, 2, size=int(kids.sum()))  # G or PG
    available = rng.random((n, len(REGIONS)), dtype=np.float32) < _REGION_AVAILABILITY
    nowhere = ~available.any(axis=1)
    available[np.flatnonzero(nowhere), rng.integers(0, len(REGIONS), int(nowhere.sum()))] = True
    region_codes = np.broadcast_to(np.arange(len(REGIONS), dtype=np.int8), available.shape)
    has_second = catalog.secondary >= 0
    genre_codes = np.stack([catalog.primary, catalog.secondary], axis=1)[
        np.stack([np.ones(n, bool), has_second], axis=1)]  # (n_members,) row-major
    columns = {
        "item_id": pa.array(item_id),
        "title": title,
        "year": pa.array(year),
        "genres": _list_array(1 + has_second, genre_codes, catalog.genre_names),
        "tags": _list_array(np.zeros(n, np.int64), np.zeros(0, np.int64), ()),
        "maturity_rating": pa.array(MATURITY_RATINGS).take(pa.array(maturity)),
        "regions": _list_array(available.sum(axis=1), region_codes[available], REGIONS),
        "release_date": pa.array(release.astype("datetime64[s]"), pa.timestamp("s")),
    }
    return pa.Table.from_pydict(columns, schema=ITEMS_ARROW)


def _list_array(lengths: np.ndarray, codes: np.ndarray, names) -> pa.Array:
    """list<string> from per-row lengths and flat codes into ``names``."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = pa.array(list(names), pa.string()).take(pa.array(codes))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


# --------------------------------------------------------------------------------------------
# Users


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


# --------------------------------------------------------------------------------------------
# Events


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


# --------------------------------------------------------------------------------------------
# Driver


def generate(config: SyntheticConfig, out_dir: str | Path, progress: bool = True,
             overwrite: bool = False) -> Path:
    """Write the dataset described by ``config`` to ``out_dir`` and return the folder.

    Refuses a folder that already holds a dataset unless ``overwrite`` (stale part files of a
    bigger earlier run would otherwise be read back with the new ones).
    """
    config.validate()
    out = Path(out_dir)
    _prepare(out, overwrite)
    catalog = make_catalog(config)
    pq.write_table(catalog_table(config, catalog), out / "items.parquet")
    pa.default_memory_pool().release_unused()  # the catalog's strings are gone for good
    totals = chunk_event_totals(config)
    by_type = np.zeros(len(EVENT_TYPES), dtype=np.int64)
    with (tqdm(total=config.n_events, unit="ev", unit_scale=True, disable=not progress,
               desc="synthetic events") as bar,
          _BackgroundWriter() as background):
        for chunk in range(config.n_chunks):
            by_type += _write_chunk(config, catalog, chunk, int(totals[chunk]), out, background,
                                    bar.update)
    meta = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "config": asdict(config),
        "genres": list(catalog.genre_names),
        "counts": {
            "users": config.n_users,
            "items": config.n_items,
            "events": int(by_type.sum()),
            "events_by_type": dict(zip(EVENT_TYPES, by_type.tolist(), strict=True)),
            "parts": config.n_chunks,
        },
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def _prepare(out: Path, overwrite: bool) -> None:
    """Create the folders; clear an earlier dataset's files (only ours) when allowed."""
    ours = [out / "meta.json", out / "items.parquet",
            *sorted(out.glob("users/part-*.parquet")),
            *sorted(out.glob("interactions/part-*.parquet"))]
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        raise RecsysError(f"{out} already holds a synthetic dataset; pass overwrite=True "
                          "(--overwrite on the command line) or choose another folder")
    for path in existing:  # meta.json first: an interrupted clean-up reads as unfinished
        path.unlink()
    (out / "users").mkdir(parents=True, exist_ok=True)
    (out / "interactions").mkdir(parents=True, exist_ok=True)


class _BackgroundWriter:
    """One thread that writes Parquet while the main thread draws the next batch (pyarrow
    releases the GIL, as do numpy's random and searchsorted loops).

    At most one task waits: ``submit`` first finishes the previous one, which bounds memory at
    about two batches and re-raises a failed write promptly. Tasks run in submission order, so
    the files are the same as with synchronous writes.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synthetic-writer")
        self._pending: Future | None = None

    def submit(self, fn: Callable[..., object], *args) -> None:
        self.drain()
        self._pending = self._pool.submit(fn, *args)

    def drain(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __enter__(self) -> _BackgroundWriter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.drain()
        finally:
            self._pool.shutdown(wait=True)


def _write_events(writer: pq.ParquetWriter, table: pa.Table, last: bool) -> None:
    writer.write_table(table)
    if last:
        writer.close()


def _write_chunk(config: SyntheticConfig, catalog: Catalog, chunk: int, total: int, out: Path,
                 background: _BackgroundWriter, advance: Callable[[int], object]) -> np.ndarray:
    """Write one chunk's users and events (batch by batch, one row group each) through the
    background writer; return the chunk's event counts by type, (4,) int64."""
    users = make_users(config, chunk, total)
    name = f"part-{chunk:05d}.parquet"
    background.submit(pq.write_table, users.table(catalog.genre_names), out / "users" / name)
    rng = _rng(config.seed, _KEY_CHUNK, chunk, _STREAM_EVENTS)
    by_type = np.zeros(len(EVENT_TYPES), dtype=np.int64)
    writer = pq.ParquetWriter(out / "interactions" / name, INTERACTIONS_ARROW, **_EVENTS_PARQUET)
    batches = list(_batches(users.counts, config.batch_events))
    if not batches:  # a chunk without events still gets its (empty) part file
        background.submit(writer.close)
    for i, (a, b) in enumerate(batches):
        table = make_events(config, catalog, users, a, b, rng)
        codes = table.column("event_type").chunk(0).indices.to_numpy()
        by_type += np.bincount(codes, minlength=len(EVENT_TYPES))
        background.submit(_write_events, writer, table, i == len(batches) - 1)
        advance(table.num_rows)
    return by_type


# --------------------------------------------------------------------------------------------
# Reading back


def read_meta(out_dir: str | Path) -> dict:
    """The meta.json of a finished dataset; a RecsysError for a missing or unfinished one."""
    folder = Path(out_dir)
    if not folder.is_dir():
        raise RecsysError(f"synthetic dataset folder not found: {folder}")
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        raise RecsysError(f"{folder} has no meta.json: not a finished synthetic dataset "
                          "(generate one with scripts/generate_synthetic.py)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise RecsysError(f"{meta_path} is not valid JSON ({err})") from err
    if meta.get("format") != META_FORMAT:
        raise RecsysError(f"{meta_path} does not describe a synthetic dataset")
    return meta


def load_synthetic(out_dir: str | Path, max_events: int | None = 100_000_000) -> Dataset:
    """Read a generated folder back as a ``Dataset`` with the canonical dtypes.

    Everything goes into memory (~60 bytes per event once indexed), hence ``max_events``: for
    bigger sets stream the Parquet parts instead.
    """
    folder = Path(out_dir)
    meta = read_meta(folder)
    n_events = meta["counts"]["events"]
    if max_events is not None and n_events > max_events:
        raise RecsysError(f"{folder} holds {n_events:,} events, more than max_events="
                          f"{max_events:,} to load into memory; read interactions/ part by part")
    parts = sorted((folder / "interactions").glob("part-*.parquet"))
    user_parts = sorted((folder / "users").glob("part-*.parquet"))
    if not (folder / "items.parquet").exists() or len(parts) != meta["counts"]["parts"] or len(
            user_parts) != meta["counts"]["parts"]:
        raise RecsysError(f"{folder} is incomplete: expected items.parquet and "
                          f"{meta['counts']['parts']} part files in users/ and interactions/")
    events = pa.concat_tables([pq.read_table(p, schema=INTERACTIONS_ARROW) for p in parts])
    if events.num_rows != n_events:
        raise RecsysError(f"{folder} has {events.num_rows:,} events, meta.json says {n_events:,}")
    interactions = _interactions_frame(events)
    items = _items_frame(pq.read_table(folder / "items.parquet").cast(ITEMS_ARROW))
    users = pa.concat_tables([pq.read_table(p) for p in user_parts]).to_pandas()
    return Dataset("synthetic", interactions, items, users)


def _interactions_frame(events: pa.Table) -> pd.DataFrame:
    """Canonical interactions from the Arrow table, via numpy (no per-row objects)."""
    kind = events.column("event_type").combine_chunks()
    names = kind.dictionary.to_pylist()
    codes = kind.indices.to_numpy(zero_copy_only=False)
    event_type = pd.Categorical.from_codes(codes, categories=names)
    return make_interactions(
        events.column("user_id").to_numpy(),
        events.column("item_id").to_numpy(),
        rating=events.column("rating").to_numpy(),
        timestamp=events.column("timestamp").to_numpy(),
        event_type=event_type,
        watch_fraction=events.column("watch_fraction").to_numpy(),
    )


def _items_frame(table: pa.Table) -> pd.DataFrame:
    """Canonical items; list columns become Python lists as the schema promises."""
    frame = table.drop_columns(list(ITEM_LIST_COLUMNS)).to_pandas()
    for column in ITEM_LIST_COLUMNS:
        frame[column] = table.column(column).to_pylist()
    return make_items(frame)
