"""``SyntheticConfig``: the size and shape of a synthetic dataset, and its validation.

A module of its own because every other part (catalog, users, events, writer) reads the config,
and the command line and ``data=synthetic`` build one before anything is drawn: ``validate``
rejects every nonsensical setting up front, before a file is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from recsys import RecsysError
from recsys.data.schema import EVENT_TYPES


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of a synthetic dataset. Defaults give a 500k-event set in a few seconds."""

    n_users: int = 10_000
    n_items: int = 2_000
    n_events: int = 500_000  # exact total; users' activity splits it
    n_genres: int = 20
    popularity_exponent: float = 1.0  # item weight ~ rank ** -exponent (0 = uniform)
    genre_concentration: float = 0.3  # mean Dirichlet alpha per genre; small = focused users
    mean_session_length: float = 8.0  # events per session (geometric)
    session_genre_stickiness: float = 0.5  # chance an event keeps its session's genre
    mean_event_gap_s: float = 60.0  # seconds between events of a session (exponential)
    play_share: float = 0.6
    click_share: float = 0.25
    rating_share: float = 0.1
    search_share: float = 0.05
    activity_sigma: float = 1.0  # lognormal sigma of user activity: 0 = every user alike
    start_timestamp: int = 1_704_067_200  # 2024-01-01T00:00:00Z
    time_span_days: float = 365.0
    seed: int = 0
    chunk_users: int = 100_000  # users per part file; bounds per-user arrays
    batch_events: int = 500_000  # events materialised at once; bounds per-event arrays

    @property
    def n_chunks(self) -> int:
        return -(-self.n_users // self.chunk_users)

    def type_shares(self) -> np.ndarray:
        """Shares in ``EVENT_TYPES`` order, the order of the event_type dictionary codes."""
        by_name = {"rating": self.rating_share, "play": self.play_share,
                   "click": self.click_share, "search": self.search_share}
        return np.array([by_name[t] for t in EVENT_TYPES], dtype=np.float64)

    def validate(self) -> SyntheticConfig:
        """Raise a RecsysError naming every nonsensical setting, before any file is touched."""
        problems = []
        for name in ("n_users", "n_items", "n_events", "n_genres", "chunk_users", "batch_events"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        for name in ("seed", "start_timestamp"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                problems.append(f"{name} must be a non-negative integer, got {value!r}")
        floats = [f.name for f in fields(self) if f.type in ("float", float)]
        bad_float = {n for n in floats if not _is_real(getattr(self, n))}
        problems += [f"{n} must be a finite number, got {getattr(self, n)!r}" for n in bad_float]
        checks = [
            ("popularity_exponent", lambda v: v >= 0, "must be >= 0"),
            ("genre_concentration", lambda v: v > 0, "must be > 0"),
            ("mean_session_length", lambda v: v >= 1, "must be >= 1"),
            ("session_genre_stickiness", lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
            ("mean_event_gap_s", lambda v: v >= 0, "must be >= 0"),
            ("activity_sigma", lambda v: v >= 0, "must be >= 0"),
            ("time_span_days", lambda v: v > 0, "must be > 0"),
        ]
        for name, ok, rule in checks:
            value = getattr(self, name)
            if name not in bad_float and not ok(value):
                problems.append(f"{name} {rule}, got {value!r}")
        share_names = ("play_share", "click_share", "rating_share", "search_share")
        if not bad_float.intersection(share_names):
            shares = {n: getattr(self, n) for n in share_names}
            total = sum(shares.values())
            if min(shares.values()) < 0 or abs(total - 1.0) > 1e-6:
                problems.append(f"event type shares must be >= 0 and sum to 1, got {shares} "
                                f"(sum {total:g})")
        if _is_int(self.n_genres) and _is_int(self.n_items) and self.n_genres > self.n_items > 0:
            problems.append(f"n_genres ({self.n_genres}) cannot exceed n_items ({self.n_items}): "
                            "every genre needs a title")
        if problems:
            raise RecsysError("invalid synthetic config: " + "; ".join(problems))
        return self


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return False
    return bool(np.isfinite(value))
