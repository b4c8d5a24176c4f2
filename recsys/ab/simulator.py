"""A user simulator that proves the experiment statistics: simulated users visit the home
surface, the real request path answers, and each user reacts to the list as a position-biased
click model driven by their held-out ratings (titles the user rated but the models never saw).

The behaviour model, per visit (every knob in ``SimSettings``):

* a user visits ``Poisson(activity * visits_per_day)`` times a day, ``activity ~ Gamma(shape,
  1/shape)`` per user, so some users are many times as active as others (what makes
  pre-experiment engagement a useful CUPED covariate, as on real traffic);
* position k (0-based) is examined with probability ``1 / (k + 1) ** examine_decay``;
* each user has a propensity ``~ Gamma(propensity_shape, 1/propensity_shape)`` that scales
  their click probabilities (capped at 1): some people watch much more than others, whatever
  is shown, which is what makes their pre-period engagement predict their engagement in the
  experiment;
* an examined title is clicked with a probability set by its held-out rating: a positive
  (>= ``positive_rating``) ``click_positive``, a rated title below it ``click_rated``, any other
  ``click_other``;
* a click becomes a play with ``play_positive`` / ``play_other``, with a watch fraction drawn
  around the held-out rating (``rating / 5``, jittered), so completions (>= 0.7) follow taste;
* during the experiment a played title joins the user's history (the watched filter and
  history sources see it), as the live store would after the play's 202; pre-period plays
  measure each user's engagement but leave their history as the models were trained on it,
  so every arm starts from the state the offline evaluation measured.

The simulator writes exactly the records the stack writes: an exposure per response
(``recsys.experiments.exposures``) and click / play events carrying its ``request_id``, so the
report's analysis runs unchanged on simulated and on real logs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys.experiments.exposures import exposure_record
from recsys.progress import progress_bar
from recsys.serving.request_path import Request, Result

DAY_MS = 86_400_000


@dataclass
class SimSettings:
    pre_days: int = 3  # days before the experiment (everyone on the control): CUPED's covariate
    days: int = 7  # experiment days
    visits_per_day: float = 0.5  # a user of average activity
    activity_shape: float = 1.0  # Gamma shape of the users' activity (1 = exponential)
    propensity_shape: float = 2.0  # Gamma shape of the users' propensity to click
    n: int = 10  # titles per home row
    examine_decay: float = 1.0
    positive_rating: float = 4.0
    click_positive: float = 0.5
    click_rated: float = 0.15
    click_other: float = 0.02
    play_positive: float = 0.8
    play_other: float = 0.3
    duration_s: float = 5400.0
    seed: int = 0
    start_ms: int = 1_800_000_000_000  # the experiment's first day (event time)


class HeldOut:
    """Each user's held-out ratings: user index -> {item index: rating}."""

    def __init__(self, test: pd.DataFrame) -> None:
        self.ratings: dict[int, dict[int, float]] = {}
        rating = test["rating"].fillna(0.0).to_numpy(np.float64)
        for u, i, r in zip(test["user_idx"].to_numpy(), test["item_idx"].to_numpy(), rating,
                           strict=True):
            self.ratings.setdefault(int(u), {})[int(i)] = float(r)

    def of(self, user_idx: int) -> dict[int, float]:
        return self.ratings.get(int(user_idx), {})


@dataclass(frozen=True)
class Reaction:
    position: int
    item_id: int
    played: bool
    watch_fraction: float


class ClickModel:
    """``react``: what one user does with one list (module doc)."""

    def __init__(self, settings: SimSettings, held_out: HeldOut) -> None:
        self.s, self.held_out = settings, held_out

    def react(self, user_idx: int, item_ids: list[int], item_index: dict[int, int],
              rng: np.random.Generator, propensity: float = 1.0) -> list[Reaction]:
        s, taste = self.s, self.held_out.of(user_idx)
        out = []
        for k, item in enumerate(item_ids):
            if rng.random() >= 1.0 / (k + 1) ** s.examine_decay:
                continue
            rating = taste.get(item_index.get(item, -1))
            positive = rating is not None and rating >= s.positive_rating
            p_click = (s.click_positive if positive
                       else s.click_rated if rating is not None else s.click_other)
            if rng.random() >= min(1.0, p_click * propensity):
                continue
            played = rng.random() < (s.play_positive if positive else s.play_other)
            base = (rating / 5.0) if rating is not None else 0.3
            fraction = float(np.clip(base + rng.normal(0.0, 0.15), 0.02, 1.0)) if played else 0.0
            out.append(Reaction(k, int(item), played, round(fraction, 3)))
        return out


