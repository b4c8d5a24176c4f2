"""The HTTP contract of GET /v1/recommendations and POST /v1/items: pydantic models at the edge.

Query parameters are validated here, before any stage runs, so a bad request costs nothing and
its 422 names the parameter: an unknown surface, ``n`` outside 1..100, search without ``query``,
post-play without ``item_id``. An unknown *user* is not an error: it takes the cold-start path.
New titles (``NewTitle``) are checked the same way: a missing ``title`` is named as
``items[0].title``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StrictInt,
    TypeAdapter,
    field_validator,
    model_validator,
)

from recsys.serving.catalog import MATURITY_ORDER

Surface = Literal["home", "search", "post_play"]
INT64_MAX = 2**63 - 1


def _id_text(value: object) -> object:
    """A query or path id arrives as text: only plain digits are an id ("5.0", "1e3", "-0" and
    " 5" are not), so an id means the same thing at every edge."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise ValueError("must be a non-negative integer id")
        return int(value)
    return value


# One id contract at every edge: ids are what the catalog and the stores keep, non-negative
# int64; anything else is a 422 naming the field (never a silent int64 wrap)
QueryId = Annotated[StrictInt, BeforeValidator(_id_text), Field(ge=0, le=INT64_MAX)]
JsonId = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)]  # in JSON: 5.0, "5", true are not ids
QUERY_ID = TypeAdapter(QueryId)
MAX_N = 100
MAX_NEW_TITLES = 1000  # per POST /v1/items: each is embedded before the response


class RecommendationQuery(BaseModel):
    """GET /v1/recommendations query parameters."""

    model_config = {"extra": "forbid"}

    user_id: QueryId = Field(description="raw user id; unknown ids get the cold-start path")
    surface: Surface = "home"
    n: int = Field(20, ge=1, le=MAX_N, description="titles to return, 1..100")
    query: str | None = Field(None, min_length=1, max_length=200,
                              description="free text; required on the search surface")
    item_id: QueryId | None = Field(None,
                                    description="title just watched; required on post_play")
    region: str | None = Field(None, min_length=2, max_length=8)
    max_maturity: Literal[MATURITY_ORDER] | None = None  # type: ignore[valid-type]
    exclude: list[QueryId] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _surface_needs_its_input(self) -> RecommendationQuery:
        if self.surface == "search" and not (self.query and self.query.strip()):
            raise ValueError("query is required when surface=search")
        if self.surface == "post_play" and self.item_id is None:
            raise ValueError("item_id is required when surface=post_play")
        return self


class RecommendedItem(BaseModel):
    item_id: int
    title: str
    score: float
    reason: str
    sources: list[str]
    arm: str | None = Field(None, description="interleaving: the arm this slot is credited to")


class ExperimentArm(BaseModel):
    experiment: str
    arm: str = Field(description="the user's arm; 'interleaved' in an interleave experiment")
    kind: Literal["ab", "interleave"]


class RecommendationResponse(BaseModel):
    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex,
                            description="send it back as context.request_id with the events "
                                        "this response led to (plays, clicks)")
    surface: Surface
    user_id: int | None = Field(description="the requesting user; null for /similar")
    cold_start: bool = False
    items: list[RecommendedItem]
    degraded: list[str] = Field(default_factory=list,
                                description="stages that fell back (e.g. rank)")
    version: str = Field(description="artefact version that served the request")
    experiments: list[ExperimentArm] = Field(default_factory=list,
                                             description="the user's experiments and arms")


class NewTitle(BaseModel):
    """One title of POST /v1/items: the catalog columns a client may set (the rest unknown)."""

    model_config = {"extra": "forbid"}

    item_id: JsonId = Field(description="raw id; must not be in the catalog yet (409 if it is)")
    title: str = Field(min_length=1, max_length=300)
    year: int | None = Field(None, ge=1870, le=2100, description="release year")
    genres: list[str] = Field(default_factory=list, max_length=32)
    tags: list[str] = Field(default_factory=list, max_length=100)
    maturity_rating: Literal[MATURITY_ORDER] | None = None  # type: ignore[valid-type]
    regions: list[str] = Field(default_factory=list, max_length=300,
                               description="where it is licensed; empty = everywhere")

    @field_validator("title")
    @classmethod
    def _title_has_text(cls, title: str) -> str:
        if not title.strip():
            raise ValueError("title must not be blank")
        return title


NEW_TITLES = TypeAdapter(Annotated[list[NewTitle], Field(min_length=1, max_length=MAX_NEW_TITLES)])


class AddedTitles(BaseModel):
    item_ids: list[int] = Field(description="the raw ids added, in request order")
    catalog_size: int = Field(description="titles in the serving replica's catalog now")
    version: str = Field(description="artefact version the titles were added to")
