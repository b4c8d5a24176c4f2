"""Data layer: canonical tables, loaders, id indices, splits and the synthetic generator."""

from __future__ import annotations

from recsys import RecsysError
from recsys.data.dataset import Dataset
from recsys.data.movielens import DATASETS as MOVIELENS


def load_dataset(name: str, root: str | None = None, **synthetic_params) -> Dataset:
    """Load a dataset by config name: a MovieLens release, synthetic data (generated on first
    use into ``root`` and reused while its parameters match), or the logged events (``events``:
    the log's export, ``path``, with a MovieLens catalog from ``root``)."""
    if name in MOVIELENS:
        from recsys.data.movielens import load_movielens

        return load_movielens(name, root)
    if name == "synthetic":
        return load_or_generate_synthetic(root, **synthetic_params)
    if name == "events":  # the log's Parquet export (recsys.data.events_data)
        from recsys.data.events_data import load_events

        return load_events(root=root, **synthetic_params)
    raise RecsysError(f"unknown dataset '{name}'; choose one of {', '.join(MOVIELENS)}, "
                      "synthetic, events")


def load_or_generate_synthetic(root: str | None, progress: bool = True, **params) -> Dataset:
    """Synthetic data for these parameters, generated under ``root`` on first use.

    Each parameter set gets its own sub-folder (named by its values), so a sweep over sizes
    never reads a stale dataset, and re-runs skip the generation.
    """
    from pathlib import Path

    from recsys.data.synthetic import SyntheticConfig, generate, load_synthetic, read_meta

    config = SyntheticConfig(**params)
    if root is None:
        raise RecsysError("data.root must name a folder for synthetic data")
    folder = Path(root) / "_".join(f"{k}={v}" for k, v in sorted(params.items()))
    try:
        read_meta(folder)
    except RecsysError:  # missing or unfinished: (re)generate it
        generate(config, folder, progress=progress, overwrite=True)
    return load_synthetic(folder)
