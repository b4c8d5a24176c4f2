"""Rerank: from ranked candidates to the top n a person sees, under diversity, freshness and
business rules.

Greedy, best score first, admitting a title only while every constraint can still be met:

* **genre quota**: no genre on more than ``max_genre_share`` of the n slots (a title with
  several genres counts for each; at least one title per genre is always allowed);
* **freshness mix**: at least ``fresh_share`` of the slots go to titles released within
  ``fresh_years`` of ``now_year`` when there are enough of them (once the remaining slots equal
  the fresh titles still owed, only fresh titles are admitted);
* **business rules** (``ItemRules``: ``RerankConfig.for_catalog`` puts the configured raw ids
  in item indices): ``pin`` titles take the first slots in the given order (still counted
  against the quota: a pin that would break it is skipped), ``boost`` adds to a title's score,
  ``demote`` titles go after every other title.

When the candidates cannot fill n slots within the quota (a one-genre catalog, heavy
filtering), the remaining slots are filled in score order and ``relaxed`` says so: a short
answer is worse than a less diverse one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recsys.serving.catalog import ItemCatalog
from recsys.serving.settings import NO_RULES, ItemRules, RerankConfig


@dataclass
class RerankResult:
    items: np.ndarray  # (<= n,) item indices in display order
    scores: np.ndarray  # their (boosted) scores
    relaxed: bool  # the quota could not be met with the candidates given
    rows: np.ndarray  # (<= n,) their positions in the ``items`` given


def rerank(items: np.ndarray, scores: np.ndarray, n: int, catalog: ItemCatalog,
           config: RerankConfig, rules: ItemRules = NO_RULES, now_year: float | None = None
           ) -> RerankResult:
    """The top ``n`` of ``items`` under ``config``'s quotas and ``rules`` (item indices);
    ``now_year`` None = the catalog's newest release year."""
    items = np.asarray(items, np.int64)
    scores = np.asarray(scores, np.float64).copy()
    for item, bonus in rules.boost.items():
        scores[items == item] += bonus
    demoted = np.isin(items, rules.demote)
    pinned = np.zeros(len(items), np.int64)
    if rules.pin:
        pin_rank = {item: j for j, item in enumerate(rules.pin)}
        pinned = np.array([pin_rank.get(int(i), len(pin_rank)) for i in items])
    # pins first (their order), then everything else by score, demoted titles last
    order = np.lexsort((-scores, demoted, pinned)).tolist()
    cap = max(1, math.floor(config.max_genre_share * n))
    genre_count = [0] * catalog.genre_matrix.shape[1]
    recent = _recent(items, catalog, config.fresh_years, now_year)
    fresh_needed = min(math.ceil(config.fresh_share * n), int(recent.sum()))
    recent_list, item_list, genres_of_item = recent.tolist(), items.tolist(), catalog.genres_of_item
    chosen: list[int] = []
    for pos in order:  # plain Python ints: one step per candidate, per request
        if len(chosen) == n:
            break
        genres = genres_of_item[item_list[pos]]
        if any(genre_count[g] >= cap for g in genres):
            continue
        if n - len(chosen) <= fresh_needed and not recent_list[pos]:
            continue
        chosen.append(pos)
        for g in genres:
            genre_count[g] += 1
        fresh_needed -= int(recent_list[pos] and fresh_needed > 0)
    relaxed = len(chosen) < min(n, len(items))
    if relaxed:  # fill in order, ignoring the quota
        taken = set(chosen)
        chosen += [p for p in order if p not in taken][: n - len(chosen)]
    idx = np.array(chosen, np.int64)
    return RerankResult(items[idx], scores[idx].astype(np.float32), relaxed, idx)


def _recent(items, catalog: ItemCatalog, years: int, now_year: float | None) -> np.ndarray:
    year = catalog.year[items]
    now = catalog.latest_year if now_year is None else now_year
    return ~np.isnan(year) & (year >= now - years)
