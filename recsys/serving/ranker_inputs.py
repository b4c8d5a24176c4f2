"""The ranker's inputs online: a user's row (``user_rows``, what the features stage gets from
the row cache) and one request's candidates as the five input arrays (``request_batch``, the
rank stage).

Training and offline evaluation gather rows from whole-population tables
(``recsys.ranking.batches.gather``); a request has one user, whose row is built from their
current history (so a live event changes the next answer), the catalog's item rows, the
request's surface and time, and each candidate's source features from its provenance. Reusing
``gather`` over a one-user table keeps the online inputs identical to the offline ones, which a
test checks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recsys.candidates.types import Candidate, CandidateSet
from recsys.ranking.batches import RankerBatch, gather
from recsys.ranking.features import FeatureBuilder, FeatureTables
from recsys.ranking.pairs import PairRows
from recsys.ranking.source_features import SourceLists

UserRows = tuple[np.ndarray, np.ndarray, np.ndarray]  # (1, slots) ids, weights; (1, du) dense


def user_rows(builder: FeatureBuilder, user_events: pd.DataFrame, user_idx: int | None
              ) -> UserRows:
    """One user's ranker row from their history (canonical event columns); ``user_idx`` None
    = a user the ranker never saw (cold start: no id, no demographics). A pure function of the
    events, so a caller may keep it for as long as the user's state is unchanged."""
    key = -1 if user_idx is None else int(user_idx)
    return builder.user_rows_from_events(user_events.assign(user_idx=key), np.array([key]),
                                         known=user_idx is not None)


def request_batch(builder: FeatureBuilder, items: FeatureTables, lists: SourceLists,
                  user_events: pd.DataFrame | None, user_idx: int | None,
                  candidates: CandidateSet | Sequence[Candidate], surface: str = "home",
                  timestamp: float | None = None, rows_of_user: UserRows | None = None
                  ) -> RankerBatch:
    """``user_events``: the user's history in the canonical columns (``item_idx``, rating,
    timestamp, event_type, watch_fraction), or ``rows_of_user`` already built from it by
    ``user_rows``; ``items``: tables whose item rows are used (user rows are ignored)."""
    if rows_of_user is None:
        rows_of_user = user_rows(builder, user_events, user_idx)
    ids, weights, dense = rows_of_user
    tables = FeatureTables(ids, weights, dense, items.item_ids, items.item_weights,
                           items.item_dense)
    if not isinstance(candidates, CandidateSet):
        candidates = CandidateSet.from_candidates(candidates, lists.names)
    item_idx = candidates.items
    n = len(item_idx)
    ts = np.full(n, np.nan if timestamp is None else float(timestamp))
    rows = PairRows(np.zeros(n, np.int64), item_idx, np.zeros(n, np.float32),
                    builder.context_rows(np.full(n, surface), ts),
                    lists.pair_dense_from_provenance(candidates))
    return gather(tables, rows)
