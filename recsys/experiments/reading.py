"""Reading the log's records for one experiment: the one Python pass of ``analysis.collect``.

Every check is a cheap type test, the exact type first (a log of a million records is read in
seconds); a record that fails one raises ``Bad`` with the reason it is counted under, so a bad
record is skipped and counted, never fatal.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

from recsys.experiments.assignment import INTERLEAVED
from recsys.experiments.settings import ExperimentConfig, ExperimentKind

ENGAGEMENTS = ("play", "click")
EVENT_COLUMNS = ["user_id", "ts_ms", "item_id", "play", "watch_fraction", "duration_s",
                 "request_id"]


class Bad(Exception):
    """A record that cannot be read; its message is the reason it is counted under."""


def _id(value: Any, kind: str, name: str) -> int:
    """A non-negative integer id (a bool or 5.0 is none); the exact type first, at C speed."""
    if type(value) is int or (isinstance(value, Integral) and not isinstance(value, bool)):
        if value >= 0:
            return int(value)
    raise Bad(f"{kind}: missing or bad {name}")


def _number(value: Any) -> float | None:
    if type(value) in (int, float) or (isinstance(value, Real) and not isinstance(value, bool)):
        return float(value) if math.isfinite(value) else None
    return None


def _time(rec: dict, kind: str) -> int:
    ts = _number(rec.get("ts_ms"))
    if ts is None:
        raise Bad(f"{kind}: missing or bad ts_ms")
    return int(ts)


def _exposure(rec: dict, cfg: ExperimentConfig, teams_of: dict[Any, str]) -> tuple | None:
    """The exposure's row, or None when it is not one of this experiment's."""
    entries = rec.get("experiments")
    if entries is not None and not isinstance(entries, list):
        raise Bad("exposure: experiments not a list")
    entry = next((e for e in entries or () if isinstance(e, dict)
                  and e.get("experiment") == cfg.name), None)
    if entry is None:
        return None
    items, request_id, arm = rec["items"], rec.get("request_id"), entry.get("arm")
    if not isinstance(items, list):
        raise Bad("exposure: items not a list")
    if not (set(map(type, items)) <= {int} and min(items, default=0) >= 0):  # at C speed
        items = [_id(item, "exposure", "item_id") for item in items]
    user, ts = _id(rec.get("user_id"), "exposure", "user_id"), _time(rec, "exposure")
    if not isinstance(request_id, str) or not request_id:
        raise Bad("exposure: missing or bad request_id")
    interleave = cfg.kind == ExperimentKind.interleave
    if not isinstance(arm, str) or arm not in ({INTERLEAVED} if interleave else teams_of):
        raise Bad("exposure: unknown arm")
    teams = None
    if interleave:  # an A/B exposure's teams belong to another layer's interleave experiment
        raw = rec.get("teams")
        try:
            teams = [None if t is None else teams_of[t] for t in raw]
        except (KeyError, TypeError):
            raise Bad("exposure: bad teams") from None
        if not isinstance(raw, list) or len(teams) != len(items):
            raise Bad("exposure: bad teams")
    latency = _number(rec.get("latency_ms"))
    surface = rec.get("surface") if isinstance(rec.get("surface"), str) else None
    return (request_id, user, ts, arm, surface, list(items), teams,
            math.nan if latency is None else latency)


def _engagement(rec: dict, kind: str) -> tuple:
    """A play's or click's row (EVENT_COLUMNS)."""
    user, ts = _id(rec.get("user_id"), kind, "user_id"), _time(rec, kind)
    item, request_id = _id(rec.get("item_id"), kind, "item_id"), rec.get("request_id")
    if request_id is not None and not isinstance(request_id, str):
        raise Bad(f"{kind}: bad request_id")
    fraction = duration = math.nan
    if kind == "play":
        fraction = _number(rec.get("watch_fraction"))
        if fraction is None or not 0.0 <= fraction <= 1.0:
            raise Bad("play: missing or bad watch_fraction")
        if "duration_s" in rec and not (duration := _number(rec["duration_s"]) or -1.0) > 0:
            raise Bad("play: bad duration_s")
    return user, ts, item, kind == "play", fraction, duration, request_id


def read(records: Iterable[dict], cfg: ExperimentConfig, teams_of: dict[Any, str],
          skipped: Counter[str], others: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """The one pass: the experiment's exposure rows and every play's and click's row (run with
    the cyclic collector off: it would walk every live record again, for no cycles)."""
    shown: list[tuple] = []
    events: list[tuple] = []
    requests: set[str] = set()
    for rec in records:
        try:
            if not isinstance(rec, dict):
                raise Bad("not a dict")
            kind = rec.get("type")
            if kind in ENGAGEMENTS:
                events.append(_engagement(rec, kind))
            elif kind == "impression" and "items" in rec:
                if (row := _exposure(rec, cfg, teams_of)) is None:  # a pre-period exposure
                    if type(rec.get("user_id")) is int and type(rec.get("ts_ms")) is int:
                        others.append((rec["user_id"], rec["ts_ms"]))
                    continue
                if row[0] in requests:
                    raise Bad("exposure: duplicate request_id")
                requests.add(row[0])
                shown.append(row)
        except Bad as bad:
            skipped[str(bad)] += 1
    return shown, events


