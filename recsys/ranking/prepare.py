"""Everything the ranker trains and is evaluated on, built from the training split alone.

Two stages of fitting, so the ranker never sees a source's score for an item that source was
fitted on (that score would be optimistic and the ranker would learn to over-trust it):

1. The training split is split again per user: ``fit`` events (sources, features) and ``label``
   events (the ranker's labels). Training rows pair label users with label items and negatives;
   a share of label users is kept apart as validation (their merged candidates, labelled).
2. For evaluation and serving, sources and feature rows are refitted on the whole training
   split, and the ranker scores each test user's merged candidates. The held-out split is read
   only to compute metrics (``evaluate_two_stage``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import RecsysError
from recsys.candidates.base import training_matrix
from recsys.data.dataset import Dataset, interaction_matrix
from recsys.data.splits import split_interactions
from recsys.eval.protocol import positives
from recsys.ranking.activity import engaged
from recsys.ranking.evaluate import truth_matrix
from recsys.ranking.features import FeatureBuilder, FeatureParams, FeatureTables
from recsys.ranking.layout import FeatureLayout
from recsys.ranking.pairs import NegativeMix, PairRows, candidate_rows, training_rows
from recsys.ranking.source_features import SourceLists, source_lists

log = logging.getLogger(__name__)


@dataclass
class StackingParams:
    """How the ranker's training rows are made (the ``ranker.stacking`` config; its
    ``overfetch``, ``positive_threshold`` and ``seed`` follow ``candidates.overfetch``,
    ``eval.positive_threshold`` and ``seed`` in ``configs/ranker/two_tower.yaml``)."""

    label_fraction: float = 0.2  # share of each user's training events kept as ranker labels
    validation_users: float = 0.1  # share of label users held apart for validation
    overfetch: float | None = 2.0  # source list depth = quota x overfetch (as served); null: none
    folds: int = 1  # > 1: K-fold stacking, every training event labels the ranker once
    feature_depth: int | None = None  # rank/score features reach this deep into each source
    positive_threshold: float | None = 4.0  # sources fit on ratings >= this; null = every event
    seed: int = 42


@dataclass
class RankerData:
    builder: FeatureBuilder
    layout: FeatureLayout
    tables: FeatureTables  # feature rows from the fit events
    train: PairRows
    validation: PairRows  # every merged candidate of the validation users
    validation_starts: np.ndarray  # row offset per validation user
    validation_truth: sp.csr_matrix  # (validation users, n_items) their label positives


def user_items(events: pd.DataFrame) -> dict[int, np.ndarray]:
    """{user index: sorted unique item indices} of ``events``."""
    return {int(u): np.unique(events["item_idx"].to_numpy()[idx])
            for u, idx in events.groupby("user_idx").indices.items()}


def fit_sources(sources: Mapping[str, tuple[object, int]], events: pd.DataFrame,
                dataset: Dataset, positive_threshold: float):
    """Fit every (unfitted source, quota) on ``events``; returns the fitted mapping and the
    binary positives / seen matrices (each source is fitted on the one its ``interactions``
    names, ``recsys.candidates.base.training_matrix``)."""
    pos = interaction_matrix(positives(events, positive_threshold), dataset.n_users,
                             dataset.n_items)
    seen = interaction_matrix(events, dataset.n_users, dataset.n_items)
    items = dataset.items_by_index()
    fitted = {}
    for name, (model, quota) in sources.items():
        log.info("fitting source %s", name)
        fitted[name] = (model.fit(training_matrix(model, pos, seen), events=events, items=items),
                        quota)
    return fitted, pos, seen


def users_by_index(dataset: Dataset) -> pd.DataFrame | None:
    """The user table with row u = user index u (None when the dataset has no user table)."""
    if dataset.users is None or len(dataset.users) == 0 or len(dataset.users.columns) <= 1:
        return None
    return dataset.users.set_index("user_id").reindex(dataset.user_index.raw_ids).reset_index()


def _fold_events(train_events: pd.DataFrame, stacking: StackingParams
                 ) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """[(fit events, label events)] per fold. One fold: a per-user random ``label_fraction``.
    K folds: each event labels in exactly one fold (K-fold stacking: K times the labels)."""
    if stacking.folds <= 1:
        split = split_interactions(train_events, "random", stacking.label_fraction,
                                   stacking.seed + 1)
        return [(split.train, split.test)]
    fold = np.random.default_rng(stacking.seed + 1).integers(0, stacking.folds,
                                                             len(train_events))
    return [(train_events[fold != f], train_events[fold == f]) for f in range(stacking.folds)]


def prepare_ranker_data(dataset: Dataset, train_events: pd.DataFrame,
                        make_sources, feature_params: FeatureParams, mix: NegativeMix,
                        stacking: StackingParams, progress: bool = True) -> RankerData:
    """Stage 1 of the module docstring. ``make_sources()`` returns fresh unfitted sources.

    With ``stacking.folds`` > 1 every fold has its own sources and feature rows; the folds'
    tables are stacked (fold f's user u is row ``f * n_users + u``), validation comes from
    fold 0 and its users are kept out of every fold's training rows."""
    p = feature_params
    folds = _fold_events(train_events, stacking)
    builder = FeatureBuilder(feature_params).fit(folds[0][0], dataset.items_by_index(),
                                                 users_by_index(dataset), dataset.n_users,
                                                 dataset.n_items)
    all_tables, all_rows = [], []
    for f, (fit_events, label_events) in enumerate(folds):
        fitted, pos, seen = fit_sources(make_sources(), fit_events, dataset,
                                        stacking.positive_threshold)
        lists = source_lists(fitted, pos, seen, stacking.overfetch, progress=progress,
                             feature_depth=stacking.feature_depth)
        tables = builder.tables(fit_events)
        seen_by_user = user_items(fit_events)
        label_pos = label_events[engaged(label_events, p.rating_threshold, p.watch_threshold)]
        label_users = np.unique(label_pos["user_idx"].to_numpy())
        if f == 0:
            layout = builder.layout(lists.width)
            rng = np.random.default_rng(stacking.seed)
            val_all = label_users[rng.random(len(label_users)) < stacking.validation_users]
            truth = {u: np.setdiff1d(items, seen_by_user.get(u, ()))
                     for u, items in user_items(label_pos).items()}
            val_users = np.array([u for u in val_all if len(truth.get(int(u), ()))], np.int64)
            if len(val_users) == 0:
                raise RecsysError(
                    f"ranker.stacking.validation_users={stacking.validation_users} leaves no "
                    "validation user with a label positive; early stopping needs some (e.g. 0.1)")
            val_rows, val_starts = candidate_rows(val_users, lists, builder, truth,
                                                  last_timestamps(fit_events))
            val_truth = truth_matrix(val_rows, val_starts, dataset.n_items, truth, val_users)
            val_tables = tables
        train_users = label_users[~np.isin(label_users, val_all)]
        rows = training_rows(label_events, train_users, lists, builder, seen_by_user, mix,
                             seed=stacking.seed + f)
        rows.users = rows.users + f * dataset.n_users
        rows.items = rows.items + f * dataset.n_items
        all_tables.append(tables)
        all_rows.append(rows)
    train_rows = concat_rows(all_rows)
    tables = val_tables if len(folds) == 1 else stack_tables(all_tables)
    log.info("ranker rows: %d train (%.1f%% positive) from %d fold(s), %d validation over "
             "%d users", len(train_rows), 100 * train_rows.labels.mean(), len(folds),
             len(val_rows), len(val_users))
    return RankerData(builder, layout, tables, train_rows, val_rows, val_starts, val_truth)


def concat_rows(parts: list[PairRows]) -> PairRows:
    return PairRows(*(np.concatenate([getattr(r, f) for r in parts])
                      for f in ("users", "items", "labels", "context", "pair_dense")))


def stack_tables(parts: list[FeatureTables]) -> FeatureTables:
    """Fold tables one under another (fold 0 first, so validation rows index it unchanged)."""
    return FeatureTables(*(np.concatenate([getattr(t, f) for t in parts])
                           for f in ("user_ids", "user_weights", "user_dense", "item_ids",
                                     "item_weights", "item_dense")))


def last_timestamps(events: pd.DataFrame) -> dict[int, float]:
    """{user: latest event time} (NaN when unknown): the context time of offline requests."""
    ts = events["timestamp"].astype("float64")
    return ts.groupby(events["user_idx"]).max().to_dict()


@dataclass
class ServingFeatures:
    """Stage 2: sources, lists and feature rows refitted on the whole training split."""

    sources: dict
    lists: SourceLists
    tables: FeatureTables
    seen: sp.csr_matrix
    train_pos: sp.csr_matrix
    last_ts: dict[int, float]


def refit_for_serving(dataset: Dataset, train_events: pd.DataFrame, make_sources,
                      builder: FeatureBuilder, stacking: StackingParams,
                      progress: bool = True) -> ServingFeatures:
    fitted, pos, seen = fit_sources(make_sources(), train_events, dataset,
                                    stacking.positive_threshold)
    lists = source_lists(fitted, pos, seen, stacking.overfetch, progress=progress,
                         feature_depth=stacking.feature_depth)
    return ServingFeatures(fitted, lists, builder.tables(train_events), seen, pos,
                           last_timestamps(train_events))
