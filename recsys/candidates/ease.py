"""EASE (Steck, WWW 2019): a closed-form item-item linear autoencoder.

    B = argmin ||X - XB||^2 + lambda ||B||^2   s.t. diag(B) = 0
      = I - P / diag(P),  with P = (X^T X + lambda I)^-1

It is the strongest simple baseline on MovieLens top-N. The item-item matrix ``B`` doubles as a
"people who watched X also watched" table. Solved with a Cholesky inverse in torch, so
``device=cuda`` runs it on a GPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from recsys.candidates.base import read_meta, write_meta
from recsys.device import resolve_device


class EASE:
    name = "ease"

    def __init__(self, l2: float = 500.0, device: str = "auto") -> None:
        self.l2 = l2
        self.device = resolve_device(device)
        self.weights: torch.Tensor | None = None  # (n_items, n_items) B, zero diagonal

    def fit(self, train: sp.csr_matrix, **_: object) -> EASE:
        gram = torch.from_numpy((train.T @ train).toarray().astype(np.float32))  # (I, I)
        gram = gram.to(self.device)
        gram.diagonal().add_(self.l2)
        precision = torch.cholesky_inverse(torch.linalg.cholesky(gram))  # P = G^-1
        weights = precision / (-precision.diagonal())  # B_ij = -P_ij / P_jj
        weights.diagonal().zero_()
        self.weights = weights
        return self

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("EASE.score called before fit")
        rows = history[users]
        dense = torch.from_numpy(rows.toarray().astype(np.float32)).to(self.device)  # (B, I)
        return (dense @ self.weights).cpu().numpy()

    def save(self, directory: Path) -> None:
        write_meta(directory, model=self.name, l2=self.l2)
        torch.save(self.weights.cpu(), directory / "weights.pt")

    @classmethod
    def load(cls, directory: Path, device: str = "auto") -> EASE:
        meta = read_meta(directory)
        model = cls(l2=meta["l2"], device=device)
        model.weights = torch.load(directory / "weights.pt").to(model.device)
        return model
