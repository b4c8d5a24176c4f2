"""Biased matrix factorisation for explicit ratings (Koren, Bell & Volinsky 2009, "SVD" in the
Netflix-prize sense), the rating predictor behind "you would rate this 4.2":

    r_hat_ui = mu + b_u + b_i + p_u . q_i

trained in torch by mini-batch SGD on the squared error plus L2 on the rows each batch touches:

    sum_(u,i in batch) (r_ui - r_hat_ui)^2 + reg (|p_u|^2 + |q_i|^2) + bias_reg (b_u^2 + b_i^2)

Why these choices (measured on ml-100k u1..u5 and ml-1m, ``benchmarks/cf.md``):

* L2 per occurrence, not optimizer ``weight_decay``: decaying the whole table every step shrinks
  rare users and items towards zero far more than busy ones; per-occurrence L2 is the classic
  SGD formulation and regularises each row in proportion to its data.
* SGD with a per-rating (summed) loss and a cosine-annealed learning rate: the noise floor of
  constant-rate SGD cost ~0.02 RMSE on ml-1m; annealing removes it in a fixed epoch budget.
  Adam (mean loss) overfitted the factors sooner and ended worse (u1 RMSE 0.928 at its best L2
  vs 0.922).
* Users and items with no training rating get zero factors and zero bias, so they are predicted
  as ``mu`` (+ the other side's bias) instead of from random initial vectors.
* On CPU, training runs with ``cpu_threads`` torch threads (default 1): batches of a few thousand
  ratings are too small for intra-op threads, and on a busy machine OpenMP threads that wait on
  each other slow a fit many times over.

``factors=0`` is the biases-only baseline (global mean + user bias + item bias).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys import RecsysError
from recsys.candidates.base import read_meta, write_meta
from recsys.device import resolve_device

HYPER = ("factors", "reg", "bias_reg", "lr", "epochs", "batch_size", "init_std", "seed", "clip",
         "cpu_threads")


class BiasedMF:
    """Defaults: tuned on a validation slice of the ml-1m random 80/20 train split; ml-100k
    (12x fewer ratings) prefers ``reg=0.1, lr=0.01, batch_size=256, epochs=30``: more L2 and
    more, smaller steps per epoch. ``benchmarks/cf.md`` has the test RMSE of both."""

    name = "biased_mf"

    def __init__(self, factors: int = 128, reg: float = 0.065, bias_reg: float = 0.01,
                 lr: float = 0.02, epochs: int = 25, batch_size: int = 2048,
                 init_std: float = 0.1, seed: int = 0, clip: bool = True,
                 cpu_threads: int = 1, device: str = "auto") -> None:
        if factors < 0 or epochs < 1 or batch_size < 1:
            raise RecsysError(f"BiasedMF needs factors >= 0, epochs >= 1, batch_size >= 1; got "
                              f"{factors}, {epochs}, {batch_size}")
        if reg < 0 or bias_reg < 0 or lr <= 0 or init_std < 0:
            raise RecsysError("BiasedMF needs reg, bias_reg, init_std >= 0 and lr > 0")
        self.factors, self.epochs, self.batch_size = int(factors), int(epochs), int(batch_size)
        self.reg, self.bias_reg, self.lr, self.init_std = reg, bias_reg, lr, init_std
        self.seed, self.clip, self.cpu_threads = seed, clip, max(1, int(cpu_threads))
        self.device = resolve_device(device)
        self.mu = 0.0  # global mean rating of the training set
        self.rating_range = (-math.inf, math.inf)  # (min, max) training rating, for clipping
        self.params: dict[str, torch.Tensor] | None = None  # p (U, f), q (I, f), bu (U,), bi (I,)

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: sp.spmatrix | None = None, *, events: pd.DataFrame | None = None,
            **_: object) -> BiasedMF:
        """Scorer-style entry: ratings from ``events`` (rows with a rating) when given, else the
        values of ``train`` (a user x item matrix of explicit ratings)."""
        if train is None and events is None:
            raise RecsysError("BiasedMF.fit needs a ratings matrix or an events frame")
        if events is not None:
            rated = events[events["rating"].notna()]
            shape = train.shape if train is not None else (
                int(rated["user_idx"].max()) + 1, int(rated["item_idx"].max()) + 1)
            return self.fit_ratings(rated["user_idx"].to_numpy(), rated["item_idx"].to_numpy(),
                                    rated["rating"].to_numpy(), *shape)
        coo = sp.coo_matrix(train)
        return self.fit_ratings(coo.row, coo.col, coo.data, *coo.shape)

    def fit_ratings(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                    n_users: int, n_items: int) -> BiasedMF:
        """Train on (n,) parallel arrays of user index, item index and rating."""
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        ratings = np.asarray(ratings, np.float32)
        _check_triples(users, items, ratings, n_users, n_items)
        dev, gen = self.device, torch.Generator().manual_seed(self.seed)
        self.mu = float(ratings.mean())
        self.rating_range = (float(ratings.min()), float(ratings.max()))
        p = torch.randn(n_users, self.factors, generator=gen) * self.init_std
        q = torch.randn(n_items, self.factors, generator=gen) * self.init_std
        params = {"p": p, "q": q, "bu": torch.zeros(n_users), "bi": torch.zeros(n_items)}
        params = {k: v.to(dev).requires_grad_() for k, v in params.items()}
        opt = torch.optim.SGD(list(params.values()), lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
        u, i, r = (torch.from_numpy(a).to(dev) for a in (users, items, ratings))
        threads = torch.get_num_threads()
        if dev.type == "cpu":
            torch.set_num_threads(self.cpu_threads)
        try:
            for _ in range(self.epochs):
                for batch in torch.randperm(len(r), generator=gen).to(dev).split(self.batch_size):
                    loss = self._loss(params, u[batch], i[batch], r[batch])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                schedule.step()
        finally:
            torch.set_num_threads(threads)
        with torch.no_grad():  # untrained rows: no evidence, so no personal signal
            params["p"][~_seen(users, n_users, dev)] = 0.0
            params["q"][~_seen(items, n_items, dev)] = 0.0
        self.params = {k: v.detach() for k, v in params.items()}
        return self

    def _loss(self, params: dict[str, torch.Tensor], u: torch.Tensor, i: torch.Tensor,
              r: torch.Tensor) -> torch.Tensor:
        p_u, q_i, b_u, b_i = params["p"][u], params["q"][i], params["bu"][u], params["bi"][i]
        err = self.mu + b_u + b_i + (p_u * q_i).sum(1) - r  # (B,)
        l2 = self.reg * ((p_u * p_u).sum(1) + (q_i * q_i).sum(1))
        return (err * err + l2 + self.bias_reg * (b_u * b_u + b_i * b_i)).sum()

    # -- prediction -------------------------------------------------------------------------
    def _params(self) -> dict[str, torch.Tensor]:
        if self.params is None:
            raise RuntimeError("BiasedMF used before fit")
        return self.params

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """(n,) float32 predicted ratings for parallel arrays of user and item indices."""
        prm = self._params()
        users = np.asarray(user_idx, np.int64).ravel()
        items = np.asarray(item_idx, np.int64).ravel()
        _check_triples(users, items, None, len(prm["bu"]), len(prm["bi"]))
        u, i = torch.from_numpy(users).to(self.device), torch.from_numpy(items).to(self.device)
        pred = self.mu + prm["bu"][u] + prm["bi"][i] + (prm["p"][u] * prm["q"][i]).sum(1)
        return self._clip(pred).cpu().numpy().astype(np.float32)

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """(B, n_items) predicted rating of every item: ranks by expected rating."""
        prm = self._params()
        u = torch.from_numpy(np.asarray(users, np.int64)).to(self.device)
        pred = (self.mu + prm["bu"][u][:, None] + prm["bi"][None, :] + prm["p"][u] @ prm["q"].T)
        return self._clip(pred).cpu().numpy().astype(np.float32)

    def _clip(self, pred: torch.Tensor) -> torch.Tensor:
        return pred.clamp(*self.rating_range) if self.clip else pred

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        prm = self._params()
        write_meta(directory, model=self.name, mu=self.mu, rating_range=list(self.rating_range),
                   **{k: getattr(self, k) for k in HYPER})
        torch.save({k: v.cpu() for k, v in prm.items()}, directory / "params.pt")

    @classmethod
    def load(cls, directory: Path, device: str = "auto") -> BiasedMF:
        meta = read_meta(directory)
        if meta.get("model") != cls.name:
            raise RecsysError(f"{directory} holds a '{meta.get('model')}' model, not BiasedMF")
        model = cls(**{k: meta[k] for k in HYPER}, device=device)
        model.mu, model.rating_range = meta["mu"], tuple(meta["rating_range"])
        params = torch.load(directory / "params.pt")
        model.params = {k: v.to(model.device) for k, v in params.items()}
        return model


def _seen(index: np.ndarray, n: int, device: torch.device) -> torch.Tensor:
    """(n,) bool: which rows occur in ``index``."""
    return torch.from_numpy(np.bincount(index, minlength=n) > 0).to(device)


def _check_triples(users: np.ndarray, items: np.ndarray, ratings: np.ndarray | None,
                   n_users: int, n_items: int) -> None:
    if users.shape != items.shape or (ratings is not None and ratings.shape != users.shape):
        raise RecsysError("users, items and ratings must be parallel arrays of one length")
    if ratings is not None and (len(ratings) == 0 or not np.isfinite(ratings).all()):
        raise RecsysError("BiasedMF needs at least one rating, all finite")
    for label, idx, n in (("user", users, n_users), ("item", items, n_items)):
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise RecsysError(f"{label} indices must be in [0, {n}), got "
                              f"[{idx.min()}, {idx.max()}]")