def engagement_records(user_id: int, request_id: str, reactions: list[Reaction], ts_ms: int,
                       duration_s: float, surface: str = "home") -> list[dict[str, Any]]:
    """The click (and play) events of one response, as the log keeps the API's events."""
    out: list[dict[str, Any]] = []
    for n, r in enumerate(reactions):
        at = ts_ms + 1_000 * (n + 1)
        common = {"user_id": int(user_id), "item_id": r.item_id, "ts_ms": at, "ingest_ms": at,
                  "origin": "api", "request_id": request_id, "surface": surface}
        out.append({"event_id": uuid.uuid4().hex, "type": "click", **common})
        if r.played:
            out.append({"event_id": uuid.uuid4().hex, "type": "play", **common,
                        "ts_ms": at + 500, "ingest_ms": at + 500,
                        "watch_fraction": r.watch_fraction, "duration_s": duration_s})
    return out


Recommend = Callable[[Request], Result]


class Simulator:
    """Runs users through ``recommend`` (the real request path, in process) day by day.

    ``served``: the path for experiment days (``ExperimentPaths.recommend_sync``);
    ``control``: the one for pre-experiment days; ``append``: puts a play into the user
    store the path reads (``InMemoryUserStore.append``), or None to leave history alone."""

    def __init__(self, served: Recommend, control: Recommend, settings: SimSettings,
                 held_out: HeldOut, item_index: dict[int, int], user_ids: np.ndarray,
                 append: Callable[[int, int, float, int], None] | None = None) -> None:
        self.served, self.control, self.s = served, control, settings
        self.model = ClickModel(settings, held_out)
        self.item_index, self.user_ids, self.append = item_index, user_ids, append

    def run(self, users: np.ndarray, progress: bool = False) -> Iterator[dict[str, Any]]:
        """Every record of the simulation, in event-time order per day."""
        s = self.s
        rng = np.random.default_rng(s.seed)
        activity = rng.gamma(s.activity_shape, 1.0 / s.activity_shape, len(users))
        propensity = rng.gamma(s.propensity_shape, 1.0 / s.propensity_shape, len(users))
        days = range(-s.pre_days, s.days)
        for day in progress_bar(days, desc="simulated days", enabled=progress):
            recommend = self.control if day < 0 else self.served
            visits = rng.poisson(activity * s.visits_per_day)
            order = rng.permutation(np.repeat(np.arange(len(users)), visits))
            times = np.sort(rng.integers(0, DAY_MS - 60_000, len(order)))
            for slot, at in zip(order, times, strict=True):
                yield from self.visit(int(users[slot]), recommend,
                                      s.start_ms + day * DAY_MS + int(at), rng,
                                      float(propensity[slot]), remember=day >= 0)

    def visit(self, user_idx: int, recommend: Recommend, ts_ms: int,
              rng: np.random.Generator, propensity: float = 1.0, remember: bool = True
              ) -> list[dict[str, Any]]:
        user_id = int(self.user_ids[user_idx])
        request_id = uuid.uuid4().hex
        result = recommend(Request(user_id=user_id, n=self.s.n, request_id=request_id))
        items = [r.item_id for r in result.items]
        latency = sum(result.timings_ms.values())
        exposure = exposure_record(result.as_dict(), ts_ms, latency)
        reactions = self.model.react(user_idx, items, self.item_index, rng, propensity)
        if self.append is not None and remember:
            for r in reactions:
                if r.played:
                    self.append(user_idx, self.item_index[r.item_id], r.watch_fraction * 5.0,
                                ts_ms // 1000)
        return [exposure, *engagement_records(user_id, request_id, reactions, ts_ms,
                                              self.s.duration_s)]

