"""ContentSource: retrieval by what titles are about, not by who watched them.

Each title's text (``text.item_text``) is embedded once (``TextEncoder``, cached by content) into
a unit vector; a FAISS index (``VectorIndex``) over them answers four kinds of request:

* home: the user's profile (``profile.ProfileWeights``: rating- and recency-weighted mean of
  liked titles) -> nearest unseen titles, each credited to the liked title most similar to it
  (similarity times that title's weight);
* post-play (``Context.seed_item``): the seed's nearest titles, credited to the seed;
* search (``Context.query``): the query's embedding -> nearest titles, credited to no one;
* new titles (``add_items``): embedded and added to the index, retrievable at once. This is the
  cold-start path no collaborative source has.

As a ``Scorer`` (offline evaluation) it scores every item by cosine to the profile built from
the history matrix, with rating and recency weights taken from the ``events`` given to ``fit``.
Items without any text get the zero vector and are left out of the index.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import RecsysError
from recsys.candidates.content.encoder import DEFAULT_CACHE_DIR, TextEncoder
from recsys.candidates.content.profile import ProfileWeights
from recsys.candidates.content.text import MAX_TAGS, item_texts
from recsys.candidates.types import NO_ITEM, Context, SourceResult, UserHistory
from recsys.index.faiss_index import VectorIndex


class ContentSource:
    name = "content"
    # profiles come from the training matrix's positives (``score``); serving gives
    # ``candidates`` the same events (``CandidateGenerator.view``)
    interactions = "positives"

    def __init__(self, factory: str = "Flat", metric: str = "cosine", nprobe: int = 16,
                 ef_search: int = 128, half_life_days: float | None = 365.0,
                 rating_center: float = 2.5, implicit_weight: float = 1.0,
                 max_tags: int = MAX_TAGS, batch_size: int = 64,
                 cache_dir: str | None = DEFAULT_CACHE_DIR, device: str = "auto",
                 progress: bool = True, encoder: TextEncoder | None = None) -> None:
        self.factory, self.metric = factory, metric  # FAISS index type and metric
        self.nprobe, self.ef_search = nprobe, ef_search  # IVF / HNSW recall knobs
        self.profile = ProfileWeights(rating_center, implicit_weight, half_life_days)
        self.max_tags = max_tags
        self.batch_size, self.cache_dir = batch_size, cache_dir
        self.device, self.progress = device, progress
        self._encoder = encoder
        self.embeddings: np.ndarray | None = None  # (n_items, d) unit rows, zero = no text
        self.index: VectorIndex | None = None
        # (n_users, n_items) summed event weights of known users, and which entries had events
        self.history_weights: sp.csr_matrix | None = None
        self.history_mask: sp.csr_matrix | None = None

    @property
    def encoder(self) -> TextEncoder:
        """Built on first use, so a loaded source without search or new titles needs no model."""
        if self._encoder is None:
            self._encoder = TextEncoder(device=self.device, batch_size=self.batch_size,
                                        cache_dir=self.cache_dir, progress=self.progress)
        return self._encoder

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, train: sp.csr_matrix, *, items: pd.DataFrame | None = None,
            events: pd.DataFrame | None = None, **_: object) -> ContentSource:
        """Embed the catalog (row i = item i) and index it; ``events`` give profile weights."""
        if items is None:
            raise RecsysError("the content source needs the catalog: fit(train, items=...)")
        if len(items) != train.shape[1]:
            raise RecsysError(f"catalog has {len(items)} rows but the matrix {train.shape[1]} "
                              "items: pass Dataset.items_by_index()")
        vectors = self.encoder.encode(item_texts(items, self.max_tags), desc="embed catalog")
        return self.fit_embeddings(vectors, events=events, n_users=train.shape[0])

    def fit_embeddings(self, embeddings: np.ndarray, events: pd.DataFrame | None = None,
                       n_users: int | None = None) -> ContentSource:
        """Index precomputed item vectors (n_items, d): the model-free half of ``fit``."""
        self.embeddings = _unit(embeddings)
        self._build_index()
        self.history_weights = self.history_mask = None
        if events is not None and len(events):
            n_users = n_users or int(events["user_idx"].max()) + 1
            shape = (n_users, len(self.embeddings))
            rows, cols = events["user_idx"].to_numpy(), events["item_idx"].to_numpy()
            w = self.profile.for_events(events).astype(np.float32)
            self.history_weights = sp.csr_matrix((w, (rows, cols)), shape=shape)
            self.history_weights.sum_duplicates()
            self.history_mask = sp.csr_matrix((np.ones_like(w), (rows, cols)), shape=shape)
            self.history_mask.sum_duplicates()
            self.history_mask.data[:] = 1.0
        return self

    def _build_index(self) -> None:
        has_text = np.flatnonzero(np.abs(self.embeddings).sum(axis=1) > 0)
        self.index = VectorIndex(self.factory, self.metric, self.nprobe, self.ef_search)
        self.index.build(self.embeddings[has_text], ids=has_text)

    def add_items(self, items: pd.DataFrame, item_indices: np.ndarray) -> np.ndarray:
        """Embed new (or re-described) titles and make them retrievable; returns (n, d) vectors.

        New indices are appended to the index; changing an indexed title rebuilds the index
        (FAISS indexes here cannot replace a vector in place).
        """
        item_indices = np.asarray(item_indices, np.int64)
        if len(items) != len(item_indices):
            raise RecsysError(f"{len(items)} rows for {len(item_indices)} item indices")
        vectors = self.encoder.encode(item_texts(items, self.max_tags), desc="embed new titles")
        emb = self._emb()
        old_n = len(emb)
        if len(item_indices) and item_indices.max() >= old_n:
            grown = np.zeros((item_indices.max() + 1, emb.shape[1]), np.float32)
            grown[:old_n] = emb
            self.embeddings = emb = grown
        emb[item_indices] = vectors
        if (item_indices < old_n).any():
            self._build_index()
        else:
            has_text = np.abs(vectors).sum(axis=1) > 0
            self.index.add(vectors[has_text], item_indices[has_text])
        return vectors

    # -- offline scoring (Scorer) -----------------------------------------------------------
    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """(B, n_items) cosine of each user's weighted profile to every item."""
        emb = self._emb()
        rows = (history[users] > 0).astype(np.float32).tocsr()  # (B, I) binary
        if rows.shape[1] < len(emb):
            rows.resize(rows.shape[0], len(emb))
        weights = rows
        if self.history_weights is not None:
            known = users < self.history_weights.shape[0]
            mask = _rows_or_empty(self.history_mask, users, known, rows.shape)
            w = _rows_or_empty(self.history_weights, users, known, rows.shape)
            # entries with events take their event weight, the rest (no event seen) weigh 1
            weights = rows - rows.multiply(mask) + rows.multiply(w)
        profiles = _unit(np.asarray(weights @ emb))  # (B, d)
        return profiles @ emb.T  # (B, I)

    # -- retrieval (CandidateSource) --------------------------------------------------------
    def candidates(self, user: UserHistory, context: Context, k: int) -> SourceResult:
        seen = np.unique(np.asarray(user.items, np.int64))
        if context.query:
            return self.search(context.query, k, exclude=seen)
        if context.seed_item is not None:
            return self.similar_items(int(context.seed_item), k, exclude=seen)
        emb = self._emb()
        liked, weights = self.profile.for_history(user)  # (H,), (H,) > 0
        known = liked < len(emb)
        liked, weights = liked[known], weights[known]
        profile = weights @ emb[liked]  # (d,) weighted sum; the index normalises it
        if len(liked) == 0 or not np.any(profile):
            return SourceResult.empty(self.name)
        items, scores = self._nearest(profile, k, seen)
        because = (self._credit(liked, weights, items) if context.explain
                   else np.full(len(items), NO_ITEM, np.int64))
        return SourceResult(self.name, items, scores, because)

    def credit(self, user: UserHistory, items: np.ndarray) -> np.ndarray:
        """(n,) the liked title credited for each of ``items`` (the home path's credit)."""
        liked, weights = self.profile.for_history(user)
        known = liked < len(self._emb())
        return self._credit(liked[known], weights[known], np.asarray(items, np.int64))

    def _credit(self, liked: np.ndarray, weights: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The liked title contributing most to each candidate's score: weight x cosine."""
        if len(items) == 0 or len(liked) == 0:
            return np.full(len(items), NO_ITEM, np.int64)
        emb = self._emb()
        contribution = (emb[items] @ emb[liked].T) * weights  # (n, H)
        return liked[np.argmax(contribution, axis=1)].astype(np.int64)

    def similar_items(self, item_idx: int, k: int,
                      exclude: np.ndarray | None = None) -> SourceResult:
        """"More like this": the ``k`` titles closest to ``item_idx``, each credited to it."""
        emb = self._emb()
        if not 0 <= item_idx < len(emb) or not np.any(emb[item_idx]):
            return SourceResult.empty(self.name)
        skip = np.append(np.asarray(exclude if exclude is not None else [], np.int64), item_idx)
        items, scores = self._nearest(emb[item_idx], k, skip)
        return SourceResult(self.name, items, scores, np.full(len(items), item_idx, np.int64))

    def search(self, query: str, k: int, exclude: np.ndarray | None = None) -> SourceResult:
        """Free-text search: titles closest to the query's embedding (``because`` = none)."""
        vector = self.encoder.encode([query], desc="embed query")[0]
        if not np.any(vector):
            return SourceResult.empty(self.name)
        skip = np.asarray(exclude if exclude is not None else [], np.int64)
        items, scores = self._nearest(vector, k, skip)
        return SourceResult(self.name, items, scores, np.full(len(items), NO_ITEM, np.int64))

    def _nearest(self, vector: np.ndarray, k: int,
                 exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (items (n,) int64, scores (n,) float32) for one query, skipping ``exclude``;
        over-fetches by ``len(exclude)`` so the answer is still ``k`` long when it can be."""
        if self.index is None:
            raise RuntimeError("ContentSource used before fit")
        scores, ids = self.index.search(vector[None, :], k + len(exclude))
        keep = (ids[0] >= 0) & ~np.isin(ids[0], exclude)
        return ids[0][keep][:k].astype(np.int64), scores[0][keep][:k].astype(np.float32)

    def _emb(self) -> np.ndarray:
        if self.embeddings is None:
            raise RuntimeError("ContentSource used before fit")
        return self.embeddings

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "factory": self.factory, "metric": self.metric,
                "nprobe": self.nprobe, "ef_search": self.ef_search,
                "half_life_days": self.profile.half_life_days,
                "rating_center": self.profile.rating_center,
                "implicit_weight": self.profile.implicit_weight, "max_tags": self.max_tags,
                "batch_size": self.batch_size,
                "model_id": None if self._encoder is None else self._encoder.model_id}
        (directory / "meta.json").write_text(json.dumps(meta, indent=2))
        np.save(directory / "embeddings.npy", self._emb())
        self.index.save(directory / "index")
        if self.history_weights is not None:
            sp.save_npz(directory / "history_weights.npz", self.history_weights)
            sp.save_npz(directory / "history_mask.npz", self.history_mask)

    @classmethod
    def load(cls, directory: Path, device: str = "auto",
             cache_dir: str | None = DEFAULT_CACHE_DIR, progress: bool = True,
             encoder: TextEncoder | None = None) -> ContentSource:
        directory = Path(directory)
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("model") != cls.name:
            raise RecsysError(f"{directory} holds a '{meta.get('model')}' model, not content")
        source = cls(meta["factory"], meta["metric"], meta["nprobe"], meta["ef_search"],
                     meta["half_life_days"], meta["rating_center"], meta["implicit_weight"],
                     meta["max_tags"], meta["batch_size"], cache_dir, device, progress, encoder)
        source.embeddings = np.load(directory / "embeddings.npy")
        source.index = VectorIndex.load(directory / "index")
        if (directory / "history_weights.npz").exists():
            source.history_weights = sp.load_npz(directory / "history_weights.npz").tocsr()
            source.history_mask = sp.load_npz(directory / "history_mask.npz").tocsr()
        return source


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); zero rows stay zero."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _rows_or_empty(matrix: sp.csr_matrix, users: np.ndarray, known: np.ndarray,
                   shape: tuple[int, int]) -> sp.csr_matrix:
    """``matrix`` rows for ``users`` (empty rows for users it has not seen), ``shape`` wide."""
    rows = matrix[np.where(known, users, 0)].multiply(known[:, None].astype(np.float32)).tocsr()
    if rows.shape[1] < shape[1]:
        rows.resize(shape[0], shape[1])
    return rows
