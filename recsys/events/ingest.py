"""The edge of ``POST /v1/events``: a batch checked event by event, the valid ones appended to
the log (durably, once per ``event_id``), the invalid ones dead-lettered and listed.

Batch contract: **valid events of a mixed batch are accepted**; each invalid one is listed by
its index in the batch, the field at fault and the reason, and kept in the dead-letter table
for an operator. Nothing is dropped silently: every event of a batch is accepted, a duplicate,
or rejected. Reasons beyond the schema's (``recsys.events.records.Event``): a title not in the
catalog (``unknown_item``), an event time more than ``future_tolerance_s`` ahead of the
server's clock (``future``), a rating outside the dataset's scale (``rating_scale``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from recsys.events.log import DeadLetter, EventLog
from recsys.events.records import EVENTS, Event, records
from recsys.events.settings import EventsConfig


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason,
                "message": self.message}


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def field_of(loc: Sequence[Any]) -> str:
    """A pydantic error location inside one event as a dotted field name."""
    return ".".join(str(p) for p in loc) or "event"


def schema_errors(items: list[Any]) -> tuple[list[Event | None], list[Rejection]]:
    """Every event parsed, or None where it is invalid, with the rejections (one per event:
    its first error). The whole batch in one pass when it is valid, the usual case."""
    try:
        return list(EVENTS.validate_python(items)), []
    except ValidationError as err:
        first: dict[int, Rejection] = {}
        for e in err.errors(include_url=False):
            loc = e["loc"]
            index = int(loc[0]) if loc and isinstance(loc[0], int) else 0
            if index not in first:
                message = e["msg"].removeprefix("Value error, ")
                first[index] = Rejection(index, field_of(loc[1:]), "invalid", message)
    parsed: list[Event | None] = [None] * len(items)
    for i, item in enumerate(items):
        if i not in first:
            parsed[i] = Event.model_validate(item)
    return parsed, [first[i] for i in sorted(first)]


class Ingest:
    """``known_item``: whether a raw title id is in the catalog (the catalog grows through
    ``POST /v1/items``); ``rating_scale``: the dataset's (min, max)."""

    def __init__(self, event_log: EventLog, cfg: EventsConfig,
                 known_item: Callable[[int], bool], rating_scale: tuple[float, float]) -> None:
        self.log, self.cfg, self.known_item = event_log, cfg, known_item
        self.rating_scale = rating_scale

    def __call__(self, items: list[Any]) -> IngestResult:
        """Check, append and dead-letter one batch of posted events (JSON values)."""
        return self.submit(*schema_errors(items), items)

    def submit(self, parsed: list[Event | None], rejected: list[Rejection],
               items: list[Any] | None = None) -> IngestResult:
        """The batch once parsed: ``parsed[i]`` None where ``rejected`` says why; ``items``:
        the events as posted, for the dead letters (None: rebuilt from ``parsed``)."""
        now = time.time()
        now_ms = int(now * 1000)
        valid, rejected = [], list(rejected)
        for i, event in enumerate(parsed):
            if event is None:
                continue
            problem = self.check(event, now)
            if problem is not None:
                rejected.append(Rejection(i, *problem))
                continue
            valid.append(event)
        rejected.sort(key=lambda r: r.index)

        def posted(i: int) -> Any:
            if items is not None:
                return items[i]
            return parsed[i].model_dump(mode="json", exclude_none=True)

        dead = [DeadLetter(r.reason, f"{r.field}: {r.message}", posted(r.index), now_ms,
                           event_id_of(posted(r.index))) for r in rejected]
        appended = self.log.append(records(valid, now_ms))
        self.log.dead_letter(dead)
        return IngestResult(appended.accepted, len(appended.duplicates), rejected)

    def check(self, event: Event, now: float) -> tuple[str, str, str] | None:
        """(field, reason, message) of what the schema cannot know, or None."""
        if event.item_id is not None and not self.known_item(event.item_id):
            return "item_id", "unknown_item", f"{event.item_id} is not a title in the catalog"
        ahead = event.timestamp.timestamp() - now
        if ahead > self.cfg.future_tolerance_s:
            return ("timestamp", "future", f"{ahead:.0f} s in the future (at most "
                    f"{self.cfg.future_tolerance_s:.0f} s ahead of the server clock)")
        if event.value is not None:
            low, high = self.rating_scale
            if not low <= event.value <= high:
                return "value", "rating_scale", f"{event.value} is outside {low}..{high}"
        return None


def event_id_of(item: Any) -> str | None:
    value = item.get("event_id") if isinstance(item, dict) else None
    return value[:64] if isinstance(value, str) else None
