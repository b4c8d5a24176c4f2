"""The torch backend of ALS: warm-started conjugate gradient (Takacs et al. 2011), batched
over all rows at once with sparse CSR tensors, so ``device=cuda`` fits on a GPU."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

if TYPE_CHECKING:
    from recsys.candidates.als import ALS


def fit_torch(model: ALS, weights: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Alternating conjugate-gradient half-steps over all users (or items) at once."""
    dev = model.device
    gen = torch.Generator().manual_seed(model.seed)
    n_users, n_items = weights.shape
    # Same start as implicit: uniform in [0, 0.01).
    items = (torch.rand(n_items, model.factors, generator=gen) * 0.01).to(dev)
    users = (torch.rand(n_users, model.factors, generator=gen) * 0.01).to(dev)
    by_user, by_item = _csr_tensor(weights, dev), _csr_tensor(weights.T.tocsr(), dev)
    threads = torch.get_num_threads()
    if dev.type == "cpu" and model.cpu_threads:
        torch.set_num_threads(model.cpu_threads)
    try:
        for _ in range(model.iterations):
            _cg_half_step(items, users, by_item, model.regularization, model.cg_steps)
            _cg_half_step(users, items, by_user, model.regularization, model.cg_steps)
    finally:
        torch.set_num_threads(threads)
    return users.cpu().numpy(), items.cpu().numpy()


def _csr_tensor(m: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it is what we need
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                       torch.from_numpy(m.indices.astype(np.int64)),
                                       torch.from_numpy(m.data), m.shape, device=device)


def _cg_half_step(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, reg: float,
                  steps: int) -> None:
    """Update every row x_u in place by ``steps`` conjugate-gradient steps on

        (Y^T Y + Y^T diag(w_u) Y + reg I) x_u = Y^T (1 + w_u)   (w_u = c_u - 1 on observed cells)

    warm-started from the current x (Takacs, Pilaszy & Tikk 2011). ``x``: (n, f), ``y``: (m, f),
    ``weights``: (n, m) sparse CSR of w. The sparse part of A x is one sampled dense-dense
    product (x_u . y_j on the observed cells) and one sparse-dense product.
    """
    gram = y.T @ y + reg * torch.eye(y.shape[1], device=y.device, dtype=y.dtype)  # (f, f)
    crow, col, w = weights.crow_indices(), weights.col_indices(), weights.values()

    def with_values(values: torch.Tensor) -> torch.Tensor:
        return torch.sparse_csr_tensor(crow, col, values, weights.shape)

    def apply_a(p: torch.Tensor) -> torch.Tensor:  # (n, f) -> (n, f)
        dots = torch.sparse.sampled_addmm(weights, p, y.T, beta=0.0).values()  # (nnz,)
        return p @ gram + torch.sparse.mm(with_values(dots * w), y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        b = torch.sparse.mm(with_values(w + 1.0), y)  # (n, f) Y^T C_u p(u)
        r = b - apply_a(x)
        p = r.clone()
        rs = (r * r).sum(1)
        for _ in range(steps):
            ap = apply_a(p)
            step = rs / (p * ap).sum(1).clamp_min(1e-20)
            x.add_(step[:, None] * p)
            r.sub_(step[:, None] * ap)
            rs_new = (r * r).sum(1)
            p = r + (rs_new / rs.clamp_min(1e-20))[:, None] * p
            rs = rs_new
