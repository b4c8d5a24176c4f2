"""Filters, rerank and explanations of the online request path on a hand-built catalog."""

import numpy as np
import pandas as pd
import pytest

from recsys import RecsysError
from recsys.candidates.types import NO_ITEM, Provenance
from recsys.serving.catalog import ItemCatalog
from recsys.serving.explain import GENERIC, reason
from recsys.serving.filters import FilterRequest, filter_candidates
from recsys.serving.rerank import rerank
from recsys.serving.settings import NO_RULES, RerankConfig


def catalog(n: int = 10, genres=None, maturity=None, regions=None, years=None) -> ItemCatalog:
    return ItemCatalog.from_items(pd.DataFrame({
        "item_id": np.arange(n),
        "title": [f"Title {i}" for i in range(n)],
        "year": years if years is not None else [2000] * n,
        "genres": genres if genres is not None else [["Drama"]] * n,
        "maturity_rating": maturity if maturity is not None else ["PG"] * n,
        "regions": regions if regions is not None else [[] for _ in range(n)],
    }))


# ---- filters ------------------------------------------------------------------------------
def test_each_filter_removes_what_it_names_and_counts_it():
    cat = catalog(8, genres=[["Drama"], ["Horror"], ["Horror", "Comedy"], ["Comedy"],
                             ["Drama"], ["Drama"], ["Drama"], ["Drama"]],
                  maturity=["G", "PG", "PG", "G", "R", None, "PG-13", "G"],
                  regions=[[], [], [], [], [], [], ["US"], ["FR"]])
    items = np.arange(8)
    req = FilterRequest(watched=np.array([0]), disliked_genres=frozenset({"Horror", "Western"}),
                        max_maturity="PG-13", region="FR", exclude=np.array([3]))
    res = filter_candidates(items, cat, req)
    # 0 watched; 1, 2 horror; 4 rated R, 5 unrated; 6 US-only; 3 excluded; 7 is the FR title
    assert items[res.keep].tolist() == [7]
    assert res.removed == {"watched": 1, "disliked_genres": 2, "maturity": 2, "region": 1,
                           "exclude": 1}
    # no constraints: everything stays, nothing counted
    free = filter_candidates(items, cat, FilterRequest())
    assert free.keep.all() and sum(free.removed.values()) == 0


def test_unknown_region_keeps_only_region_free_titles_and_bad_maturity_is_refused():
    cat = catalog(3, regions=[[], ["US"], ["FR"]])
    res = filter_candidates(np.arange(3), cat, FilterRequest(region="JP"))
    assert res.keep.tolist() == [True, False, False]
    with pytest.raises(RecsysError, match="unknown maturity rating 'XXX'"):
        filter_candidates(np.arange(3), cat, FilterRequest(max_maturity="XXX"))


def test_extended_catalog_appends_rows_and_merges_vocabularies():
    cat = catalog(3, genres=[["Drama"], ["Horror"], ["Drama"]],
                  regions=[[], ["US"], ["FR"]], years=[1990, 2000, 2010])
    more = pd.DataFrame({"item_id": [90, 91], "title": ["New A", "New B"], "year": [2024, None],
                         "genres": [["Anime", "Drama"], []], "maturity_rating": ["R", None],
                         "regions": [["JP"], []]})
    ext = cat.extend(more)
    assert cat.n_items == 3 and ext.n_items == 5  # the old catalog is untouched
    assert ext.titles[3:] == ["New A", "New B"] and ext.genres == ["Anime", "Drama", "Horror"]
    assert ext.item_genres(0) == ["Drama"] and ext.item_genres(1) == ["Horror"]
    assert ext.item_genres(3) == ["Anime", "Drama"] and ext.item_genres(4) == []
    assert ext.maturity[3:].tolist() == [3, -1] and ext.anywhere.tolist() == [
        True, False, False, False, True]
    assert ext.region_matrix[3, ext.region_of["JP"]] and ext.region_matrix[1, ext.region_of["US"]]
    assert ext.latest_year == 2024.0 and np.isnan(ext.year[4])
    res = filter_candidates(np.arange(5), ext, FilterRequest(disliked_genres=frozenset({"Anime"}),
                                                            region="FR"))
    assert res.keep.tolist() == [True, False, True, False, True]
    with pytest.raises(RecsysError, match="unknown maturity rating"):
        cat.extend(more.assign(maturity_rating=["XXX", None]))


