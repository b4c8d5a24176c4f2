"""The official ml-100k train/test files (u1..u5 and ua/ub .base/.test) as ``Split`` objects.

Published ml-100k rating-prediction numbers (RMSE ~0.91-0.93) are mostly on the five u{n}
folds that GroupLens' ``mku.sh`` made: disjoint 20% test sets, every user in every train set.
Reusing those exact files, rather than our own random split, keeps our RMSE comparable with them.
Rows are mapped through the Dataset's id indices, so ``user_idx``/``item_idx`` are the same
contiguous indices every other model of the project uses.

>>> dataset, splits = official_folds("/path/holding")   # doctest: +SKIP
>>> splits[0].train[["user_idx", "item_idx", "rating"]].shape  # doctest: +SKIP
(80000, 3)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from recsys import RecsysError
from recsys.data.dataset import Dataset
from recsys.data.movielens import load_movielens
from recsys.data.schema import make_interactions
from recsys.data.splits import Split

FOLDS = ("1", "2", "3", "4", "5", "a", "b")  # u1..u5: 5-fold cross-validation; ua/ub: 10 per user


def fold_folder(root: str | Path) -> Path:
    """The ml-100k folder: ``root`` may be the folder holding ``ml-100k/`` or that folder."""
    root = Path(root)
    return root if (root / "u.data").exists() else root / "ml-100k"


def read_fold(dataset: Dataset, root: str | Path, fold: int | str) -> Split:
    """Train and test events of fold ``fold`` (1..5, "a" or "b") with the dataset's indices."""
    name = str(fold)
    if name not in FOLDS:
        raise RecsysError(f"unknown ml-100k fold '{fold}'; choose one of {', '.join(FOLDS)}")
    folder = fold_folder(root)
    return Split(train=_read(dataset, folder / f"u{name}.base"),
                 test=_read(dataset, folder / f"u{name}.test"))


def official_folds(root: str | Path, folds: Iterable[int | str] = (1, 2, 3, 4, 5)
                   ) -> tuple[Dataset, list[Split]]:
    """The ml-100k Dataset (for its indices and catalog) and the requested folds."""
    dataset = load_movielens("ml-100k", fold_folder(root).parent)
    return dataset, [read_fold(dataset, root, f) for f in folds]


def _read(dataset: Dataset, path: Path) -> pd.DataFrame:
    if not path.exists():
        raise RecsysError(f"missing ml-100k fold file: {path}")
    raw = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "ts"])
    events = make_interactions(raw["user"], raw["item"], raw["rating"], raw["ts"])
    try:
        return events.assign(user_idx=dataset.user_index.to_index(events["user_id"]),
                             item_idx=dataset.item_index.to_index(events["item_id"]))
    except KeyError as err:
        raise RecsysError(f"{path.name} has ids missing from {dataset.name}: {err}") from err
