"""Item metadata as arrays, so filters and rerank work on a few hundred candidates at once.

The catalog frame (row i = item index i) is turned once per replica into: titles, a genre
membership matrix, a maturity ordinal and a region membership matrix, and a release year. A
title with no maturity rating has ordinal -1; a title with no region list is available
everywhere (MovieLens carries no licensing data, the synthetic catalog does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys import RecsysError
from recsys.data.schema import list_value

MATURITY_ORDER = ("G", "PG", "PG-13", "R", "NC-17")  # least to most restricted


def maturity_level(rating: str | None) -> int:
    """Ordinal of a maturity rating (-1 for None); an unknown string is a client error."""
    if rating is None:
        return -1
    try:
        return MATURITY_ORDER.index(rating)
    except ValueError:
        raise RecsysError(f"unknown maturity rating {rating!r}; use one of "
                          f"{', '.join(MATURITY_ORDER)}") from None


@dataclass
class ItemCatalog:
    titles: list[str]
    genres: list[str]  # genre vocabulary
    genre_matrix: np.ndarray  # (n_items, n_genres) bool
    maturity: np.ndarray  # (n_items,) int8 ordinal, -1 = unknown
    regions: list[str]  # region vocabulary
    region_matrix: np.ndarray  # (n_items, n_regions) bool
    anywhere: np.ndarray  # (n_items,) bool: no region list = available everywhere
    year: np.ndarray  # (n_items,) float32, NaN = unknown

    def __post_init__(self) -> None:
        # per-request lookups, computed once at load time
        self.genre_of = {g: j for j, g in enumerate(self.genres)}
        # per title, its genre columns as plain ints: rerank's greedy loop reads these one
        # title at a time, where a numpy row per title costs microseconds each
        self.genres_of_item = [tuple(np.flatnonzero(row).tolist()) for row in self.genre_matrix]
        self.region_of = {r: j for j, r in enumerate(self.regions)}
        known = self.year[~np.isnan(self.year)]
        self.latest_year = float(known.max()) if len(known) else float("nan")

    @property
    def n_items(self) -> int:
        return len(self.titles)

    @classmethod
    def from_items(cls, items: pd.DataFrame) -> ItemCatalog:
        """``items``: the canonical catalog with row i = item index i."""
        n = len(items)
        genre_lists = [list_value(g) for g in items["genres"]]
        genres = sorted({g for gs in genre_lists for g in gs})
        g_of = {g: j for j, g in enumerate(genres)}
        genre_matrix = np.zeros((n, len(genres)), bool)
        for i, gs in enumerate(genre_lists):
            genre_matrix[i, [g_of[g] for g in gs]] = True
        region_lists = [list_value(r) for r in items.get("regions", pd.Series([[]] * n))]
        regions = sorted({r for rs in region_lists for r in rs})
        r_of = {r: j for j, r in enumerate(regions)}
        region_matrix = np.zeros((n, len(regions)), bool)
        for i, rs in enumerate(region_lists):
            region_matrix[i, [r_of[r] for r in rs]] = True
        ratings = items["maturity_rating"] if "maturity_rating" in items else [None] * n
        maturity = np.array([maturity_level(r if isinstance(r, str) else None)
                             for r in ratings], np.int8)
        year = pd.to_numeric(items["year"], errors="coerce").to_numpy(np.float32)
        titles = [str(t) if isinstance(t, str) else f"item {i}"
                  for i, t in enumerate(items["title"])]
        return cls(titles, genres, genre_matrix, maturity, regions, region_matrix,
                   region_matrix.sum(1) == 0, year)

    def extend(self, items: pd.DataFrame) -> ItemCatalog:
        """A new catalog with ``items`` appended as item indices ``n_items...``: genres and
        regions the catalog did not have join its vocabularies. A new object, not an in-place
        change, so a request reading the old catalog never sees half of the new one."""
        added = ItemCatalog.from_items(items)
        genres = sorted(set(self.genres) | set(added.genres))
        regions = sorted(set(self.regions) | set(added.regions))
        return ItemCatalog(
            self.titles + added.titles, genres,
            np.vstack([_widen(self.genre_matrix, self.genres, genres),
                       _widen(added.genre_matrix, added.genres, genres)]),
            np.concatenate([self.maturity, added.maturity]), regions,
            np.vstack([_widen(self.region_matrix, self.regions, regions),
                       _widen(added.region_matrix, added.regions, regions)]),
            np.concatenate([self.anywhere, added.anywhere]),
            np.concatenate([self.year, added.year]))

    def genre_ids(self, names) -> np.ndarray:
        """Indices of the known genres among ``names`` (unknown names are ignored)."""
        return np.array(sorted({self.genre_of[g] for g in names if g in self.genre_of}),
                        np.int64)

    def item_genres(self, item: int) -> list[str]:
        return [self.genres[j] for j in np.flatnonzero(self.genre_matrix[item])]


def _widen(matrix: np.ndarray, vocab: list[str], wider: list[str]) -> np.ndarray:
    """(n, len(wider)) membership: ``matrix``'s columns (named by ``vocab``) moved to their
    place in the ``wider`` vocabulary, False elsewhere."""
    out = np.zeros((matrix.shape[0], len(wider)), bool)
    out[:, [wider.index(v) for v in vocab]] = matrix
    return out
