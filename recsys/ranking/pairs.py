"""Labelled (user, item, context) rows for the ranker, and their Parquet form.

Training rows come from a *label* slice of the training split (the sources and features are
fitted on the rest, so a source's score for a label item is an honest out-of-sample number, as it
will be at serving time). Per user, the rows are:

* positives: label events that count as engaged (``features.engaged``);
* explicit negatives: label events below the engagement bar (a title watched and disliked);
* hard negatives: items from the user's merged candidate set that are not positives;
* random negatives: catalog items the user never interacted with.

``NegativeMix.hard = -1`` takes *every* merged candidate instead, labelled, and drops the
positives the candidates missed: the rows are then exactly what the ranker sees at serving time
(a few hundred candidates per user, a few positives among them). On ml-1m that beat sampled
hard negatives by 0.01-0.02 NDCG@10 (``benchmarks/ranker.md``).

Every row of a user takes the context (surface, hour, weekday) of one of that user's label
events, so context cannot separate positives from negatives by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys import RecsysError
from recsys.ranking.activity import engaged
from recsys.ranking.features import FeatureBuilder
from recsys.ranking.source_features import SourceLists


@dataclass
class PairRows:
    users: np.ndarray  # (n,) int64
    items: np.ndarray  # (n,) int64
    labels: np.ndarray  # (n,) float32
    context: np.ndarray  # (n, 3) int64
    pair_dense: np.ndarray  # (n, P) float32

    def __len__(self) -> int:
        return len(self.users)

    def take(self, idx: np.ndarray) -> PairRows:
        return PairRows(self.users[idx], self.items[idx], self.labels[idx], self.context[idx],
                        self.pair_dense[idx])

    def to_arrow(self) -> pa.Table:
        p = self.pair_dense.shape[1]
        return pa.table({
            "user": self.users, "item": self.items, "label": self.labels,
            "context": pa.FixedSizeListArray.from_arrays(self.context.ravel(), 3),
            "pair_dense": pa.FixedSizeListArray.from_arrays(self.pair_dense.ravel(), p),
        })

    @classmethod
    def from_arrow(cls, table: pa.Table) -> PairRows:
        def fixed(name: str, dtype) -> np.ndarray:
            col = table.column(name).combine_chunks()
            return col.values.to_numpy(zero_copy_only=False).astype(dtype).reshape(
                len(col), col.type.list_size)
        return cls(table.column("user").to_numpy().astype(np.int64),
                   table.column("item").to_numpy().astype(np.int64),
                   table.column("label").to_numpy().astype(np.float32),
                   fixed("context", np.int64), fixed("pair_dense", np.float32))

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.to_arrow(), path)
        return path

    @classmethod
    def read(cls, path: Path) -> PairRows:
        return cls.from_arrow(pq.read_table(path))


@dataclass
class NegativeMix:
    hard: int = -1  # per positive, from the merged candidates; -1 = every merged candidate
    random: int = 0  # per positive, from the catalog
    explicit: bool = False  # keep disliked label events as negatives

    def __post_init__(self) -> None:
        if self.hard < -1 or self.random < 0:
            raise RecsysError(f"negatives.hard must be >= -1 and negatives.random >= 0, got "
                              f"{self.hard} and {self.random}")


def training_rows(label_events: pd.DataFrame, users: np.ndarray, lists: SourceLists,
                  builder: FeatureBuilder, seen_by_user: dict[int, np.ndarray],
                  mix: NegativeMix, seed: int = 0) -> PairRows:
    """Rows for ``users`` from their label events (see the module docstring)."""
    rng = np.random.default_rng(seed)
    p = builder.p
    ev = label_events[label_events["user_idx"].isin(users)]
    is_pos = engaged(ev, p.rating_threshold, p.watch_threshold)
    n_items = lists.n_items
    out_u, out_i, out_y, out_ts = [], [], [], []
    ts_all = ev["timestamp"].astype("float64").to_numpy()
    for user, idx in ev.groupby("user_idx").indices.items():
        items = ev["item_idx"].to_numpy()[idx]
        pos_mask = is_pos[idx]
        pos = np.unique(items[pos_mask])
        if len(pos) == 0:
            continue
        neg = [np.unique(items[~pos_mask])] if mix.explicit else []
        blocked = np.concatenate([pos, seen_by_user.get(int(user), np.empty(0, np.int64))])
        merged = lists.merged(int(user))
        cands = merged[~np.isin(merged, blocked)]
        if mix.hard < 0:
            pos = pos[np.isin(pos, merged)]  # a positive no source found is never ranked
            if len(pos) == 0:
                continue
            neg.append(cands)
        elif len(cands) and mix.hard:
            neg.append(rng.choice(cands, min(len(cands), mix.hard * len(pos)), replace=False))
        if mix.random:
            draw = rng.integers(0, n_items, mix.random * len(pos) * 2)
            draw = np.unique(draw[~np.isin(draw, blocked)])[: mix.random * len(pos)]
            neg.append(draw)
        negatives = np.setdiff1d(np.concatenate(neg), pos) if neg else np.empty(0, np.int64)
        rows_items = np.concatenate([pos, negatives])
        out_u.append(np.full(len(rows_items), user, np.int64))
        out_i.append(rows_items.astype(np.int64))
        out_y.append(np.r_[np.ones(len(pos)), np.zeros(len(negatives))].astype(np.float32))
        out_ts.append(rng.choice(ts_all[idx], len(rows_items)))
    return _rows(np.concatenate(out_u), np.concatenate(out_i), np.concatenate(out_y),
                 np.concatenate(out_ts), lists, builder)


def candidate_rows(users: np.ndarray, lists: SourceLists, builder: FeatureBuilder,
                   truth: dict[int, np.ndarray] | None = None,
                   timestamps: dict[int, float] | None = None) -> tuple[PairRows, np.ndarray]:
    """Every merged candidate of every user (the evaluation's rows), labelled by ``truth``.
    Returns the rows and ``starts`` (row offset of each user, plus the end)."""
    per_user = [lists.merged(int(u)) for u in users]
    counts = np.array([len(c) for c in per_user], np.int64)
    u = np.repeat(np.asarray(users, np.int64), counts)
    i = np.concatenate(per_user) if per_user else np.empty(0, np.int64)
    y = np.zeros(len(i), np.float32)
    if truth is not None:
        start = 0
        for user, cands, n in zip(users, per_user, counts, strict=True):
            y[start:start + n] = np.isin(cands, truth.get(int(user), ()))
            start += n
    ts = np.array([(timestamps or {}).get(int(x), np.nan) for x in users], np.float64)
    rows = _rows(u, i, y, np.repeat(ts, counts), lists, builder)
    return rows, np.r_[0, np.cumsum(counts)]


def _rows(users, items, labels, timestamps, lists: SourceLists,
          builder: FeatureBuilder) -> PairRows:
    context = builder.context_rows(np.full(len(users), "home"), timestamps)
    return PairRows(users, items, labels, context, lists.pair_dense(users, items))
