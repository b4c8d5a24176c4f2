"""Errors at the HTTP edge: every refusal is ``{"detail": [{parameter, message}, ...]}``.

Bad query parameters or bodies fail pydantic validation in the router, or FastAPI's own checks
of a route's parameters (422). Errors the
request path raises (``RecsysError``; an ``InvalidInput`` names its parameter) cross the Ray
Serve handle as exceptions, and the router's exception handler maps them: a
``DuplicateItemError`` is 409, any other ``RecsysError`` 422. A replica's exception arrives as
itself (Ray Serve's gRPC transport between deployments) or wrapped in a ``RayTaskError`` that is
also an instance of it (the actor-call transport): ``cause_of`` unwraps either.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from recsys import RecsysError
from recsys.serving.errors import DuplicateItemError


def validation_messages(err: ValidationError, root: str = "") -> list[dict[str, str]]:
    """One {parameter, message} per problem: what a client needs to fix the request. ``root``
    names a JSON body, whose list positions read as ``items[0].title``."""
    return messages(err.errors(), root)


def route_messages(err: RequestValidationError) -> list[dict[str, str]]:
    """FastAPI's own refusals (a path or query parameter of the wrong type or range, a body
    that is not JSON) in the same shape: its locations start with where the value was."""
    return [messages([{**e, "loc": tuple(e["loc"][1:])}],
                     "items" if e["loc"][:1] == ("body",) else "")[0] for e in err.errors()]


def messages(errors: list[dict[str, Any]], root: str = "") -> list[dict[str, str]]:
    """pydantic's error dicts (``loc``, ``msg``) as {parameter, message}."""
    out = []
    for e in errors:
        where = root + "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in e["loc"])
        where = where.lstrip(".") or _parameter_in(e["msg"])
        out.append({"parameter": where, "message": e["msg"].removeprefix("Value error, ")})
    return out


def _parameter_in(message: str) -> str:
    """The parameter a model-level rule names ("query is required when ...")."""
    return message.removeprefix("Value error, ").split(" ", 1)[0]


def cause_of(err: BaseException) -> BaseException:
    """The replica's own exception behind what the Ray Serve handle raised."""
    from ray.exceptions import RayTaskError

    if isinstance(err, RayTaskError) and isinstance(err.cause, BaseException):
        return err.cause
    return err


def status_and_detail(err: RecsysError) -> tuple[int, list[dict[str, Any]]]:
    """The HTTP status and body ``detail`` of an error the request path raised."""
    cause = cause_of(err)
    status = 409 if isinstance(cause, DuplicateItemError) else 422
    return status, [{"parameter": getattr(cause, "parameter", None), "message": str(cause)}]
