"""CandidateGenerator: quotas, dedup with every provenance, failure isolation, order."""

import logging

import numpy as np

from recsys.candidates.cowatch import CoWatch
from recsys.candidates.generator import CandidateGenerator, SourceSpec
from recsys.candidates.types import Context, SourceResult, UserHistory
from tests.unit.oracle import block_data


class Fixed:
    """A source that always answers the same list (or raises)."""

    def __init__(self, name, items, fail=False):
        self.name, self.items, self.fail = name, np.array(items), fail

    def candidates(self, user, context, k):
        if self.fail:
            raise RuntimeError("index offline")
        items = self.items[:k]
        return SourceResult(self.name, items, np.linspace(1, 0, len(items)).astype(np.float32),
                            np.full(len(items), 7))


USER = UserHistory(1, np.array([9]))


def test_quota_counts_new_items_and_dedup_keeps_provenance():
    gen = CandidateGenerator({
        "a": SourceSpec(Fixed("a", [1, 2, 3, 4]), quota=2),
        "b": SourceSpec(Fixed("b", [2, 9, 5, 6, 8]), quota=2),
    })
    out = gen.generate(USER, Context())
    assert sorted(out.items.tolist()) == [1, 2, 5, 6]  # 9 is history; b's 2 is a duplicate
    two = next(c for c in out.candidates if c.item == 2)
    assert two.sources == ["a", "b"] and [p.rank for p in two.provenance] == [1, 0]
    assert all(p.because == 7 for c in out.candidates for p in c.provenance)
    assert gen.max_candidates == 4


def test_order_is_reciprocal_rank_fusion():
    gen = CandidateGenerator({
        "a": SourceSpec(Fixed("a", [1, 2, 3, 4]), quota=4),
        "b": SourceSpec(Fixed("b", [11, 3]), quota=2),
    })
    # 3 is found by both (1/62 + 1/61) and leads; then rank-0 items, a's before b's (stable)
    assert gen.generate(USER, Context()).items.tolist() == [3, 1, 11, 2, 4]
    weighted = CandidateGenerator({
        "a": SourceSpec(Fixed("a", [1, 2]), quota=2, weight=0.1),
        "b": SourceSpec(Fixed("b", [11, 12]), quota=2),
    })
    assert weighted.generate(USER, Context()).items.tolist() == [11, 12, 1, 2]


def test_a_failing_source_contributes_nothing_and_is_logged(caplog):
    gen = CandidateGenerator({
        "broken": SourceSpec(Fixed("broken", [], fail=True), quota=5),
        "ok": SourceSpec(Fixed("ok", [3, 4]), quota=5),
    })
    with caplog.at_level(logging.WARNING):
        out = gen.generate(USER, Context())
    assert out.items.tolist() == [3, 4] and out.failed_sources == ["broken"]
    assert "broken failed" in caplog.text
    assert set(gen.timings_ms) == {"broken", "ok"}


def test_merged_set_recalls_every_held_out_item_on_oracle_data():
    train, test, *_ = block_data()
    gen = CandidateGenerator({"cowatch": SourceSpec(CoWatch("ease", l2=1.0).fit(train), 3),
                              "ends": SourceSpec(Fixed("ends", [0, 39]), 2)})
    for u in range(train.shape[0]):
        out = gen.generate(UserHistory(u, train[u].indices), Context())
        assert set(test[u].indices) <= set(out.items.tolist())
