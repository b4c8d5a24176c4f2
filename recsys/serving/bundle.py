"""The serving bundle: everything one artefact version holds, written by training, loaded once
per replica.

Layout of a version directory (``recsys.serving.artefacts.ArtefactStore``)::

    sources/<slot>/          each fitted candidate source's own save() + source.json
                             (class, quota, overfetch, weight: the generator is rebuilt as trained)
    source_stats.json        per-source score mean/std and list depths: the ranker's source
                             features from provenance (``SourceLists.pair_dense_from_provenance``)
                             for the slots the ranker was trained with, in merge order
    features.pkl             the fitted FeatureBuilder (vocabularies, normalisers)
    item_tables.npz          the catalog's ranker rows (ids, weights, dense)
    items.parquet            the catalog, row i = item index i (titles, genres, maturity, regions)
    events.parquet           training events: the in-memory user store's starting state
    ids.npz                  raw user / item ids by index (the API speaks raw ids)
    ranker/                  layout.json, model.onnx / model.pt, triton_repository/

A slot under ``sources/`` that ``source_stats.json`` does not name (``two_tower``: the ranker's
own towers, built after the ranker is trained) is served after the trained ones, in name order.
It adds candidates, and its provenance gives the ranker no feature (the ranker never saw it).
"""

from __future__ import annotations

import importlib
import json
import pickle
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys import RecsysError
from recsys.candidates.generator import CandidateGenerator, SourceSpec
from recsys.ranking.features import FeatureBuilder, FeatureTables
from recsys.ranking.source_features import SourceLists

EVENT_COLUMNS = ["user_idx", "item_idx", "rating", "timestamp", "event_type", "watch_fraction"]


@dataclass
class ServingBundle:
    version: str
    path: Path
    generator: CandidateGenerator
    source_stats: SourceLists  # statistics only: no per-user lists
    builder: FeatureBuilder
    item_tables: FeatureTables  # user rows empty: built per request
    items: pd.DataFrame
    events: pd.DataFrame
    user_ids: np.ndarray  # raw user id by index
    item_ids: np.ndarray  # raw item id by index

    @property
    def ranker_dir(self) -> Path:
        return self.path / "ranker"


def write_bundle(directory: Path, sources: Mapping[str, tuple[object, int]],
                 slots: Mapping[str, Mapping], overfetch: float, lists: SourceLists,
                 builder: FeatureBuilder, tables: FeatureTables, items: pd.DataFrame,
                 events: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray,
                 ranker_dir: Path | None = None, positive_threshold: float | None = None
                 ) -> Path:
    """Write a version directory (see the module docstring); publish it separately.
    ``positive_threshold``: the rating at or above which an event was a positive when the
    sources were fitted (None: every event), so serving scores them from the same history."""
    directory = Path(directory)
    for name, (source, quota) in sources.items():
        out = directory / "sources" / name
        source.save(out)
        cls = type(source)
        (out / "source.json").write_text(json.dumps({
            "class": f"{cls.__module__}.{cls.__qualname__}", "quota": int(quota),
            "overfetch": float(overfetch), "weight": float(slots.get(name, {}).get("weight", 1.0)),
        }))
    (directory / "source_stats.json").write_text(json.dumps({
        "names": lists.names, "quotas": lists.quotas, "n_items": lists.n_items,
        "score_mean": lists.score_mean, "score_std": lists.score_std,
        "merge_depth": lists.merge_depth, "positive_threshold": positive_threshold}, indent=2))
    with open(directory / "features.pkl", "wb") as fh:
        pickle.dump(builder, fh)
    np.savez(directory / "item_tables.npz", item_ids=tables.item_ids,
             item_weights=tables.item_weights, item_dense=tables.item_dense)
    items.to_parquet(directory / "items.parquet")
    events[EVENT_COLUMNS].reset_index(drop=True).to_parquet(directory / "events.parquet")
    np.savez(directory / "ids.npz", user_ids=np.asarray(user_ids),
             item_ids=np.asarray(item_ids))
    if ranker_dir is not None:
        shutil.copytree(ranker_dir, directory / "ranker", dirs_exist_ok=True)
    return directory


def load_bundle(version: str, path: Path) -> ServingBundle:
    """Load a version directory written by ``write_bundle`` (once per replica)."""
    path = Path(path)
    if not (path / "source_stats.json").is_file():
        raise RecsysError(f"{path} is not a serving bundle (no source_stats.json)")
    stats = json.loads((path / "source_stats.json").read_text())
    specs = {name: _load_source(path / "sources" / name)
             for name in [*stats["names"], *_untrained_slots(path, stats["names"])]}
    empty = {n: np.empty((0, 0), np.int64) for n in stats["names"]}
    lists = SourceLists(stats["names"], stats["quotas"], empty,
                        {n: np.empty((0, 0), np.float32) for n in stats["names"]},
                        stats["n_items"], stats["score_mean"], stats["score_std"],
                        stats["merge_depth"])
    with open(path / "features.pkl", "rb") as fh:
        builder = pickle.load(fh)
    t = np.load(path / "item_tables.npz")
    du = builder.user_dense_mean.shape[0]
    tables = FeatureTables(np.empty((0, 0), np.int64), np.empty((0, 0), np.float32),
                           np.empty((0, du), np.float32), t["item_ids"], t["item_weights"],
                           t["item_dense"])
    ids = np.load(path / "ids.npz", allow_pickle=False)
    # bundles written before the threshold was recorded: every event (the old behaviour)
    generator = CandidateGenerator(specs, positive_threshold=stats.get("positive_threshold"))
    return ServingBundle(version, path, generator, lists, builder, tables,
                         pd.read_parquet(path / "items.parquet"),
                         pd.read_parquet(path / "events.parquet"), ids["user_ids"],
                         ids["item_ids"])


def _untrained_slots(path: Path, trained: list[str]) -> list[str]:
    """Slots written next to the trained ones that the ranker has no features for (see the
    module docstring), in name order so every replica merges them alike."""
    folder = path / "sources"
    found = (d.name for d in folder.iterdir() if (d / "source.json").is_file())
    return sorted(set(found) - set(trained))


def _load_source(folder: Path) -> SourceSpec:
    """One slot as the generator runs it: the class named in source.json, loaded, with its
    quota, overfetch and merge weight."""
    meta = json.loads((folder / "source.json").read_text())
    module, _, cls_name = meta["class"].rpartition(".")
    cls = getattr(importlib.import_module(module), cls_name)
    return SourceSpec(cls.load(folder), meta["quota"], meta["overfetch"], meta["weight"])
