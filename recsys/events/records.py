"""What an event is: the shape a client posts (``Event``, checked by pydantic at the edge), and
the record the log keeps (a flat dict: every field of the accepted event, its event time in
milliseconds, when the log took it, and where it came from).

Ids follow the one contract of every edge: non-negative int64 (the type the stores keep), JSON
integers only, so ``5.0``, ``"5"`` and ``true`` are refused by name instead of coerced.

Event-type rules: ``item_id`` is required, except on ``search`` (which has none and needs
``query``); ``play`` needs ``watch_fraction`` (0..1) and may carry ``position_s`` /
``duration_s``; ``rating`` needs ``value`` (its scale is the dataset's: checked by the ingest,
which knows it); a field that belongs to another type is refused, not silently kept.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    field_validator,
    model_validator,
)

INT64_MAX = 2**63 - 1
JsonId = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)]  # in JSON: 5.0, "5", true are not ids
Number = Annotated[float, Field(allow_inf_nan=False)]


class EventType(StrEnum):
    play = "play"
    click = "click"
    rating = "rating"
    search = "search"
    add_to_list = "add_to_list"
    impression = "impression"


TITLE_ADDED = "title_added"  # a log record of POST /v1/items, never posted as an event
ORIGIN_API = "api"
ORIGIN_BACKFILL = "backfill"
TYPE_FIELDS = {"watch_fraction": EventType.play, "position_s": EventType.play,
               "duration_s": EventType.play, "value": EventType.rating,
               "query": EventType.search}


class EventContext(BaseModel):
    """Where the event happened; ``request_id`` ties an engagement to the response that
    showed the title (the ``request_id`` of ``GET /v1/recommendations``)."""

    model_config = ConfigDict(extra="forbid")

    surface: Literal["home", "search", "post_play"] | None = None
    device: str | None = Field(None, min_length=1, max_length=64)
    region: str | None = Field(None, min_length=2, max_length=8)
    request_id: str | None = Field(None, min_length=1, max_length=64)


class Event(BaseModel):
    """One event of ``POST /v1/events``; ``timestamp`` is event time: Unix seconds, or ISO 8601
    with a timezone."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=64, description="client-chosen, unique")
    type: EventType
    user_id: JsonId
    item_id: JsonId | None = None
    timestamp: datetime
    watch_fraction: Number | None = Field(None, ge=0.0, le=1.0)
    position_s: Number | None = Field(None, ge=0.0)
    duration_s: Number | None = Field(None, gt=0.0)
    value: Number | None = None
    query: str | None = Field(None, min_length=1, max_length=200)
    context: EventContext | None = None

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, ts: datetime) -> datetime:
        if ts.tzinfo is None:
            raise ValueError("timestamp needs a timezone (e.g. 2026-12-03T16:00:00Z) or Unix "
                             "seconds")
        return ts

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> Event:
        for name, owner in TYPE_FIELDS.items():
            if getattr(self, name) is not None and self.type != owner:
                raise ValueError(f"{name} is only for {owner} events")
        if self.type == EventType.search:
            if self.item_id is not None:
                raise ValueError("item_id is not for search events")
            if self.query is None or not self.query.strip():
                raise ValueError("query is required for search events")
        elif self.item_id is None:
            raise ValueError(f"item_id is required for {self.type} events")
        if self.type == EventType.play and self.watch_fraction is None:
            raise ValueError("watch_fraction (0..1) is required for play events")
        if self.type == EventType.rating and self.value is None:
            raise ValueError("value is required for rating events")
        return self

    def record(self, ingest_ms: int, origin: str = ORIGIN_API) -> dict[str, Any]:
        """The log's record: the set fields, the event time as ``ts_ms``, the context flat."""
        out = self.model_dump(exclude_none=True, exclude={"timestamp", "context"})
        out["type"] = str(self.type)
        out["ts_ms"] = round(self.timestamp.timestamp() * 1000)
        if self.context is not None:
            out.update(self.context.model_dump(exclude_none=True))
        out["ingest_ms"] = int(ingest_ms)
        out["origin"] = origin
        return out


EVENTS = TypeAdapter(list[Event])


def records(events: list[Event], ingest_ms: int, origin: str = ORIGIN_API
            ) -> list[dict[str, Any]]:
    """``Event.record`` for a batch, dumped in one call (half the time per event)."""
    out = EVENTS.dump_python(events, exclude_none=True)
    for record in out:
        record["type"] = str(record["type"])
        record["ts_ms"] = round(record.pop("timestamp").timestamp() * 1000)
        context = record.pop("context", None)
        if context:
            record.update(context)
        record["ingest_ms"] = int(ingest_ms)
        record["origin"] = origin
    return out


def title_record(event_id: str, title: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
    """The log's record of a title added through ``POST /v1/items``: it reaches every replica
    through the store, and survives their restarts."""
    return {"event_id": event_id, "type": TITLE_ADDED, "item_id": int(title["item_id"]),
            "title": title, "ts_ms": int(ingest_ms), "ingest_ms": int(ingest_ms),
            "origin": ORIGIN_API}
