"""Loaders for MovieLens ml-latest-small, ml-100k and ml-1m into the canonical tables.

ml-latest-small ships inside this package (its licence allows redistribution); ml-100k and ml-1m
are research-only and read from a directory the user points at (``data.root``), never bundled.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from recsys import RecsysError
from recsys.data.dataset import Dataset
from recsys.data.schema import make_interactions, make_items

BUILTIN_ROOT = Path(__file__).parent / "builtin"
DATASETS = ("ml-latest-small", "ml-100k", "ml-1m")

_YEAR = re.compile(r"\((\d{4})\)\s*$")
_ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]  # fmt: skip


def load_movielens(name: str, root: str | Path | None = None) -> Dataset:
    """Load one MovieLens dataset by name from ``root`` (the folder holding ``<name>/``).

    ``root=None`` means the copy bundled with the package, which only ml-latest-small has.
    """
    loaders = {"ml-latest-small": _load_latest_small, "ml-100k": _load_100k, "ml-1m": _load_1m}
    if name not in loaders:
        raise RecsysError(
            f"unknown MovieLens dataset '{name}'; choose one of {', '.join(DATASETS)}"
        )
    base = Path(root) if root else BUILTIN_ROOT
    folder = base / name
    if not folder.is_dir():
        hint = "" if root else " (only ml-latest-small is bundled; set data.root)"
        raise RecsysError(f"dataset folder not found: {folder}{hint}")
    return loaders[name](folder)


def _require(folder: Path, *names: str) -> list[Path]:
    paths = [folder / n for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise RecsysError(f"missing data file(s): {', '.join(missing)}")
    return paths


def _split_title_year(titles: pd.Series) -> pd.Series:
    years = titles.str.extract(_YEAR, expand=False)
    return pd.to_numeric(years, errors="coerce").astype("Int16")


def _load_latest_small(folder: Path) -> Dataset:
    ratings_csv, movies_csv, tags_csv = _require(folder, "ratings.csv", "movies.csv", "tags.csv")
    ratings = pd.read_csv(ratings_csv, dtype={"userId": "int64", "movieId": "int64"})
    movies = pd.read_csv(movies_csv, dtype={"movieId": "int64"})
    tags = pd.read_csv(tags_csv, dtype={"movieId": "int64", "tag": str})
    tag_lists = (
        tags.assign(tag=tags["tag"].str.strip().str.lower())
        .drop_duplicates(["movieId", "tag"])
        .groupby("movieId")["tag"]
        .agg(list)
    )
    genres = movies["genres"].replace("(no genres listed)", "").str.split("|")
    items = make_items(
        pd.DataFrame(
            {
                "item_id": movies["movieId"],
                "title": movies["title"].str.strip(),
                "year": _split_title_year(movies["title"]),
                "genres": [[g for g in gs if g] for gs in genres],
                "tags": [tag_lists.get(m, []) for m in movies["movieId"]],
            }
        )
    )
    interactions = make_interactions(
        ratings["userId"], ratings["movieId"], ratings["rating"], ratings["timestamp"]
    )
    users = pd.DataFrame({"user_id": np.unique(ratings["userId"]).astype("int64")})
    return Dataset("ml-latest-small", interactions, items, users)


def _load_100k(folder: Path) -> Dataset:
    data, item, user = _require(folder, "u.data", "u.item", "u.user")
    ratings = pd.read_csv(data, sep="\t", names=["user", "item", "rating", "ts"])
    item_cols = ["item_id", "title", "release", "video_release", "url", *_ML100K_GENRES]
    movies = pd.read_csv(item, sep="|", names=item_cols, encoding="latin-1")
    flags = movies[_ML100K_GENRES].to_numpy(bool)
    items = make_items(
        pd.DataFrame(
            {
                "item_id": movies["item_id"],
                "title": movies["title"],
                "year": _split_title_year(movies["title"]),
                "genres": [
                    [g for g, f in zip(_ML100K_GENRES, row, strict=True) if f and g != "unknown"]
                    for row in flags
                ],
                "release_date": pd.to_datetime(
                    movies["release"], format="%d-%b-%Y", errors="coerce"
                ),
            }
        )
    )
    users = pd.read_csv(
        user, sep="|", names=["user_id", "age", "gender", "occupation", "zip"], dtype={"zip": str}
    )
    interactions = make_interactions(
        ratings["user"], ratings["item"], ratings["rating"], ratings["ts"]
    )
    return Dataset("ml-100k", interactions, items, users)


def _load_1m(folder: Path) -> Dataset:
    movies_dat, users_dat = _require(folder, "movies.dat", "users.dat")
    movies = pd.read_csv(
        movies_dat,
        sep="::",
        engine="python",
        names=["item_id", "title", "genres"],
        encoding="latin-1",
    )
    items = make_items(
        pd.DataFrame(
            {
                "item_id": movies["item_id"],
                "title": movies["title"],
                "year": _split_title_year(movies["title"]),
                "genres": movies["genres"].str.split("|"),
            }
        )
    )
    users = pd.read_csv(
        users_dat,
        sep="::",
        engine="python",
        names=["user_id", "gender", "age", "occupation", "zip"],
        dtype={"zip": str},
    )
    ratings = _read_1m_ratings(folder)
    interactions = make_interactions(
        ratings["userId"], ratings["movieId"], ratings["rating"], ratings["timestamp"]
    )
    return Dataset("ml-1m", interactions, items, users)


def _read_1m_ratings(folder: Path) -> pd.DataFrame:
    """The original ratings.dat if present, else the reconstruction (some timestamps null)."""
    original = folder / "ratings.dat"
    if original.exists():
        return pd.read_csv(
            original, sep="::", engine="python", names=["userId", "movieId", "rating", "timestamp"]
        )
    reconstructed = folder / "derived" / "ratings_reconstructed.parquet"
    if reconstructed.exists():
        return pd.read_parquet(reconstructed)
    raise RecsysError(f"ml-1m ratings not found: neither {original} nor {reconstructed} exists")
