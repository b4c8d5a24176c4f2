"""Ranker features, computed from the training split alone.

``FeatureBuilder.fit`` reads only the events it is given (the training split) plus the catalog
and the user table (static metadata), and produces per-user and per-item feature rows:

* user side: user id, the last ``history_length`` titles (recency-weighted, most recent first),
  liked genres (share of the user's positive events), demographics where the dataset has them,
  activity counts (dense);
* item side: item id, genres, tags, release-year bucket, popularity counts (dense);
* context: surface, hour-of-day and day-of-week buckets.

A training or serving row is then a gather: ``user_rows[u] ++ item_rows[i] ++ context``. The
same ``user_rows_from_events`` code builds the row of a brand-new user from a handful of events
at serving time, so offline and online features cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.candidates.types import SURFACES
from recsys.data.schema import list_value
from recsys.ranking.activity import (
    ITEM_DENSE,
    USER_DENSE,
    engaged,
    item_stats,
    moments,
    user_stats,
)
from recsys.ranking.layout import PAD, FeatureLayout, SparseFeature, Table

DEMOGRAPHICS = ("gender", "age", "occupation")
CONTEXT = ("surface", "hour", "dow")


@dataclass
class FeatureParams:
    history_length: int = 50  # titles in the user's history bag
    history_half_life: float = 10.0  # in events: a title's weight halves every N events back
    max_genres: int = 32  # slots for genre bags (MovieLens has 18-20 genres)
    max_tags: int = 8  # tag slots per title
    tag_vocab: int = 2000  # most frequent tags kept
    year_bucket: int = 5  # years per release-year bucket
    id_dim: int = 64  # user / item id tables
    attr_dim: int = 16  # genre, tag, year, demographic and context tables
    rating_threshold: float = 4.0
    watch_threshold: float = 0.7
    # A user-id embedding memorises the label slice's titles, which are history by serving
    # time: on ml-1m with it, test NDCG@10 fell from 0.38 to 0.27 in one epoch while the
    # validation users (whose ids are never trained) looked fine. Off, a user is known by their
    # history, genres, demographics and activity, all of which carry over to serving.
    user_id: bool = False


@dataclass
class Vocab:
    """String/int values -> contiguous ids; unknown values map to PAD (an empty slot)."""

    values: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = {v: i for i, v in enumerate(self.values)}

    def __len__(self) -> int:
        return max(1, len(self.values))

    def ids(self, values) -> np.ndarray:
        return np.array([self._ids.get(v, PAD) for v in values], np.int64)


@dataclass
class FeatureTables:
    """Per-user and per-item rows (numpy), ready to be gathered into batches."""

    user_ids: np.ndarray  # (n_users, Su) int64, PAD = empty
    user_weights: np.ndarray  # (n_users, Su) float32
    user_dense: np.ndarray  # (n_users, Du) float32
    item_ids: np.ndarray  # (n_items, Si)
    item_weights: np.ndarray
    item_dense: np.ndarray  # (n_items, Di)


class FeatureBuilder:
    """Fits vocabularies and normalisers on training events; builds feature rows."""

    def __init__(self, params: FeatureParams | None = None) -> None:
        self.p = params or FeatureParams()

    # ---- fitting ---------------------------------------------------------------------------
    def fit(self, events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame | None,
            n_users: int, n_items: int) -> FeatureBuilder:
        """``events``: training interactions (``user_idx``/``item_idx``); ``items``: catalog with
        row i = item index i; ``users``: the user table with row u = user index u (or None)."""
        p = self.p
        self.n_users, self.n_items = n_users, n_items
        genre_lists = items["genres"].map(list_value)
        self.genres = Vocab(sorted({g for gs in genre_lists for g in gs})[: p.max_genres])
        tag_counts = pd.Series([t for ts in items["tags"].map(list_value) for t in ts])
        self.tags = Vocab(tag_counts.value_counts().index[: p.tag_vocab].tolist())
        years = pd.to_numeric(items["year"], errors="coerce").dropna()
        self.year_min = int(years.min()) if len(years) else 0
        n_year = int((years.max() - self.year_min) // p.year_bucket) + 1 if len(years) else 1
        self.n_year_buckets = n_year
        self.demographics: dict[str, Vocab] = {}
        if users is not None:
            for col in DEMOGRAPHICS:
                if col in users.columns:
                    self.demographics[col] = Vocab(sorted(users[col].dropna().unique().tolist()))
        self._items = items
        self._users = users
        self.item_dense_mean, self.item_dense_std = moments(item_stats(events, n_items, p))
        self.user_dense_mean, self.user_dense_std = moments(user_stats(events, p))
        return self

    def layout(self, pair_dense: int) -> FeatureLayout:
        p = self.p
        user = [SparseFeature("user_id", "user", 1, "user")] if p.user_id else []
        user += [SparseFeature("user_history", "item", p.history_length, "user"),
                SparseFeature("user_genres", "genre", len(self.genres), "user")]
        user += [SparseFeature(f"user_{c}", c, 1, "user") for c in self.demographics]
        item = [SparseFeature("item_id", "item", 1, "item"),
                SparseFeature("item_genres", "genre", len(self.genres), "item"),
                SparseFeature("item_tags", "tag", p.max_tags, "item"),
                SparseFeature("item_year", "year", 1, "item")]
        context = [SparseFeature(c, c, 1, "context") for c in CONTEXT]
        tables = [Table("user", self.n_users, p.id_dim)] if p.user_id else []
        tables += [Table("item", self.n_items, p.id_dim),
                  Table("genre", len(self.genres), p.attr_dim),
                  Table("tag", len(self.tags), p.attr_dim),
                  Table("year", self.n_year_buckets, p.attr_dim)]
        tables += [Table(c, len(v), p.attr_dim) for c, v in self.demographics.items()]
        tables += [Table("surface", len(SURFACES), p.attr_dim), Table("hour", 25, p.attr_dim),
                   Table("dow", 8, p.attr_dim)]
        return FeatureLayout(tuple(user + item + context), tuple(tables),
                             user_dense=len(USER_DENSE), item_dense=len(ITEM_DENSE),
                             pair_dense=pair_dense)

    # ---- rows ------------------------------------------------------------------------------
    def tables(self, events: pd.DataFrame) -> FeatureTables:
        """Rows for every known user (from ``events``, the training split) and every item."""
        user_ids, user_w, user_dense = self.user_rows_from_events(
            events, np.arange(self.n_users))
        item_ids, item_w = self._item_rows()
        counts = item_stats(events, self.n_items, self.p)
        item_dense = (counts - self.item_dense_mean) / self.item_dense_std
        return FeatureTables(user_ids, user_w, user_dense, item_ids, item_w,
                             item_dense.astype(np.float32))

    def user_rows_from_events(self, events: pd.DataFrame, users: np.ndarray,
                              known: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows for ``users`` (indices into ``events.user_idx``); ``known=False`` leaves the id
        slot and demographics empty (a user the model never saw, e.g. at serving time)."""
        p = self.p
        users = np.asarray(users, np.int64)
        pos_of = {int(u): i for i, u in enumerate(users)}
        n = len(users)
        g = len(self.genres)
        o = int(p.user_id)  # the id slot, first when present
        width = o + p.history_length + g + len(self.demographics)
        ids = np.full((n, width), PAD, np.int64)
        weights = np.zeros((n, width), np.float32)
        if known and p.user_id:
            ids[:, 0] = np.where(users < self.n_users, users, PAD)
            weights[:, 0] = 1.0
        ev = events[events["user_idx"].isin(users)]
        rows = ev["user_idx"].map(pos_of).to_numpy(np.int64)
        # history: most recent first; unknown timestamps count as oldest, file order breaks ties
        ts = ev["timestamp"].astype("float64").fillna(-np.inf).to_numpy()
        order = np.lexsort((np.arange(len(ev)), ts, rows))
        rows_sorted = rows[order]
        items_sorted = ev["item_idx"].to_numpy(np.int64)[order]
        counts = np.bincount(rows_sorted, minlength=n)
        ends = np.cumsum(counts)
        back = ends[rows_sorted] - 1 - np.arange(len(rows_sorted))  # 0 = most recent
        keep = back < p.history_length
        hist_w = np.power(0.5, back[keep] / p.history_half_life).astype(np.float32)
        ids[rows_sorted[keep], o + back[keep]] = items_sorted[keep]
        weights[rows_sorted[keep], o + back[keep]] = hist_w
        hist = weights[:, o:o + p.history_length]
        hist /= np.maximum(hist.sum(1, keepdims=True), 1e-12)
        # liked genres: share of the user's engaged events per genre
        liked = ev[engaged(ev, p.rating_threshold, p.watch_threshold)]
        if len(liked) and g:
            genre_ids = self._item_genre_matrix()  # (n_items, g) 0/1
            per_user = np.zeros((n, g), np.float32)
            np.add.at(per_user, liked["user_idx"].map(pos_of).to_numpy(np.int64),
                      genre_ids[liked["item_idx"].to_numpy(np.int64)])
            share = per_user / np.maximum(per_user.sum(1, keepdims=True), 1e-12)
            start = o + p.history_length
            has = share > 0
            ids[:, start:start + g] = np.where(has, np.arange(g)[None, :], PAD)
            weights[:, start:start + g] = share
        if known and self._users is not None:
            start = o + p.history_length + g
            for j, (col, vocab) in enumerate(self.demographics.items()):
                valid = users < len(self._users)
                col_ids = np.full(n, PAD, np.int64)
                col_ids[valid] = vocab.ids(self._users[col].to_numpy()[users[valid]])
                ids[:, start + j] = col_ids
                weights[:, start + j] = (col_ids != PAD).astype(np.float32)
        stats = user_stats(ev.assign(user_idx=rows), self.p, n)
        dense = ((stats - self.user_dense_mean) / self.user_dense_std).astype(np.float32)
        return ids, weights, dense

    def context_rows(self, surfaces: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """(n, 3) ids: surface, hour+1, weekday+1 (0 = time unknown)."""
        surface_ids = np.array([SURFACES.index(s) for s in surfaces], np.int64)
        ts = np.asarray(timestamps, np.float64)
        known = ~np.isnan(ts)
        hour = np.zeros(len(ts), np.int64)
        dow = np.zeros(len(ts), np.int64)
        hour[known] = (ts[known] // 3600 % 24).astype(np.int64) + 1
        dow[known] = ((ts[known] // 86400 + 3) % 7).astype(np.int64) + 1  # 1970-01-01: Thu
        return np.stack([surface_ids, hour, dow], axis=1)

    def item_rows(self, items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, weights, dense) rows of titles added to the catalog after fitting (catalog
        columns: genres, tags, year). The model has no embedding for their ids, so the id slot is
        PAD, as for any value outside a fitted vocabulary; genres, tags and year go through the
        fitted vocabularies; the dense columns are those of a title with no training event."""
        ids, weights = self._attribute_rows(items, self._genre_rows(items),
                                            np.full(len(items), PAD, np.int64))
        stats = np.zeros((len(items), len(ITEM_DENSE)))
        dense = (stats - self.item_dense_mean) / self.item_dense_std
        return ids, weights, dense.astype(np.float32)

    def _item_genre_matrix(self) -> np.ndarray:
        if not hasattr(self, "_genre_matrix"):
            self._genre_matrix = self._genre_rows(self._items)
        return self._genre_matrix

    def _genre_rows(self, items: pd.DataFrame) -> np.ndarray:
        """(len(items), n_genres) 0/1 membership in the fitted genre vocabulary."""
        m = np.zeros((len(items), len(self.genres)), np.float32)
        for i, gs in enumerate(items["genres"].map(list_value)):
            gid = self.genres.ids(gs)
            m[i, gid[gid != PAD]] = 1.0
        return m

    def _item_rows(self) -> tuple[np.ndarray, np.ndarray]:
        return self._attribute_rows(self._items, self._item_genre_matrix(),
                                    np.arange(self.n_items))

    def _attribute_rows(self, items: pd.DataFrame, gm: np.ndarray, item_ids: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Sparse item rows: id (PAD = no embedding, weight 0), genre bag, tags, year bucket."""
        p = self.p
        n = len(items)
        g = len(self.genres)
        width = 1 + g + p.max_tags + 1
        ids = np.full((n, width), PAD, np.int64)
        weights = np.zeros((n, width), np.float32)
        ids[:, 0] = item_ids
        weights[:, 0] = (item_ids != PAD).astype(np.float32)
        ids[:, 1:1 + g] = np.where(gm > 0, np.arange(g)[None, :], PAD)
        weights[:, 1:1 + g] = gm / np.maximum(gm.sum(1, keepdims=True), 1.0)
        for i, tags in enumerate(items["tags"].map(list_value)):
            tid = self.tags.ids(tags)
            tid = tid[tid != PAD][: p.max_tags]
            if len(tid):
                ids[i, 1 + g:1 + g + len(tid)] = tid
                weights[i, 1 + g:1 + g + len(tid)] = 1.0 / len(tid)
        years = pd.to_numeric(items["year"], errors="coerce").to_numpy(np.float64)
        known = ~np.isnan(years)
        bucket = np.full(n, PAD, np.int64)
        bucket[known] = np.clip((years[known] - self.year_min) // p.year_bucket, 0,
                                self.n_year_buckets - 1).astype(np.int64)
        ids[:, -1] = bucket
        weights[:, -1] = known.astype(np.float32)
        return ids, weights
