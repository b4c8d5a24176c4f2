"""The pre-period: what each user did before their first exposure in the experiment, and the
CUPED covariate built from it (Deng, Xu, Kohavi, Walker 2013).

CUPED works best with the metric itself measured before the experiment: a user's pre-period
play rate predicts their play rate during it (taste and habits persist), where a raw count of
past events mostly measures activity, which a per-exposure rate already divides out. So the
covariate of a ratio metric ``num / den`` is its pre-period linearisation
``x_i = num_pre_i - R_pre * den_pre_i`` (``R_pre`` pooled over every user: the pre-period is
before any treatment), and of a mean metric its pre-period per-user value. Pre-period
exposures are the responses the user saw before the experiment reached them (every response
is logged, in an experiment or not).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PARTS = ("exposures", "clicks", "plays", "completes", "watch_s")


def pre_parts(events: pd.DataFrame, others: pd.DataFrame, first: pd.Series,
              engaged_fraction: float, default_duration_s: float) -> pd.DataFrame:
    """Per exposed user (``first``: user_id -> first exposure ms): the pre-period counts.
    ``events``: plays and clicks (user_id, ts_ms, play, watch_fraction, duration_s);
    ``others``: exposures outside this experiment (user_id, ts_ms)."""
    out = pd.DataFrame(0.0, index=first.index, columns=list(PARTS))
    before = others["ts_ms"] < others["user_id"].map(first)
    out["exposures"] = others.loc[before, "user_id"].value_counts().reindex(
        first.index, fill_value=0)
    ev = events[events["ts_ms"] < events["user_id"].map(first)]
    play = ev["play"].astype(bool)
    watch = (ev["watch_fraction"] * ev["duration_s"].fillna(default_duration_s)).where(play, 0)
    grouped = pd.DataFrame({
        "user_id": ev["user_id"], "clicks": (~play).astype(float),
        "plays": play.astype(float),
        "completes": (play & (ev["watch_fraction"] >= engaged_fraction)).astype(float),
        "watch_s": watch.fillna(0.0)}).groupby("user_id").sum()
    for column in ("clicks", "plays", "completes", "watch_s"):
        out[column] = grouped[column].reindex(first.index, fill_value=0.0)
    out.index.name = "user_id"
    return out


def covariate(table: pd.DataFrame, num: str, den: str | None) -> np.ndarray:
    """The CUPED covariate of a metric (module doc) from ``table``'s ``pre_<part>`` columns."""
    x = table[f"pre_{num}"].to_numpy(float)
    if den is None:
        return x
    d = table[f"pre_{den}"].to_numpy(float)
    total = d.sum()
    return x - (x.sum() / total) * d if total > 0 else x
