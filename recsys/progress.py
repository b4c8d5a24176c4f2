"""Progress bars for long steps, one rule for all of them: shown on a terminal when asked for,
never written into a log file or a pipe (where ``\\r`` redraws would glue them to the log
lines around them), and cleared when done so the log above stays readable."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True,
                 **options: Any) -> tqdm:
    """``tqdm`` over ``iterable``; ``enabled=False`` (a ``progress`` knob) hides it, and it hides
    itself when stderr is not a terminal (tqdm's ``disable=None``)."""
    options.setdefault("leave", False)
    options.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=None if enabled else True, **options)
