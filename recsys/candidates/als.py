"""Implicit-feedback ALS (Hu, Koren & Volinsky, ICDM 2008): the collaborative retrieval source.

Every (user, item) cell is fitted, watched ones towards 1 and the rest towards 0, with weight
(confidence) ``c_ui = 1 + alpha * r_ui`` (r = the train matrix value, 1 for binary positives):

    min sum_ui c_ui (p_ui - x_u . y_i)^2 + regularization (|x_u|^2 + |y_i|^2)

Two interchangeable solvers fit it, chosen by ``backend`` (``benchmarks/cf.md`` compares them
on ml-1m in one run: the same quality). ``implicit`` holds up untuned on a busy CPU, so it is the
default; ``torch`` is the choice with a GPU (on a CPU, pin its threads: ``cpu_threads=1``).

* ``implicit``: the ``implicit`` library's multithreaded C++ conjugate-gradient solver (CPU);
  its BLAS thread pool is pinned to 1 while fitting, as the library asks.
* ``torch``: the same warm-started conjugate gradient (Takacs et al. 2011), batched over all
  rows at once with sparse tensors, so ``device=cuda`` fits on a GPU.

Each iteration solves the items and then the users, so the user factors are the solve against
the final item factors. A new user is folded in by that same solve from their history. Section 5
of the paper makes the score of item i a sum over history items j, ``s_ij = y_i^T W_u y_j c_uj``
with ``W_u = (Y^T C_u Y + regularization I)^-1``; the largest ``s_ij`` is the ``because``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recsys import RecsysError
from recsys.candidates.als_torch import fit_torch
from recsys.candidates.base import check_interactions, read_meta, write_meta
from recsys.candidates.history import top_unseen
from recsys.candidates.types import NO_ITEM, Context, SourceResult, UserHistory
from recsys.device import resolve_device


class ALSBackend(StrEnum):
    implicit = "implicit"  # the implicit package's CPU solver
    torch = "torch"  # ours, on torch: runs on CUDA when the device has it


BACKENDS = tuple(ALSBackend)


class ALS:
    """Implicit ALS; a ``Scorer`` (offline evaluation) and a ``CandidateSource`` (serving).

    Defaults tuned on ml-1m (random 20% holdout, positives rating >= 4; ``benchmarks/cf.md``).
    The best ``regularization`` grows with the data: set it per dataset (ml-100k: 30 with
    alpha 3)."""

    name = "als"

    def __init__(self, factors: int = 128, regularization: float = 100.0, alpha: float = 10.0,
                 iterations: int = 15, seed: int = 42, backend: str = "implicit",
                 cg_steps: int = 3, cpu_threads: int | None = None,
                 device: str = "auto", interactions: str = "positives") -> None:
        if backend not in set(ALSBackend):
            raise RecsysError(f"unknown ALS backend '{backend}'; choose one of "
                              f"{', '.join(BACKENDS)}")
        for label, value in (("factors", factors), ("iterations", iterations),
                             ("cg_steps", cg_steps)):
            if int(value) < 1:
                raise RecsysError(f"ALS {label} must be >= 1, got {value}")
        if regularization <= 0 or alpha < 0:
            raise RecsysError(f"ALS regularization must be > 0 and alpha >= 0, got "
                              f"{regularization}, {alpha}")
        self.factors, self.iterations, self.cg_steps = int(factors), int(iterations), int(cg_steps)
        self.regularization, self.alpha = float(regularization), float(alpha)
        # cpu_threads: torch's intra-op threads while fitting on CPU (None = torch's setting);
        # 1 is as fast on 2 idle cores and far faster on a busy machine (benchmarks/cf.md).
        self.seed, self.backend, self.cpu_threads = seed, backend, cpu_threads
        self.device = resolve_device(device)  # torch backend only; implicit runs on CPU
        self.interactions = check_interactions(interactions)  # what fit() is given (base.py)
        self.user_factors: np.ndarray | None = None  # (n_users, f) float32
        self.item_factors: np.ndarray | None = None  # (n_items, f) float32, for a FAISS index
        self.index = None  # optional VectorIndex over item_factors (inner product)
        self._gram: np.ndarray | None = None  # (f, f) float64 Y^T Y, cached for fold-ins
        self._item_f64: np.ndarray | None = None  # (n_items, f) float64 copy, same lifetime

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: sp.spmatrix, **_: object) -> ALS:
        """``train``: (n_users, n_items) sparse, r_ui >= 0 (binary positives in the protocol)."""
        weights = _weights(train, self.alpha)  # (U, I) csr of alpha * r = c - 1
        fit = _fit_implicit if self.backend == "implicit" else fit_torch
        self.user_factors, self.item_factors = fit(self, weights)
        self._gram = None
        return self

    def use_index(self, index) -> ALS:
        """Retrieve with ``index`` (a ``VectorIndex`` built on ``item_factors``, metric ``ip``)
        instead of an exact product with every item: for catalogs of millions."""
        self.index = index
        return self

    # -- scoring ----------------------------------------------------------------------------
    def _factors(self) -> tuple[np.ndarray, np.ndarray]:
        if self.user_factors is None or self.item_factors is None:
            raise RuntimeError("ALS used before fit")
        return self.user_factors, self.item_factors

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """(B, n_items) x_u . y_i from the learned user factors (``history`` is not needed)."""
        user_f, item_f = self._factors()
        return user_f[np.asarray(users)] @ item_f.T

    def _history(self, items: np.ndarray) -> np.ndarray:
        """(H,) sorted unique history item indices, checked against the catalog."""
        items = np.unique(np.asarray(items, np.int64))
        n_items = len(self._factors()[1])
        if len(items) and (items[0] < 0 or items[-1] >= n_items):
            raise RecsysError(f"history item indices must be in [0, {n_items}), got "
                              f"{items[(items < 0) | (items >= n_items)][:5].tolist()}")
        return items

    def _user_system(self, history: np.ndarray) -> tuple[tuple, np.ndarray]:
        """Cholesky factor of A = Y^T C_u Y + reg I and the (H, f) history item factors.

        History items count as binary positives (confidence 1 + alpha), as in training.
        """
        if self._gram is None:  # once per fit/load: the per-request path reuses both
            self._item_f64 = self._factors()[1].astype(np.float64)
            self._gram = self._item_f64.T @ self._item_f64
        y_h = self._item_f64[history]  # (H, f)
        a = self._gram + self.alpha * (y_h.T @ y_h) + self.regularization * np.eye(self.factors)
        return scipy.linalg.cho_factor(a), y_h

    def fold_in(self, items: np.ndarray) -> np.ndarray:
        """(f,) factors of a user who watched ``items``: p_u = W_u Y^T C_u p(u), one solve."""
        history = self._history(items)
        if len(history) == 0:
            return np.zeros(self.factors, np.float32)
        chol, y_h = self._user_system(history)
        b = y_h.sum(axis=0) * (1.0 + self.alpha)  # Y^T C_u p(u): p = 1 on the history only
        return scipy.linalg.cho_solve(chol, b).astype(np.float32)

    def explain(self, user: UserHistory, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Why ``items`` score as they do for ``user``: (because (n,), contribution (n, H)).

        ``contribution[i, j] = y_i^T W_u y_j c_uj`` for history item j (columns follow
        ``np.unique(user.items)``); each row sums to the folded-in score of item i, which for a
        known user equals the learned score up to the solver's tolerance. ``because`` is the
        history item with the largest contribution, NO_ITEM if none is positive.
        """
        items = np.asarray(items, np.int64)
        history = self._history(user.items)
        if len(history) == 0:
            return np.full(len(items), NO_ITEM, np.int64), np.zeros((len(items), 0), np.float32)
        chol, y_h = self._user_system(history)
        weighted = scipy.linalg.cho_solve(chol, self.item_factors[items].T.astype(np.float64))
        contribution = (weighted.T @ y_h.T) * (1.0 + self.alpha)  # (n, H)
        best = np.argmax(contribution, axis=1) if len(items) else np.empty(0, np.int64)
        top = contribution[np.arange(len(items)), best]
        because = np.where(top > 0, history[best], NO_ITEM).astype(np.int64)
        return because, contribution.astype(np.float32)

    def candidates(self, user: UserHistory, context: Context, k: int) -> SourceResult:
        """Top ``k`` unseen items for a known user (learned factors) or a new one (fold-in).

        ``context`` is not used: ALS answers every surface from the user's taste alone.
        """
        if k < 1:
            raise RecsysError(f"k must be >= 1, got {k}")
        user_f, item_f = self._factors()
        seen = self._history(user.items)
        if user.user_idx is None:
            if len(seen) == 0:
                return SourceResult.empty(self.name)
            query = self.fold_in(seen)
        elif 0 <= user.user_idx < len(user_f):
            query = user_f[user.user_idx]
        else:
            raise RecsysError(f"user_idx {user.user_idx} is not a trained user (0.."
                              f"{len(user_f) - 1}); pass user_idx=None to fold the user in")
        if self.index is not None:
            scores, ids = self.index.search(query[None, :], k + len(seen))
            keep = (ids[0] >= 0) & ~np.isin(ids[0], seen)
            items, item_scores = ids[0][keep][:k].astype(np.int64), scores[0][keep][:k]
        else:
            all_scores = item_f @ query  # (n_items,)
            items = top_unseen(all_scores, seen, k)
            item_scores = all_scores[items]
        because = (self.credit(UserHistory(user.user_idx, seen), items) if context.explain
                   else np.full(len(items), NO_ITEM, np.int64))
        return SourceResult(self.name, items, item_scores.astype(np.float32), because)

    def credit(self, user: UserHistory, items: np.ndarray) -> np.ndarray:
        """(n,) the history item credited for each of ``items`` (``explain``'s first half)."""
        return self.explain(user, items)[0]

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        user_f, item_f = self._factors()
        write_meta(directory, model=self.name, factors=self.factors,
                   regularization=self.regularization, alpha=self.alpha,
                   iterations=self.iterations, seed=self.seed, backend=self.backend,
                   cg_steps=self.cg_steps, cpu_threads=self.cpu_threads,
                   interactions=self.interactions)
        np.save(directory / "user_factors.npy", user_f)
        np.save(directory / "item_factors.npy", item_f)

    @classmethod
    def load(cls, directory: Path, device: str = "auto") -> ALS:
        meta = read_meta(directory)
        if meta.get("model") != cls.name:
            raise RecsysError(f"{directory} holds a '{meta.get('model')}' model, not ALS")
        model = cls(**{k: v for k, v in meta.items() if k != "model"}, device=device)
        model.user_factors = np.load(directory / "user_factors.npy")
        model.item_factors = np.load(directory / "item_factors.npy")
        return model


