"""Filters: the titles a response must never contain, applied to the candidates before ranking.

Each filter is a boolean mask over the candidate array, so one request costs a few vector
operations. Rules:

* watched: anything in the user's history;
* disliked genres: a title carrying any disliked genre (derived from low ratings or set in the
  profile, see ``recsys.serving.state``);
* maturity: a title rated above the request's (or else the profile's) maximum; a title without a
  rating is dropped too when a maximum is set, since "unknown" is not "suitable for kids";
* region: a title not licensed in the request's (or the profile's) region; titles without any
  region list are available everywhere;
* exclude: item indices the caller passes.

``removed`` counts what each filter took out (first filter to claim a title wins), for metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.serving.catalog import ItemCatalog, maturity_level

FILTERS = ("watched", "disliked_genres", "maturity", "region", "exclude")


@dataclass
class FilterRequest:
    watched: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    disliked_genres: frozenset[str] = frozenset()
    max_maturity: str | None = None
    region: str | None = None
    exclude: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))


@dataclass
class FilterResult:
    keep: np.ndarray  # (n,) bool over the candidates given
    removed: dict[str, int]


def filter_candidates(items: np.ndarray, catalog: ItemCatalog, req: FilterRequest
                      ) -> FilterResult:
    items = np.asarray(items, np.int64)
    masks = {
        "watched": np.isin(items, req.watched),
        "disliked_genres": _has_genre(items, catalog, req.disliked_genres),
        "maturity": _too_mature(items, catalog, req.max_maturity),
        "region": _unavailable(items, catalog, req.region),
        "exclude": np.isin(items, req.exclude),
    }
    keep = np.ones(len(items), bool)
    removed = {}
    for name in FILTERS:
        hit = masks[name] & keep
        removed[name] = int(hit.sum())
        keep &= ~masks[name]
    return FilterResult(keep, removed)


def _has_genre(items, catalog: ItemCatalog, genres: frozenset[str]) -> np.ndarray:
    ids = catalog.genre_ids(genres)
    if len(ids) == 0:
        return np.zeros(len(items), bool)
    return catalog.genre_matrix[np.ix_(items, ids)].any(1)


def _too_mature(items, catalog: ItemCatalog, max_maturity: str | None) -> np.ndarray:
    if max_maturity is None:
        return np.zeros(len(items), bool)
    level = catalog.maturity[items]
    return (level < 0) | (level > maturity_level(max_maturity))


def _unavailable(items, catalog: ItemCatalog, region: str | None) -> np.ndarray:
    if region is None:
        return np.zeros(len(items), bool)
    col = catalog.region_of.get(region)
    if col is None:  # licensed nowhere we know of: only region-free titles
        return ~catalog.anywhere[items]
    return ~(catalog.anywhere[items] | catalog.region_matrix[items, col])
