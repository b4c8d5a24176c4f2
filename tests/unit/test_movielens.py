"""Loaders produce canonical tables with the documented row counts."""

import pandas as pd
import pytest

from recsys import RecsysError
from recsys.data import load_dataset
from recsys.data.schema import INTERACTION_DTYPES, has_timestamps


def _check_canonical(ds):
    for col, dtype in INTERACTION_DTYPES.items():
        assert str(ds.interactions[col].dtype) == str(dtype), col
    assert list(ds.items.columns) == ["item_id", "title", "year", "genres", "tags",
                                      "maturity_rating", "regions", "release_date"]
    assert ds.interactions["user_idx"].max() == ds.n_users - 1
    assert ds.interactions["item_idx"].between(0, ds.n_items - 1).all()
    assert all(isinstance(g, list) for g in ds.items["genres"])


def test_bundled_latest_small():
    ds = load_dataset("ml-latest-small")
    _check_canonical(ds)
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (100_836, 610, 9_742)
    toy = ds.items[ds.items.item_id == 1].iloc[0]
    assert toy.title == "Toy Story (1995)" and toy.year == 1995
    assert "Animation" in toy.genres and "pixar" in toy.tags
    assert has_timestamps(ds.interactions)


def test_ml100k(data_root):
    ds = load_dataset("ml-100k", str(data_root))
    _check_canonical(ds)
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (100_000, 943, 1_682)
    assert {"age", "gender", "occupation"} <= set(ds.users.columns)
    assert ds.items.iloc[0].release_date == pd.Timestamp("1995-01-01")
    assert ds.items.iloc[0].genres == ["Animation", "Children's", "Comedy"]


def test_ml1m_reconstruction_has_null_timestamps(data_root):
    ds = load_dataset("ml-1m", str(data_root))
    _check_canonical(ds)
    assert (len(ds.interactions), ds.n_users) == (1_000_209, 6_040)
    assert ds.n_items == 3_883  # whole catalog, 3,706 of them rated
    assert ds.interactions["item_idx"].nunique() == 3_706
    assert not has_timestamps(ds.interactions)


def test_errors_are_sentences(tmp_path):
    with pytest.raises(RecsysError, match="unknown dataset"):
        load_dataset("ml-25m")
    with pytest.raises(RecsysError, match="only ml-latest-small is bundled"):
        load_dataset("ml-1m")
    (tmp_path / "ml-100k").mkdir()
    with pytest.raises(RecsysError, match="missing data file"):
        load_dataset("ml-100k", str(tmp_path))


def test_indices_round_trip(tmp_path):
    ds = load_dataset("ml-latest-small")
    ds.save_indices(tmp_path)
    from recsys.data.indexing import IdIndex

    items = IdIndex.load(tmp_path / "item_index.parquet")
    raw = ds.interactions["item_id"].to_numpy()[:100]
    assert (items.to_raw(items.to_index(raw)) == raw).all()
    with pytest.raises(KeyError):
        items.to_index([-5])
    assert items.to_index([-5], missing="ignore").tolist() == [-1]
