"""Per-user splits: deterministic, right sizes, right events, clear errors."""

import numpy as np
import pandas as pd
import pytest

from recsys import RecsysError
from recsys.data.schema import make_interactions
from recsys.data.splits import split_interactions


def _events(n_users=20, per_user=10, timestamps=True):
    users = np.repeat(np.arange(n_users), per_user)
    items = np.tile(np.arange(per_user), n_users)
    # user u's events arrive in reverse item order, so "latest" = lowest item ids
    ts = (1000 - items) + users * 10_000 if timestamps else None
    df = make_interactions(users, items, np.full(len(users), 4.0), ts)
    return df.assign(user_idx=df["user_id"], item_idx=df["item_id"])


def test_random_split_is_deterministic_and_sized():
    df = _events()
    a = split_interactions(df, "random", 0.2, seed=42)
    b = split_interactions(df, "random", 0.2, seed=42)
    c = split_interactions(df, "random", 0.2, seed=7)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert not a.test[["user_id", "item_id"]].equals(c.test[["user_id", "item_id"]])
    assert (a.test.groupby("user_id").size() == 2).all()
    assert len(a.train) + len(a.test) == len(df)
    merged = a.train.merge(a.test, on=["user_id", "item_id"])
    assert merged.empty


def test_temporal_split_holds_out_latest():
    split = split_interactions(_events(), "temporal", 0.3, seed=0)
    assert sorted(split.test[split.test.user_id == 0]["item_id"]) == [0, 1, 2]


def test_leave_last_out():
    split = split_interactions(_events(), "leave_last", seed=0)
    assert (split.test.groupby("user_id")["item_id"].apply(list) == pd.Series([[0]] * 20)).all()


def test_single_event_users_stay_in_train():
    df = _events(n_users=3, per_user=1)
    split = split_interactions(df, "random", 0.5, seed=1)
    assert split.test.empty and len(split.train) == 3


@pytest.mark.parametrize("kind", ["temporal", "leave_last"])
def test_temporal_kinds_refuse_missing_timestamps(kind):
    with pytest.raises(RecsysError, match="timestamp"):
        split_interactions(_events(timestamps=False), kind, 0.2)


def test_bad_arguments():
    with pytest.raises(RecsysError, match="unknown split"):
        split_interactions(_events(), "by-moon-phase")
    with pytest.raises(RecsysError, match="fraction"):
        split_interactions(_events(), "random", 1.5)
