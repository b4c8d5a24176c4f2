"""The text that represents a title to the encoder: title, year, genres and tags, in that order.

The text must be deterministic (same row -> same string) because the embedding cache is keyed by
its hash: any change to this function re-embeds the whole catalog once. MovieLens writes titles
library-style ("Usual Suspects, The (1995)"); they are put back in reading order, which the
sentence encoder was trained on. Tags are capped (``max_tags``) so a heavily tagged title is not
truncated mid-list by the encoder's 256-token limit and does not drown out its title.

>>> item_text("Toy Story (1995)", 1995, ["Adventure", "Animation"], ["pixar", "fun"])
'Toy Story (1995). Genres: Adventure, Animation. Tags: pixar, fun'
>>> item_text("Usual Suspects, The", 1995, ["(no genres listed)"], [])
'The Usual Suspects (1995)'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from recsys.data.schema import list_value

# "Name, The (Alt title) (1995)" -> name, article, the parenthesised rest
_INVERTED = re.compile(r"^(?P<name>.+?), (?P<article>The|A|An)(?P<rest>(?: \(.*\))?)$")
_ENDS_WITH_YEAR = re.compile(r"\(\d{4}(?:[-–]\d{0,4})?\)\s*$")
_NO_GENRES = {"(no genres listed)", ""}
MAX_TAGS = 10


def display_title(title: str) -> str:
    """MovieLens library-style title back in reading order ("The Usual Suspects (1995)")."""
    title = " ".join(title.split())
    match = _INVERTED.match(title)
    if match is None:
        return title
    return f"{match['article']} {match['name']}{match['rest']}"




def _dedupe(values: Iterable[str]) -> list[str]:
    """Strip, drop empties and case-insensitive repeats, keep first-seen order."""
    seen: set[str] = set()
    out = []
    for value in values:
        value = " ".join(value.split())
        if value and value.lower() not in seen:
            seen.add(value.lower())
            out.append(value)
    return out


def item_text(title: object, year: object = None, genres: object = None, tags: object = None,
              max_tags: int = MAX_TAGS) -> str:
    """One title's description; '' when there is nothing to describe (no title, genres, tags)."""
    parts = []
    if isinstance(title, str) and title.strip():
        name = display_title(title)
        if year is not None and not pd.isna(year) and not _ENDS_WITH_YEAR.search(name):
            name = f"{name} ({int(year)})"
        parts.append(name)
    genre_list = [g for g in _dedupe(list_value(genres)) if g not in _NO_GENRES]
    if genre_list:
        parts.append("Genres: " + ", ".join(genre_list))
    tag_list = _dedupe(list_value(tags))[:max_tags]
    if tag_list:
        parts.append("Tags: " + ", ".join(tag_list))
    return ". ".join(parts)


def item_texts(items: pd.DataFrame, max_tags: int = MAX_TAGS) -> list[str]:
    """Descriptions for catalog rows, in row order (``Dataset.items_by_index()``: row i = item i).

    Missing columns are treated as empty, so a bare (item_id, title) frame works too.
    """
    cols = [items[c].tolist() if c in items.columns else [None] * len(items)
            for c in ("title", "year", "genres", "tags")]
    return [item_text(t, y, g, tg, max_tags) for t, y, g, tg in zip(*cols, strict=True)]
