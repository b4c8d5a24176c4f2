"""CandidateGenerator: quotas, dedup with every provenance, failure isolation, order."""

import logging

import numpy as np

from recsys.candidates.cowatch import CoWatch
from recsys.candidates.generator import CandidateGenerator, SourceSpec
from recsys.candidates.types import CandidateSet, Context, Provenance, SourceResult, UserHistory
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
    timings: dict[str, float] = {}
    with caplog.at_level(logging.WARNING):
        out = gen.generate(USER, Context(), timings)
    assert out.items.tolist() == [3, 4] and out.failed_sources == ["broken"]
    assert "broken failed" in caplog.text
    assert set(timings) == {"broken", "ok"}


def test_merged_set_recalls_every_held_out_item_on_oracle_data():
    train, test, *_ = block_data()
    gen = CandidateGenerator({"cowatch": SourceSpec(CoWatch("ease", l2=1.0).fit(train), 3),
                              "ends": SourceSpec(Fixed("ends", [0, 39]), 2)})
    for u in range(train.shape[0]):
        out = gen.generate(UserHistory(u, train[u].indices), Context())
        assert set(test[u].indices) <= set(out.items.tolist())


class Random:
    """A source answering a random list (repeats across sources, history titles included)."""

    def __init__(self, name, rng, n_items=60):
        self.name, self.rng, self.n_items = name, rng, n_items

    def candidates(self, user, context, k):
        items = self.rng.choice(self.n_items, size=min(k, self.n_items), replace=False)
        return SourceResult(self.name, items.astype(np.int64),
                            self.rng.normal(size=len(items)).astype(np.float32),
                            self.rng.integers(-1, self.n_items, len(items)))


class Recording:
    """Keeps the answers a source gave the generator, for the oracle."""

    def __init__(self, name, src, answers):
        self.name, self.src, self.answers = name, src, answers

    def candidates(self, user, context, k):
        self.answers[self.name] = self.src.candidates(user, context, k)
        return self.answers[self.name]


def loop_merge(gen, user, answers):
    """The merge rules written as the obvious loop over titles: the oracle for the array
    merge (provenance per title, quotas of new titles, weighted RRF, stable ties)."""
    merged, fused, seen = {}, {}, set(np.asarray(user.items).tolist())
    for name, res in answers.items():
        spec, added, rank = gen.sources[name], 0, -1
        for item, score, because in zip(res.items.tolist(), res.scores.tolist(),
                                        res.because.tolist(), strict=True):
            if item in seen or item < 0:
                continue
            rank += 1  # among the titles the user has not seen, as the training lists rank
            if rank >= int(spec.quota * spec.overfetch):
                break
            if item in merged:
                merged[item].append(Provenance(name, score, rank, because))
            elif added < spec.quota:
                merged[item], fused[item] = [Provenance(name, score, rank, because)], 0.0
                added += 1
            else:
                continue
            fused[item] += spec.weight / (60 + rank)
    return [(i, merged[i]) for i in sorted(merged, key=lambda i: -fused[i])]


def test_array_merge_equals_the_loop_over_titles():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        sources = {f"s{j}": Random(f"s{j}", rng) for j in range(int(rng.integers(1, 5)))}
        specs = {name: SourceSpec(src, quota=int(rng.integers(1, 25)), overfetch=1.5,
                                  weight=float(rng.choice([0.5, 1.0, 2.0])))
                 for name, src in sources.items()}
        user = UserHistory(3, rng.choice(60, size=int(rng.integers(0, 10)), replace=False))
        answers = {}
        gen = CandidateGenerator({n: SourceSpec(Recording(n, s.source, answers), s.quota,
                                                s.overfetch, s.weight)
                                  for n, s in specs.items()})
        got = gen.generate(user, Context())
        want = loop_merge(gen, user, answers)
        assert [(c.item, c.provenance) for c in got.candidates] == want
        assert got.items.tolist() == [i for i, _ in want]


def test_candidate_set_columns_round_trip_and_take():
    gen = CandidateGenerator({
        "a": SourceSpec(Fixed("a", [1, 2, 3, 4]), quota=4),
        "b": SourceSpec(Fixed("b", [11, 3]), quota=2),
    })
    out = gen.generate(USER, Context())
    again = CandidateSet.from_candidates(out.candidates, out.sources)
    assert again.candidates == out.candidates
    sub = out.take(np.array([2, 0]))
    assert [c.item for c in sub.candidates] == [out.items[2], out.items[0]]
    assert sub.candidates == [out.candidates[2], out.candidates[0]]
    assert len(CandidateGenerator({}).generate(USER, Context())) == 0


class Positives:
    """A source fitted on positives only: answers its view's history back, best first."""

    interactions = "positives"

    def __init__(self):
        self.asked = []

    def candidates(self, user, context, k):
        self.asked.append((user.items.tolist(), k))
        items = np.array([30, 31, 5, 32, 33, 34, 35], np.int64)[:k]  # 5: seen, not positive
        return SourceResult("pos", items, np.linspace(1, 0, len(items)).astype(np.float32),
                            np.full(len(items), -1))  # credits come later (explain=False)

    def credit(self, user, items):
        self.asked.append((user.items.tolist(), "credit"))
        return np.full(len(items), user.items[0], np.int64)


def test_a_positives_source_scores_from_positive_events_and_ranks_unseen_titles():
    """Offline, a source fitted on positives scored each user's positive events (rating >=
    threshold) and its lists left out everything the user had seen; online it must see the
    same events, and the merge must rank its answer the same way."""
    src, plain = Positives(), Fixed("plain", [40, 41])
    gen = CandidateGenerator({"pos": SourceSpec(src, quota=3, overfetch=1.0),
                              "plain": SourceSpec(plain, quota=2)}, positive_threshold=4.0)
    user = UserHistory(1, np.array([7, 5, 8, 9]), np.array([5.0, 2.0, np.nan, 4.0], np.float32))
    out = gen.generate(user, Context(explain=False))
    # positives only (5 rated 2, 8 unrated are not); asked for 3 + the 2 seen it won't exclude
    assert src.asked[0] == ([7, 9], 5)
    pos_items = [c.item for c in out.candidates if "pos" in c.sources]
    assert pos_items == [30, 31, 32]  # 5 is seen: dropped, and the list stays 3 deep
    assert {c.item: c.provenance[0].rank for c in out.candidates
            if "pos" in c.sources} == {30: 0, 31: 1, 32: 2}
    credited = gen.credit(user, out.candidates)
    assert src.asked[-1] == ([7, 9], "credit")
    assert all(p.because == 7 for c in credited for p in c.provenance if p.source == "pos")
    # no threshold (bundles that did not record one): the whole history, as before
    old = CandidateGenerator({"pos": SourceSpec(Positives(), quota=3, overfetch=1.0)})
    assert old.view(user, src)[0] is user
