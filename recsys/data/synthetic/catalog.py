"""The catalog: items with genres, popularity and latent quality, and the table events sample from.

Items get a primary genre (sometimes a second), a popularity weight ``rank**-exponent`` (ranks
randomly permuted, so the head is spread over genres) and a latent quality. The catalog is the one
part held whole in memory (O(n_items)); users and events stream past it. ``GuideTable`` makes the
per-event popularity lookups in its sampling table fast, and ``catalog_table`` turns it into the
canonical items table for ``items.parquet``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.data.schema import ITEMS_ARROW
from recsys.data.synthetic.config import SyntheticConfig
from recsys.data.synthetic.streams import _KEY_ITEMS, _rng

# Ordered by share of the catalog (and of the audience's taste): the first genre is the largest.
GENRE_NAMES = (
    "Drama", "Comedy", "Action", "Thriller", "Romance", "Documentary", "Crime", "Adventure",
    "Horror", "Sci-Fi", "Family", "Animation", "Fantasy", "Mystery", "Children", "Music", "War",
    "Western", "Musical", "Film-Noir",
)  # fmt: skip
_KIDS_GENRES = ("Family", "Animation", "Children")  # titles rated G or PG only
REGIONS = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "CA")
MATURITY_RATINGS = ("G", "PG", "PG-13", "R")
_MATURITY_SHARES = np.array([0.12, 0.28, 0.35, 0.25])

_GENRE_SKEW = 0.7  # genre g's share of catalog and taste ~ (g + 1) ** -0.7
_SECOND_GENRE_P = 0.3  # chance that a title has a second genre
_REGION_AVAILABILITY = 0.6  # chance that a title is licensed in a given region
_QUALITY_SD = 0.5  # latent item quality, shifts watch fraction and rating
_LAST_YEAR = 2024


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
