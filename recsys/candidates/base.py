"""The contract every catalog-scoring model follows, so evaluation and serving treat them alike."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from recsys import RecsysError


@runtime_checkable
class Scorer(Protocol):
    """Scores every catalog item for a batch of users.

    ``fit`` takes the user x item training matrix (CSR, binary positives) and, as keywords,
    ``events`` (the train interactions frame, all event types, with ``user_idx``/``item_idx``)
    and ``items`` (the catalog, row i = item index i); models that need only the matrix accept
    and ignore them. ``score`` takes the users' contiguous indices and the same-shaped history
    matrix (so a model like EASE can score users from history alone) and returns a dense
    (n_users_in_batch, n_items) float32 array.
    """

    name: str

    def fit(self, train: sp.csr_matrix, **data: object) -> Scorer: ...

    def score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...


class Interactions(StrEnum):
    """What a model's training matrix holds (``check_interactions``)."""

    positives = "positives"
    all = "all"


def check_interactions(value: str) -> str:
    """Validate a model's ``interactions`` knob: what its training matrix holds.

    ``positives`` = the protocol's binary positives (rating >= threshold); ``all`` = every event,
    liked or not. Models fitted on every event learn "what will this user watch" rather than
    "what will they like"; on ml-1m the two disagree enough that the ranker gains from both.
    """
    if value not in set(Interactions):
        raise RecsysError(f"interactions must be one of {', '.join(Interactions)}, "
                          f"got {value!r}")
    return value


def training_matrix(model: object, positives: sp.csr_matrix, seen: sp.csr_matrix
                    ) -> sp.csr_matrix:
    """The matrix ``model`` is fitted and scored on: ``seen`` for ``interactions='all'``."""
    return seen if getattr(model, "interactions", "positives") == "all" else positives


def write_meta(directory: Path, **meta) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))


def read_meta(directory: Path) -> dict:
    return json.loads((directory / "meta.json").read_text())
