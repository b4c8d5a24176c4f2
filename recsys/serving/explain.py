"""Explanations: one sentence per recommended title, taken from its candidate provenance.

The most specific reason wins, in this order:

1. search: "Matches your search '<query>'" when a search source found the title;
2. a history item credited by any source (``Provenance.because``): "Because you watched
   <title>" (the credit of the best-ranked provenance that has one); post-play's seed item is
   such a credit;
3. a trending source: "Trending now";
4. a collaborative source (a source whose kind is ``collaborative``): "Popular with viewers
   like you";
5. otherwise "Recommended for you" (never used when a specific reason exists).

Sources are named by config slots (``cf``, ``cowatch_all``...), so the kind of each slot comes
from ``SOURCE_KINDS`` by name prefix unless the caller passes its own mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from recsys.candidates.types import NO_ITEM, Provenance

SOURCE_KINDS = {"trending": "trending", "cf": "collaborative", "als": "collaborative",
                "two_tower": "collaborative", "cowatch": "collaborative",
                "content": "content", "search": "search"}
GENERIC = "Recommended for you"


def source_kind(source: str, kinds: Mapping[str, str] = SOURCE_KINDS) -> str:
    if source in kinds:
        return kinds[source]
    for prefix, kind in kinds.items():
        if source.startswith(prefix):
            return kind
    return "other"


def reason(provenance: Sequence[Provenance], titles: Sequence[str], surface: str = "home",
           query: str | None = None, kinds: Mapping[str, str] = SOURCE_KINDS) -> str:
    by_rank = sorted(provenance, key=lambda p: p.rank)
    if surface == "search" and query:
        if any(source_kind(p.source, kinds) in ("search", "content") for p in by_rank):
            return f"Matches your search '{query}'"
    credited = [p for p in by_rank if p.because != NO_ITEM and 0 <= p.because < len(titles)]
    if credited:
        return f"Because you watched {titles[credited[0].because]}"
    found = {source_kind(p.source, kinds) for p in by_rank}
    if "trending" in found:
        return "Trending now"
    if "collaborative" in found:
        return "Popular with viewers like you"
    return GENERIC
