"""The user simulator's click model and records: taste and position drive clicks, a user's
propensity persists, and what it writes is what the report's analysis reads."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.ab.simulator import ClickModel, HeldOut, Reaction, SimSettings, engagement_records
from recsys.experiments.analysis import collect, user_table
from recsys.experiments.exposures import exposure_record
from recsys.experiments.settings import ArmConfig, ExperimentConfig

INDEX = {1000 + i: i for i in range(20)}  # raw id -> item index


def model(**kw) -> ClickModel:
    held = HeldOut(pd.DataFrame({"user_idx": [0] * 5, "item_idx": [0, 1, 2, 3, 4],
                                 "rating": [5.0, 5.0, 4.0, 2.0, 1.0]}))
    return ClickModel(SimSettings(**kw), held)


def clicks(m: ClickModel, items: list[int], n: int = 4000, propensity: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = np.zeros(len(items))
    for _ in range(n):
        for r in m.react(0, items, INDEX, rng, propensity):
            out[r.position] += 1
    return out / n


def test_held_out_positives_are_clicked_more_and_the_top_more_than_the_bottom():
    m = model(examine_decay=0.0)  # every slot examined: taste alone
    rate = clicks(m, [1000, 1003, 1010])  # a positive, a disliked rated title, unrated
    assert rate[0] > 0.45 and 0.1 < rate[1] < 0.2 and rate[2] < 0.04
    top_bottom = clicks(model(), [1000, *range(1005, 1013), 1001])  # positives at 0 and 9
    assert top_bottom[0] > 4 * top_bottom[9]


def test_propensity_scales_clicks_and_plays_follow_taste():
    m = model(examine_decay=0.0)
    low, high = clicks(m, [1000], propensity=0.5), clicks(m, [1000], propensity=1.8)
    assert high[0] > 1.6 * low[0]
    rng = np.random.default_rng(1)
    plays = [r for _ in range(2000) for r in m.react(0, [1000, 1004], INDEX, rng) if r.played]
    liked = [r.watch_fraction for r in plays if r.item_id == 1000]
    disliked = [r.watch_fraction for r in plays if r.item_id == 1004]
    assert np.mean(liked) > 0.8 > 0.4 > np.mean(disliked)


def test_the_records_it_writes_are_what_the_analysis_reads():
    exp = ExperimentConfig(name="e", arms=[ArmConfig("control"), ArmConfig("t")])
    result = {"request_id": "r1", "user_id": 7, "surface": "home", "version": "v",
              "items": [{"item_id": 1000}, {"item_id": 1001}], "degraded": [],
              "experiments": [{"experiment": "e", "arm": "t", "kind": "ab"}]}
    events = engagement_records(7, "r1", [Reaction(1, 1001, True, 0.9)], 5_000, 3600.0)
    assert [e["type"] for e in events] == ["click", "play"]
    table = user_table(collect([exposure_record(result, 5_000, 12.0), *events], exp))
    row = table.loc[7]
    assert (row["arm"], row["exposures"], row["clicks"], row["plays"], row["completes"]) == (
        "t", 1, 1, 1, 1)
    assert row["watch_s"] == 0.9 * 3600.0
