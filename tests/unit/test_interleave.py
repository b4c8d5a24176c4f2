"""Team-Draft Interleaving: the draft's invariants, click credit, and the per-user verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.experiments import interleave as il
from recsys.experiments.interleave import (
    Interleaved,
    Preference,
    credit,
    draft_seed,
    outcome,
    preference,
    team_draft,
    user_preference,
)


def _random_lists(rng: np.random.Generator) -> tuple[list[int], list[int], int]:
    """Two lists of random lengths drawn from a small pool (so they overlap), and an n."""
    pool = 30
    a = rng.permutation(pool)[: rng.integers(0, 16)].tolist()
    b = rng.permutation(pool)[: rng.integers(0, 16)].tolist()
    return a, b, int(rng.integers(0, 25))


CASES = [(_random_lists(np.random.default_rng(i)), i) for i in range(300)]


def _left(lst: list[int], placed: list[int]) -> bool:
    return any(x not in placed for x in lst)


@pytest.mark.parametrize("n", [0, 1, 5, 10])
def test_result_is_frozen_and_sized(n: int) -> None:
    out = team_draft(list(range(10)), list(range(10, 20)), n, seed=1)
    assert isinstance(out, Interleaved)
    assert len(out.items) == len(out.teams) == n
    with pytest.raises(AttributeError):
        out.items = []  # type: ignore[misc]


def test_slots_credited_items_unique_and_from_their_team() -> None:
    for (a, b, n), seed in CASES:
        out = team_draft(a, b, n, seed)
        assert len(out.items) == len(out.teams) <= n
        assert len(set(out.items)) == len(out.items)
        assert set(out.teams) <= {0, 1}
        for item, team in zip(out.items, out.teams, strict=True):
            assert item in (a, b)[team]


def test_each_pick_is_the_team_s_highest_ranked_unplaced_item() -> None:
    for (a, b, n), seed in CASES:
        out = team_draft(a, b, n, seed)
        for k, (item, team) in enumerate(zip(out.items, out.teams, strict=True)):
            mine = (a, b)[team]
            assert item == next(x for x in mine if x not in out.items[:k])


def test_each_arm_s_relative_order_is_preserved() -> None:
    for (a, b, n), seed in CASES:
        out = team_draft(a, b, n, seed)
        for team, lst in ((0, a), (1, b)):
            ranks = [lst.index(x) for x, t in zip(out.items, out.teams, strict=True) if t == team]
            assert ranks == sorted(ranks)


def test_stops_at_n_or_when_both_lists_are_exhausted() -> None:
    for (a, b, n), seed in CASES:
        out = team_draft(a, b, n, seed)
        assert len(out.items) == min(n, len(set(a) | set(b)))


def test_pick_counts_stay_balanced_while_both_lists_have_items() -> None:
    for (a, b, n), seed in CASES:
        out = team_draft(a, b, n, seed)
        counts = [0, 0]
        for k, team in enumerate(out.teams):
            if not (_left(a, out.items[:k]) and _left(b, out.items[:k])):
                break  # from here on one team may fill the rest alone
            counts[team] += 1
            assert abs(counts[0] - counts[1]) <= 1


def test_first_pick_goes_to_a_about_half_the_time() -> None:
    a, b = list(range(10)), list(range(10, 20))
    first = [team_draft(a, b, 10, draft_seed(f"req-{i}")).teams[0] for i in range(1000)]
    assert 0.45 <= first.count(0) / 1000 <= 0.55


def test_identical_lists_keep_the_list_and_split_credit_evenly() -> None:
    lst = [7, 3, 9, 1, 4, 8, 2, 6, 5, 0]
    a_first = 0
    for seed in range(400):
        out = team_draft(lst, lst, 10, seed)
        assert out.items == lst
        assert credit(out.teams, range(10)) == (5, 5)  # every slot clicked: a 5-5 split
        a_first += out.teams[0] == 0
    assert 0.4 <= a_first / 400 <= 0.6  # and the top slot is A's about half the time


def test_disjoint_lists_take_the_top_of_both() -> None:
    a, b = list(range(100, 110)), list(range(200, 210))
    for seed in range(50):
        out = team_draft(a, b, 6, seed)
        assert sorted(out.items) == sorted(a[:3] + b[:3])
        assert out.teams.count(0) == out.teams.count(1) == 3
    odd = team_draft(a, b, 5, seed=3)
    k = odd.teams.count(0)
    assert k in (2, 3) and sorted(odd.items) == sorted(a[:k] + b[: 5 - k])


def test_shared_items_are_picked_once() -> None:
    out = team_draft([1, 2, 3, 4], [2, 1, 5, 6], 10, seed=0)
    assert sorted(out.items) == [1, 2, 3, 4, 5, 6]


def test_a_short_list_is_filled_by_the_other() -> None:
    a, b = [1, 2], list(range(10, 20))
    for seed in range(20):
        out = team_draft(a, b, 8, seed)
        assert len(out.items) == 8 and out.teams.count(0) == 2
        assert out.items[-4:] == [12, 13, 14, 15] and out.teams[-4:] == [1] * 4


@pytest.mark.parametrize("empty_first", [True, False])
def test_an_empty_list_leaves_the_other(empty_first: bool) -> None:
    full = [5, 4, 3, 2, 1]
    a, b = ([], full) if empty_first else (full, [])
    out = team_draft(a, b, 4, seed=11)
    assert out.items == [5, 4, 3, 2]
    assert out.teams == [1 if empty_first else 0] * 4
    assert team_draft([], [], 5, seed=0) == Interleaved([], [])


def test_n_zero_is_empty_and_negative_n_rejected() -> None:
    assert team_draft([1, 2], [3, 4], 0, seed=0) == Interleaved([], [])
    with pytest.raises(ValueError):
        team_draft([1], [2], -1, seed=0)


def test_numpy_items_come_back_as_ints() -> None:
    out = team_draft(np.array([3, 1]), np.array([2, 1]), 3, seed=0)
    assert all(type(x) is int for x in out.items)
    assert sorted(out.items) == [1, 2, 3]


def test_same_seed_same_draft_and_seeds_differ() -> None:
    a, b = list(range(20)), list(range(19, -1, -1))
    assert team_draft(a, b, 10, seed=42) == team_draft(a, b, 10, seed=42)
    drafts = {tuple(team_draft(a, b, 10, seed=s).teams) for s in range(20)}
    assert len(drafts) > 1


def test_draft_seed_is_stable_and_distinct() -> None:
    # Hard-coded: a change of hash (or of the f"{salt}:{request_id}" key) breaks the replay
    # of every logged draft, so it must break this test too.
    assert draft_seed("req-1") == 568158552461749074
    assert draft_seed("req-1", salt="exp") == 13236474056797410150
    assert draft_seed("req-42", salt="ease_vs_ranker") == 11992134594338063024
    seeds = {draft_seed(f"req-{i}") for i in range(1000)}
    assert len(seeds) == 1000
    assert all(0 <= s < 2**64 for s in seeds)
    assert draft_seed("req-1", salt="a") != draft_seed("req-1", salt="b")


def test_credit_on_a_hand_made_case() -> None:
    teams = [0, 1, 1, 0, 1]
    assert credit(teams, [0, 2]) == (1, 1)
    assert credit(teams, [1, 2, 4]) == (0, 3)
    assert credit(teams, [3, 3, 3, 0]) == (2, 0)  # a slot clicked twice counts once
    assert credit(teams, [-1, 5, 99, 4]) == (0, 1)  # outside the list: ignored
    assert credit(teams, []) == (0, 0)
    assert credit([], [0, 1]) == (0, 0)


def test_outcome() -> None:
    assert outcome(2, 1) == 1
    assert outcome(0, 3) == -1
    assert outcome(2, 2) == 0
    assert outcome(0, 0) == 0


def test_user_preference_with_zeros() -> None:
    got = user_preference(np.array([0, 3, 1, 2, 0]), np.array([0, 1, 1, 0, 4]))
    assert got == pytest.approx([0.0, 0.5, 0.0, 1.0, -1.0])
    assert user_preference(np.array([], dtype=int), np.array([], dtype=int)).size == 0
    with pytest.raises(ValueError):
        user_preference(np.array([1, 2]), np.array([1]))
    with pytest.raises(ValueError):
        user_preference(np.array([-1]), np.array([1]))


def test_preference_hand_made() -> None:
    ca = np.array([1] * 9 + [0] + [0] * 5)
    cb = np.array([0] * 9 + [1] + [0] * 5)
    p = preference(ca, cb)
    assert isinstance(p, Preference)
    assert (p.users, p.wins, p.ties, p.losses) == (15, 9, 5, 1)
    assert p.delta == pytest.approx(8 / 15)
    assert p.sign_p == pytest.approx(2 * 11 / 1024)  # 2 * P(X <= 1), X ~ Bin(10, 1/2)
    assert p.ci_low <= p.delta <= p.ci_high
    assert preference(ca, cb) == p  # the bootstrap is seeded
    with pytest.raises(AttributeError):
        p.delta = 0.0  # type: ignore[misc]


def test_preference_edge_cases() -> None:
    none = preference(np.array([0, 0]), np.array([0, 0]))
    assert (none.users, none.ties, none.sign_p) == (2, 2, 1.0)
    assert none.delta == none.ci_low == none.ci_high == 0.0
    empty = preference(np.array([]), np.array([]))
    assert empty.users == 0 and empty.sign_p == 1.0 and math.isnan(empty.delta)
    with pytest.raises(ValueError):
        preference(np.array([1]), np.array([0]), alpha=0.0)
    with pytest.raises(ValueError):
        preference(np.array([1]), np.array([0]), n_boot=0)


def test_bootstrap_chunks_do_not_change_the_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    ca, cb = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    whole = preference(ca, cb, n_boot=500, seed=3)
    monkeypatch.setattr(il, "_BOOT_CHUNK", 1000)  # 5 resamples per chunk
    assert preference(ca, cb, n_boot=500, seed=3) == whole
    wider = preference(ca, cb, alpha=0.01, n_boot=500, seed=3)
    assert wider.ci_low <= whole.ci_low and wider.ci_high >= whole.ci_high


def test_bootstrap_ci_has_the_normal_width() -> None:
    # 2000 users preferring A (+1) with probability 0.6, else B (-1): the mean's standard
    # error is sd / sqrt(n), so a 95% percentile CI spans about 2 * 1.96 standard errors.
    pref = np.where(np.random.default_rng(8).random(2000) < 0.6, 1, -1)
    ca, cb = (pref > 0).astype(int), (pref < 0).astype(int)
    p = preference(ca, cb, n_boot=4000)
    width = 2 * 1.959964 * pref.std() / np.sqrt(pref.size)
    assert p.ci_high - p.ci_low == pytest.approx(width, rel=0.08)
    assert p.ci_low < p.delta < p.ci_high


def _simulate(noise_a: float, noise_b: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Summed credits of 500 users, 4 impressions each, under a position-biased click model.

    Each user has a relevance in [0, 1] per item of a 60-item catalogue; an arm ranks the
    catalogue by relevance plus Gaussian noise of its scale (less noise = a better ranker);
    slot k of the merged list is examined with probability 1 / (k + 1) and clicked when
    examined with the item's relevance.
    """
    rng = np.random.default_rng(seed)
    users, per_user, n_items, n = 500, 4, 60, 10
    examine = 1.0 / np.arange(1, n + 1)
    ca, cb = np.zeros(users, dtype=int), np.zeros(users, dtype=int)
    for u in range(users):
        rel = rng.beta(0.5, 2.0, n_items)
        for i in range(per_user):
            a = np.argsort(-(rel + noise_a * rng.standard_normal(n_items)))[:n]
            b = np.argsort(-(rel + noise_b * rng.standard_normal(n_items)))[:n]
            out = team_draft(a, b, n, draft_seed(f"{u}-{i}", salt=str(seed)))
            shown = rel[out.items]
            clicks = rng.random(n) < examine[: len(shown)] * shown
            got_a, got_b = credit(out.teams, np.flatnonzero(clicks))
            ca[u] += got_a
            cb[u] += got_b
    return ca, cb


def test_simulation_finds_the_better_ranker() -> None:
    ca, cb = _simulate(noise_a=0.3, noise_b=0.45, seed=1)
    p = preference(ca, cb)
    assert p.delta > 0 and p.ci_low > 0
    assert p.wins > p.losses and p.sign_p < 0.01
    flipped = preference(cb, ca)  # the verdict is antisymmetric in the arms
    assert flipped.delta == pytest.approx(-p.delta)
    assert (flipped.wins, flipped.losses) == (p.losses, p.wins)


def test_a_a_simulation_covers_zero() -> None:
    ca, cb = _simulate(noise_a=0.3, noise_b=0.3, seed=2)
    p = preference(ca, cb)
    assert p.ci_low < 0 < p.ci_high
    assert abs(p.delta) < 0.1 and p.sign_p > 0.05
