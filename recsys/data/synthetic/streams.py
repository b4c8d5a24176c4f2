"""Random streams and probability helpers shared by the catalog, user and event draws.

Determinism hangs on this module: every draw comes from its own ``SeedSequence`` stream keyed by
(seed, purpose, chunk...), so a chunk's users and events never depend on the order or the process
in which chunks are generated. The keys live here, in one place, so that no two purposes can
collide.
"""

from __future__ import annotations

import numpy as np

# SeedSequence spawn keys: distinct first words so the streams never collide.
_KEY_ITEMS, _KEY_CHUNK_TOTALS, _KEY_CHUNK = 0, 1, 2
_STREAM_ACTIVITY, _STREAM_USERS, _STREAM_EVENTS = 0, 1, 2


def _rng(seed: int, *key: int) -> np.random.Generator:
    """A generator for one purpose (items, chunk c's users...), independent of call order."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _below_one(weights: np.ndarray) -> np.ndarray:
    """Probabilities that sum to a hair under 1, so ``multinomial`` never rejects them for
    rounding; the last category absorbs the missing 1e-9 (about one event in a billion)."""
    return weights / (weights.sum() * (1.0 + 1e-9))