def _weights(train: sp.spmatrix, alpha: float) -> sp.csr_matrix:
    """(U, I) float32 csr of alpha * r_ui, i.e. confidence minus one, on the observed cells."""
    if not sp.issparse(train) or train.ndim != 2:
        raise RecsysError(f"ALS.fit needs a 2-D scipy sparse matrix, got {type(train).__name__}")
    weights = sp.csr_matrix(train, dtype=np.float32, copy=True)
    weights.sum_duplicates()
    weights.eliminate_zeros()
    if weights.nnz == 0:
        raise RecsysError("ALS.fit got an empty training matrix")
    if not np.isfinite(weights.data).all() or (weights.data < 0).any():
        raise RecsysError("ALS.fit needs finite, non-negative interaction values")
    weights.data *= alpha
    return weights


def _fit_implicit(model: ALS, weights: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """The implicit library, fed the item x user matrix so its last half-step solves users."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    confidence = weights.T.tocsr()  # (I, U): implicit reads the values as c_ui itself
    confidence.data += 1.0
    with threadpool_limits(1, "blas"):  # BLAS threads fight implicit's own OpenMP threads
        solver = AlternatingLeastSquares(
            factors=model.factors, regularization=model.regularization, alpha=1.0,
            iterations=model.iterations, use_gpu=False, random_state=model.seed)
        solver.cg_steps = model.cg_steps
        solver.fit(confidence, show_progress=False)
    # Roles swapped: implicit's "users" are our items.
    return (np.ascontiguousarray(solver.item_factors, np.float32),
            np.ascontiguousarray(solver.user_factors, np.float32))
