"""Data layer: canonical tables, loaders, id indices, splits and the synthetic generator."""

from __future__ import annotations

from recsys import RecsysError
from recsys.data.dataset import Dataset
from recsys.data.movielens import DATASETS as MOVIELENS


def load_dataset(name: str, root: str | None = None, **synthetic_params) -> Dataset:
    """Load a dataset by config name: a MovieLens release, or synthetic data (generated on first
    use into ``root`` and reused while its parameters match)."""
    if name in MOVIELENS:
        from recsys.data.movielens import load_movielens

        return load_movielens(name, root)
    if name == "synthetic":
        from recsys.data.synthetic import load_or_generate

        return load_or_generate(root, **synthetic_params)
    raise RecsysError(f"unknown dataset '{name}'; choose one of {', '.join(MOVIELENS)}, synthetic")