# ---- rerank -------------------------------------------------------------------------------
def test_genre_quota_holds_in_the_top_n():
    genres = [["Drama"]] * 10 + [["Comedy"]] * 10 + [["Action"]] * 10 + [["Horror"]] * 10 \
        + [["Sci-Fi"]] * 10
    cat = catalog(50, genres=genres)
    scores = np.r_[np.linspace(1.0, 0.9, 10), np.linspace(0.5, 0.4, 40)]  # dramas on top
    res = rerank(np.arange(50), scores, 20, cat,
                 RerankConfig(max_genre_share=0.2, fresh_share=0.0))
    assert len(res.items) == 20 and not res.relaxed
    per_genre = cat.genre_matrix[res.items].sum(0)
    assert per_genre.max() <= 4  # 20% of 20
    assert res.items[:4].tolist() == [0, 1, 2, 3]  # the best dramas still lead


def test_quota_is_relaxed_rather_than_returning_fewer_titles():
    cat = catalog(30)  # one genre only
    res = rerank(np.arange(30), np.linspace(1, 0, 30), 10, cat, RerankConfig(fresh_share=0.0))
    assert res.relaxed and res.items.tolist() == list(range(10))


def test_freshness_share_and_business_rules():
    years = [2000] * 20 + [2018] * 5
    genres = [[f"G{i % 10}"] for i in range(25)]
    cat = catalog(25, genres=genres, years=years)
    scores = np.linspace(1.0, 0.0, 25)  # the recent titles score lowest
    config = RerankConfig(max_genre_share=0.3, fresh_share=0.2, fresh_years=2,
                          pin=[24, 10], boost={15: 10.0}, demote=[0])
    rules = config.for_catalog({i: i for i in range(25)})  # raw id i = item index i here
    res = rerank(np.arange(25), scores, 10, cat, config, rules, now_year=2018)
    top = res.items.tolist()
    assert top[:3] == [24, 10, 15]  # pins in order, then the boosted title
    assert sum(y >= 2016 for y in cat.year[res.items]) >= 2  # 20% of 10 recent
    assert 0 not in top  # demoted below every other title
    assert cat.genre_matrix[res.items].sum(0).max() <= 3


def test_business_rules_name_raw_ids_and_map_to_a_catalogs_indices():
    config = RerankConfig(pin=[318, 999], boost={50: 2.0, 7: 1.0}, demote=[296])
    rules = config.for_catalog({318: 0, 50: 3, 296: 9})  # raw id -> item index
    assert rules.pin == [0] and rules.boost == {3: 2.0} and rules.demote == [9]
    assert RerankConfig().for_catalog({1: 0}) == NO_RULES
    # an id a catalog gains later (a title added while serving) maps once it is there
    assert config.for_catalog({318: 0, 999: 4}).pin == [0, 4]


# ---- explanations -------------------------------------------------------------------------
TITLES = ["Toy Story", "Heat", "Alien"]


def test_the_most_specific_reason_wins():
    because = [Provenance("trending", 1.0, 0), Provenance("cf", 0.9, 5, because=1)]
    assert reason(because, TITLES) == "Because you watched Heat"
    assert reason([Provenance("trending", 1.0, 3)], TITLES) == "Trending now"
    assert reason([Provenance("cf_all", 1.0, 3), Provenance("trending", 1.0, 9)],
                  TITLES) == "Trending now"
    assert reason([Provenance("cf", 1.0, 3)], TITLES) == "Popular with viewers like you"
    search = [Provenance("content", 0.8, 0, because=2)]
    assert reason(search, TITLES, surface="search", query="space horror") \
        == "Matches your search 'space horror'"
    assert reason(search, TITLES, surface="home") == "Because you watched Alien"
    assert reason([Provenance("mystery", 1.0, 0, because=NO_ITEM)], TITLES) == GENERIC
    assert reason([], TITLES) == GENERIC
