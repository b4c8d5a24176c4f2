"""The HTTP contract of GET /v1/recommendations: pydantic models at the edge.

Query parameters are validated here, before any stage runs, so a bad request costs nothing and
its 422 names the parameter: an unknown surface, ``n`` outside 1..100, search without ``query``,
post-play without ``item_id``. An unknown *user* is not an error: it takes the cold-start path.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from recsys.serving.catalog import MATURITY_ORDER

Surface = Literal["home", "search", "post_play"]
MAX_N = 100


class RecommendationQuery(BaseModel):
    """GET /v1/recommendations query parameters."""

    model_config = {"extra": "forbid"}

    user_id: int = Field(description="raw user id; unknown ids get the cold-start path")
    surface: Surface = "home"
    n: int = Field(20, ge=1, le=MAX_N, description="titles to return, 1..100")
    query: str | None = Field(None, min_length=1, max_length=200,
                              description="free text; required on the search surface")
    item_id: int | None = Field(None, description="title just watched; required on post_play")
    region: str | None = Field(None, min_length=2, max_length=8)
    max_maturity: Literal[MATURITY_ORDER] | None = None  # type: ignore[valid-type]
    exclude: list[int] = Field(default_factory=list, max_length=500)

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


class RecommendationResponse(BaseModel):
    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    surface: Surface
    user_id: int | None = Field(description="the requesting user; null for /similar")
    cold_start: bool = False
    items: list[RecommendedItem]
    degraded: list[str] = Field(default_factory=list,
                                description="stages that fell back (e.g. rank)")
    version: str = Field(description="artefact version that served the request")
