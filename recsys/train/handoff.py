"""The prepared ranker data as files, so every training worker (a Ray actor, maybe on another
machine) reads the same rows: pair rows as Parquet, feature tables as ``.npz``, the layout as
JSON. Workers read these once at start-up; batches are then numpy gathers (``batches``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsys.ranking.features import FeatureTables
from recsys.ranking.layout import FeatureLayout
from recsys.ranking.pairs import PairRows
from recsys.ranking.prepare import RankerData


@dataclass
class WorkerData:
    layout: FeatureLayout
    tables: FeatureTables
    train: PairRows
    validation: PairRows
    validation_starts: np.ndarray
    validation_truth: sp.csr_matrix
    item_popularity: np.ndarray


def write_worker_data(data: RankerData, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "layout.json").write_text(data.layout.to_json())
    np.savez(directory / "tables.npz", **data.tables.__dict__)
    data.train.write(directory / "train.parquet")
    data.validation.write(directory / "validation.parquet")
    sp.save_npz(directory / "validation_truth.npz", data.validation_truth)
    n_items = data.layout.table("item").num_embeddings
    counts = np.bincount(data.train.items[data.train.labels > 0] % n_items, minlength=n_items)
    np.savez(directory / "validation.npz", starts=data.validation_starts,
             item_popularity=counts / max(1, counts.sum()))
    return directory


def read_worker_data(directory: Path) -> WorkerData:
    directory = Path(directory)
    tables = np.load(directory / "tables.npz")
    extra = np.load(directory / "validation.npz")
    return WorkerData(
        FeatureLayout.from_json((directory / "layout.json").read_text()),
        FeatureTables(**{k: tables[k] for k in tables.files}),
        PairRows.read(directory / "train.parquet"),
        PairRows.read(directory / "validation.parquet"),
        extra["starts"], sp.load_npz(directory / "validation_truth.npz").tocsr(),
        extra["item_popularity"],
    )
