"""User state store: disliked-genre rule on a hand-built frame, explicit profile union, unknown
users, live appends and the round trip to the candidates' UserHistory."""

import numpy as np
import pandas as pd
import pytest

from recsys import RecsysError
from recsys.candidates.types import UserHistory
from recsys.serving.state import InMemoryUserStore, UserStore

ITEMS = pd.DataFrame({"item_id": range(6), "genres": [
    ["Horror"], ["Horror", "Comedy"], ["Comedy"], ["Drama"], None, ["Horror"]]})

# (user, item, rating, timestamp); rows deliberately out of time order
ROWS = [
    (0, 1, 2.0, 20), (0, 0, 1.0, 10), (0, 2, 5.0, 30),  # Horror: 2 low, mean 1.5 -> disliked
    (1, 0, 1.0, 10), (1, 1, 2.0, 20), (1, 5, 5.0, 30),  # Horror: 2 low but mean 2.67 -> kept
    (2, 0, 1.0, 10), (2, 3, np.nan, 20), (2, 4, 1.0, 30),  # one low Horror only; 4 has no genre
]


def events(rows=ROWS) -> pd.DataFrame:
    u, i, r, t = zip(*rows, strict=True)
    return pd.DataFrame({"user_idx": u, "item_idx": i, "rating": np.array(r, float),
                         "timestamp": pd.array(t, dtype="Int64")})


@pytest.fixture
def store() -> InMemoryUserStore:
    return InMemoryUserStore.from_events(events(), ITEMS)


def test_store_satisfies_protocol(store):
    assert isinstance(store, InMemoryUserStore)
    _: UserStore = store  # static check only; the protocol is not runtime_checkable
    assert len(store) == 3


def test_disliked_genres_need_count_and_low_mean(store):
    assert store.get(0).disliked_genres == {"Horror"}
    assert store.get(1).disliked_genres == frozenset()  # picky fan, not a dislike
    assert store.get(2).disliked_genres == frozenset()  # a single low rating is noise


def test_histories_are_time_ordered(store):
    s = store.get(0)
    assert s.items.tolist() == [0, 1, 2]
    assert s.timestamps.tolist() == [10, 20, 30]
    assert s.items.dtype == np.int64 and s.ratings.dtype == np.float32
    assert np.isnan(store.get(2).ratings[1])


def test_unknown_user_is_none(store):
    assert store.get(99) is None


def test_missing_timestamp_makes_history_untimed():
    rows = [(0, 1, 3.0, None), (0, 0, 3.0, 5)]
    s = InMemoryUserStore.from_events(events(rows), ITEMS).get(0)
    assert s.timestamps is None and s.items.tolist() == [0, 1]  # untimed event sorts last


def test_explicit_profile_is_unioned(store):
    store.set_profile(0, disliked_genres=["Drama"], max_maturity="PG-13", region="US")
    s = store.get(0)
    assert s.disliked_genres == {"Horror", "Drama"}
    assert s.profile["max_maturity"] == "PG-13" and s.profile["region"] == "US"
    store.set_profile(1, disliked_genres={"Comedy"})
    assert store.get(1).disliked_genres == {"Comedy"}


def test_unknown_profile_field_refused(store):
    with pytest.raises(RecsysError, match="Unknown profile field"):
        store.set_profile(0, favourite_colour="red")


def test_append_updates_history_and_flips_dislike(store):
    before = store.get(2)
    store.append(2, 5, 1.5, 40)
    after = store.get(2)
    assert after.items.tolist() == [0, 3, 4, 5]
    assert after.timestamps.tolist() == [10, 20, 30, 40]
    assert after.disliked_genres == {"Horror"}
    assert before.items.tolist() == [0, 3, 4]  # old snapshot untouched
    store.append(2, 3, None, None)
    assert np.isnan(store.get(2).ratings[-1]) and store.get(2).timestamps is None


def test_append_new_user_and_bad_item(store):
    store.append(7, 2, 4.0, 100)
    s = store.get(7)
    assert s.user_idx == 7 and s.items.tolist() == [2] and s.timestamps.tolist() == [100]
    with pytest.raises(RecsysError, match="out of range"):
        store.append(7, 6, 4.0, 101)


def test_history_round_trip(store):
    frame = events()
    rows = frame[frame["user_idx"] == 0].sort_values("timestamp")
    expected = UserHistory.from_frame(rows, 0)
    got = store.get(0).history()
    assert got.user_idx == 0
    np.testing.assert_array_equal(got.items, expected.items)
    np.testing.assert_array_equal(got.ratings, expected.ratings)
    np.testing.assert_array_equal(got.timestamps, expected.timestamps)


def test_synthetic_dataset_loads(tmp_path):
    from recsys.data import load_dataset

    ds = load_dataset("synthetic", root=str(tmp_path), n_users=40, n_items=30, n_events=600,
                      seed=3)
    store = InMemoryUserStore.from_events(ds.interactions, ds.items_by_index())
    inter = ds.interactions
    assert len(store) == inter["user_idx"].nunique()
    u = int(inter["user_idx"].iloc[0])
    assert sorted(store.get(u).items.tolist()) == sorted(
        inter.loc[inter["user_idx"] == u, "item_idx"].tolist())
