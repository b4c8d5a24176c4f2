"""Errors of one request or one catalog change that the caller can fix, each naming the input
at fault (``parameter``), so the HTTP edge can answer ``{parameter, message}`` as it does for
the requests it refuses itself. Status codes are the edge's business (``serve/app.py``): an
``InvalidInput`` is a 422, a ``DuplicateItemError`` a 409.
"""

from __future__ import annotations

from recsys import RecsysError


class InvalidInput(RecsysError):
    """A value the request or the new titles got wrong; ``parameter`` names it."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self):
        # Ray Serve pickles a replica's exception back to the caller; the default reduction
        # replays only the message, and the parameter would be lost on the way
        return type(self), (str(self), self.parameter)


class UnknownItemError(InvalidInput):
    """A raw item id the catalog does not have (a seed title, /similar's title)."""


class DuplicateItemError(InvalidInput):
    """An item id the catalog already has: a conflict with the catalog (HTTP 409), not a
    malformed request."""
