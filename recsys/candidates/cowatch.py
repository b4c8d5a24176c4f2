"""Co-watch: "people who watched X also watched", item to item (the post-play surface).

Two ways to learn the item-item weights W (n_items x n_items), chosen by ``method``:

* ``ease``: EASE's B matrix (closed form, dense): the best top-N accuracy on MovieLens, but
  O(n_items^2) memory, so for catalogs up to a few tens of thousands of titles.
* ``knn``: cosine similarity of item columns, shrunk by co-count and pruned to the top
  ``neighbours`` per item (sparse): scales to large catalogs.

A user's score is the sum of the rows of W for the items they watched; the post-play surface
(``Context.seed_item``) uses the seed's row alone. Either way, the history item contributing most
to a candidate is its ``because``. ``benchmarks/candidates.md`` compares the two.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys import RecsysError
from recsys.candidates.base import check_interactions
from recsys.candidates.ease import EASE
from recsys.candidates.history import credit, result
from recsys.candidates.types import NO_ITEM, Context, SourceResult, UserHistory


class CoWatchMethod(StrEnum):
    ease = "ease"  # dense item-item solve: best on MovieLens-sized catalogs
    knn = "knn"  # sparse neighbours: for large catalogs


class CoWatch:
    name = "cowatch"

    def __init__(self, method: str = "ease", l2: float = 500.0, neighbours: int = 200,
                 shrink: float = 10.0, interactions: str = "positives") -> None:
        if method not in set(CoWatchMethod):
            raise RecsysError(f"unknown co-watch method '{method}'; choose one of "
                              f"{', '.join(CoWatchMethod)}")
        self.method = method
        self.l2 = l2  # ease only
        self.neighbours = neighbours  # knn only: kept neighbours per item
        self.shrink = shrink  # knn only: damps similarities built on few co-watches
        self.interactions = check_interactions(interactions)  # what fit() is given (base.py)
        self.weights: np.ndarray | sp.csr_matrix | None = None  # (I, I), row j -> item i

    def fit(self, train: sp.csr_matrix, **_: object) -> CoWatch:
        if self.method == "ease":
            # C order: rows are what scoring reads (EASE's solve hands back a Fortran-ordered
            # matrix, whose every row read is strided: hundreds of ms per request)
            self.weights = np.ascontiguousarray(
                EASE(l2=self.l2, device="cpu").fit(train).weights.numpy())
        else:
            self.weights = item_knn(train, self.neighbours, self.shrink)
        return self

    def _w(self) -> np.ndarray | sp.csr_matrix:
        if self.weights is None:
            raise RuntimeError("CoWatch used before fit")
        return self.weights

    def _rows(self, items: np.ndarray) -> np.ndarray:
        """(len(items), I) dense rows of W."""
        w = self._w()
        rows = w[items]
        return rows.toarray() if sp.issparse(rows) else np.asarray(rows)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        scores = history[users] @ self._w()
        return np.asarray(scores.toarray() if sp.issparse(scores) else scores, np.float32)

    def similar_items(self, item: int, k: int) -> SourceResult:
        """Post-play: titles co-watched with ``item``, each credited to it. A title W has no
        row for (added to the catalog after fitting) has no co-watches yet: nothing, no error."""
        if not 0 <= item < self._w().shape[0]:
            return SourceResult.empty(self.name)
        res = result(self.name, self._rows(np.array([item]))[0], np.array([item]), k)
        res.because[:] = item
        return res

    def candidates(self, user: UserHistory, context: Context, k: int) -> SourceResult:
        if context.seed_item is not None:
            res = self.similar_items(int(context.seed_item), k + len(user.items))
            keep = ~np.isin(res.items, user.items)
            return type(res)(res.source, res.items[keep][:k], res.scores[keep][:k],
                             res.because[keep][:k])
        history = np.unique(user.items)
        if len(history) == 0:
            return SourceResult.empty(self.name)
        res = result(self.name, self._history_scores(history), history, k)
        if context.explain:
            res.because = self.credit(user, res.items)
        return res

    def credit(self, user: UserHistory, items: np.ndarray) -> np.ndarray:
        """(n,) the history item whose row of W adds most to each item; NO_ITEM where the
        item's score (the column sum over the history) is not positive."""
        history = np.unique(np.asarray(user.items, np.int64))
        items = np.asarray(items, np.int64)
        if len(history) == 0:
            return np.full(len(items), NO_ITEM, np.int64)
        block = self._block(history, items)
        because = credit(block, history, items)
        because[block.sum(axis=0) <= 0] = NO_ITEM
        return because

    def _history_scores(self, history: np.ndarray) -> np.ndarray:
        """(I,) sum of W's rows for ``history``. A sparse indicator times W: no (H, I) copy
        of the rows (the request path's hot spot, for long histories)."""
        w = self._w()
        x = sp.csr_matrix((np.ones(len(history), np.float32), history, [0, len(history)]),
                          shape=(1, w.shape[0]))
        out = x @ w
        return np.asarray(out.toarray() if sp.issparse(out) else out, np.float32).ravel()

    def _block(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(H, len(items)) W[history, items]: only the columns the credit needs."""
        block = self._w()[np.ix_(history, items)]
        return block.toarray() if sp.issparse(block) else np.asarray(block)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "method": self.method, "l2": self.l2,
                "neighbours": self.neighbours, "shrink": self.shrink,
                "interactions": self.interactions}
        (directory / "meta.json").write_text(json.dumps(meta, indent=2))
        if sp.issparse(self.weights):
            sp.save_npz(directory / "weights.npz", self.weights)
        else:
            np.save(directory / "weights.npy", self.weights)

    @classmethod
    def load(cls, directory: Path) -> CoWatch:
        meta = json.loads((directory / "meta.json").read_text())
        model = cls(meta["method"], meta["l2"], meta["neighbours"], meta["shrink"],
                    meta.get("interactions", "positives"))
        dense = directory / "weights.npy"
        model.weights = np.ascontiguousarray(np.load(dense)) if dense.exists() else sp.load_npz(
            directory / "weights.npz").tocsr()
        return model


def item_knn(train: sp.csr_matrix, neighbours: int, shrink: float) -> sp.csr_matrix:
    """Shrunk cosine similarity between item columns, top ``neighbours`` per row, no diagonal."""
    x = (train > 0).astype(np.float32).tocsc()
    co = (x.T @ x).tocsr()  # (I, I) co-watch counts
    norms = np.sqrt(np.asarray(co.diagonal(), np.float32))
    co.setdiag(0)
    co.eliminate_zeros()
    coo = co.tocoo()
    sim = coo.data / (norms[coo.row] * norms[coo.col] + 1e-9) * (coo.data / (coo.data + shrink))
    sim = sp.csr_matrix((sim.astype(np.float32), (coo.row, coo.col)), shape=co.shape)
    return _prune_rows(sim, neighbours)


def _prune_rows(m: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Keep the ``keep`` largest entries of every row."""
    rows, cols, vals = [], [], []
    for i in range(m.shape[0]):
        start, end = m.indptr[i], m.indptr[i + 1]
        data, idx = m.data[start:end], m.indices[start:end]
        if len(data) > keep:
            top = np.argpartition(-data, keep - 1)[:keep]
            data, idx = data[top], idx[top]
        rows.append(np.full(len(idx), i))
        cols.append(idx)
        vals.append(data)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=m.shape)
