"""Team-Draft Interleaving: merge two rankers' lists into one response and credit its clicks.

An A/B test compares arms across *different* users, so user-to-user variance swamps small
ranking differences. Interleaving shows each user both arms at once, in one merged list, and
asks which arm's items they clicked: every impression is a paired comparison. Team Draft
(Radlinski, Kurup, Joachims 2008, "How does clickthrough data reflect retrieval quality?")
builds the merged list like picking sides for a game: each round a coin flip says which team
picks first, each team adds its highest-ranked item not yet picked, and the slot is credited
to that team. The coin keeps either arm from owning the top slots, which position bias
would otherwise turn into clicks.

The pipeline, per request and then per experiment:

>>> seed = draft_seed("req-42", salt="ease_vs_ranker")  # replayable from the request id
>>> shown = team_draft([1, 2, 3], [3, 4, 5], n=4, seed=seed)
>>> shown
Interleaved(items=[1, 3, 4, 2], teams=[0, 1, 1, 0])
>>> outcome(*credit(shown.teams, clicked_positions=[0]))  # this impression: A wins
1
>>> preference(np.array([2, 1, 0]), np.array([0, 1, 0])).delta  # users' summed credits
0.3333333333333333
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# Bootstrap resamples are drawn in chunks of at most this many indices, so that the CI of a
# million-user experiment stays vectorised without allocating n_boot x users at once.
_BOOT_CHUNK = 1 << 22


def draft_seed(request_id: str, salt: str = "") -> int:
    """A 64-bit seed for a request's draft, from blake2b of ``f"{salt}:{request_id}"``.

    Why: the merged list must be reproducible from the logged request id alone (to audit a
    response, or to re-derive which team a clicked slot belonged to). ``hash()`` is salted per
    process (PYTHONHASHSEED), so it is never used here; blake2b is stable everywhere. The salt
    (the experiment's) keeps two experiments from drawing the same coins for one request.
    """
    digest = hashlib.blake2b(f"{salt}:{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class Interleaved:
    """A merged list: ``items[k]`` was shown at slot ``k``, picked by team ``teams[k]``.

    Teams are 0 for the first arm (A) and 1 for the second (B); the teams must be logged
    with the impression, since credit goes by the team of the clicked slot, not the item.
    """

    items: list[int]  # the merged list, at most n, no duplicates
    teams: list[int]  # per slot: 0 = the first arm (A), 1 = the second (B)


def team_draft(a: Sequence[int], b: Sequence[int], n: int, seed: int) -> Interleaved:
    """Merge ``a`` and ``b`` into at most ``n`` items by Team Draft (Radlinski et al. 2008).

    The team with fewer picks goes next; when both have picked equally often, a coin flip
    decides (so over requests each arm leads half the time). The picking team adds its
    highest-ranked item not already in the merged list, so an item both lists share is shown
    once, credited to whichever team took it first. A team whose list is exhausted passes its
    turn to the other, which then fills the rest. Stops at ``n`` items or when both lists are
    exhausted. Deterministic for a given seed (``numpy.random.default_rng(seed)``).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    lists = (a, b)
    items: list[int] = []
    teams: list[int] = []
    if n == 0:
        return Interleaved(items, teams)
    # One coin per slot, drawn up front: the coin of slot k is the same whatever the lists
    # are, and a single vectorised draw is cheaper than one rng call per round.
    coins = np.random.default_rng(seed).integers(0, 2, size=n)
    picked: set[int] = set()
    cursor = [0, 0]  # per team: index of its highest-ranked item not yet checked
    count = [0, 0]  # per team: picks so far
    while len(items) < n:
        for t in (0, 1):  # skip items the other team (or a duplicate) already placed
            while cursor[t] < len(lists[t]) and int(lists[t][cursor[t]]) in picked:
                cursor[t] += 1
        left = [cursor[t] < len(lists[t]) for t in (0, 1)]
        if not (left[0] or left[1]):
            break
        if count[0] != count[1]:
            team = 0 if count[0] < count[1] else 1
        else:
            team = int(coins[len(items)])
        if not left[team]:
            team = 1 - team  # an exhausted team's turn passes to the other
        item = int(lists[team][cursor[team]])
        items.append(item)
        teams.append(team)
        picked.add(item)
        count[team] += 1
        cursor[team] += 1
    return Interleaved(items, teams)


def credit(teams: Sequence[int], clicked_positions: Iterable[int]) -> tuple[int, int]:
    """Credited clicks of (A, B): a click on slot ``k`` counts for team ``teams[k]``.

    Positions outside ``[0, len(teams))`` are ignored (a click logged against a stale or
    truncated response must not index from the end), and a slot clicked twice counts once:
    Radlinski et al. (2008) count clicked results, not click events.
    """
    size = len(teams)
    slots = {int(p) for p in clicked_positions if 0 <= int(p) < size}
    b = sum(1 for p in slots if teams[p] == 1)
    return len(slots) - b, b


def outcome(credit_a: int, credit_b: int) -> int:
    """One impression's winner: +1 when A got more credited clicks, -1 when B did, else 0.

    An impression without clicks is a tie (0): it says nothing about either arm.
    """
    return int(np.sign(credit_a - credit_b))


@dataclass(frozen=True)
class Preference:
    """An experiment's verdict over users; ``delta > 0`` (and a CI above 0) favours A."""

    users: int  # users with at least one impression
    wins: int  # users whose preference favours A
    ties: int
    losses: int
    delta: float  # mean per-user preference, in [-1, 1]; > 0 favours A (nan without users)
    ci_low: float  # bootstrap (1-alpha) CI of delta over users
    ci_high: float
    sign_p: float  # two-sided sign test over users (wins vs losses, ties excluded)


def user_preference(credit_a: np.ndarray, credit_b: np.ndarray) -> np.ndarray:
    """Per-user preference ``(ca - cb) / (ca + cb)``, 0 where the user has no credited click.

    Inputs are arrays over users of summed credited clicks. Why per user, not per impression:
    impressions of one user are correlated, and heavy users would otherwise dominate; the
    normalised difference weighs each user equally and lies in [-1, 1] (Chapelle et al. 2012,
    "Large-scale validation and analysis of interleaved search evaluation", aggregate
    per query the same way).
    """
    ca = np.asarray(credit_a, dtype=np.float64)
    cb = np.asarray(credit_b, dtype=np.float64)
    if ca.shape != cb.shape:
        raise ValueError(f"credit arrays differ in shape: {ca.shape} vs {cb.shape}")
    if (ca < 0).any() or (cb < 0).any():
        raise ValueError("credited clicks must be >= 0")
    total = ca + cb
    out = np.zeros_like(total)
    np.divide(ca - cb, total, out=out, where=total > 0)
    return out


def _bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` means of resamples (with replacement) of ``values``, drawn in chunks."""
    rng = np.random.default_rng(seed)
    size = values.size
    rows = max(1, _BOOT_CHUNK // size)
    means = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, size, size=(stop - start, size))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def preference(
    credit_a: np.ndarray,
    credit_b: np.ndarray,
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> Preference:
    """Aggregate users' summed credits into wins/ties/losses, ``delta``, its CI and a sign test.

    ``credit_a``/``credit_b`` hold one entry per user with at least one impression (a user
    with impressions but no clicks is a tie). ``delta`` is the mean of :func:`user_preference`
    with a percentile bootstrap CI over users (users are the independent unit); the sign test
    (``scipy.stats.binomtest(wins, wins + losses, 0.5)``, two-sided) asks whether more users
    prefer A than B, ignoring magnitude, as in Chapelle et al. (2012). Without users, delta and
    the CI are nan and ``sign_p`` is 1.0.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    pref = user_preference(credit_a, credit_b).ravel()
    users = int(pref.size)
    wins = int((pref > 0).sum())
    losses = int((pref < 0).sum())
    ties = users - wins - losses
    if wins + losses == 0:
        sign_p = 1.0
    else:
        from scipy.stats import binomtest  # lazy: the request path imports this module

        sign_p = float(binomtest(wins, wins + losses, 0.5).pvalue)
    if users == 0:
        nan = float("nan")
        return Preference(0, 0, 0, 0, nan, nan, nan, sign_p)
    means = _bootstrap_means(pref, n_boot, seed)
    ci_low, ci_high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Preference(
        users=users,
        wins=wins,
        ties=ties,
        losses=losses,
        delta=float(pref.mean()),
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        sign_p=sign_p,
    )
