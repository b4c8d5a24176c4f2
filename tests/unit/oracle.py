"""Block-diagonal oracle data shared by candidate-source tests: the right answer is known."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def block_data(n_users: int = 60, n_items: int = 40, blocks: int = 4, holdout: int = 2,
               seed: int = 0):
    """Users of block b watched every item of block b; ``holdout`` per user are held out.

    Returns (train csr, test csr, user_block, item_block).
    """
    rng = np.random.default_rng(seed)
    user_block = np.arange(n_users) % blocks
    item_block = np.arange(n_items) % blocks
    full = (user_block[:, None] == item_block[None, :]).astype(np.float32)
    test = np.zeros_like(full)
    for u in range(n_users):
        held = rng.choice(np.flatnonzero(full[u]), holdout, replace=False)
        test[u, held] = 1
    return sp.csr_matrix(full - test), sp.csr_matrix(test), user_block, item_block
