"""Content-based retrieval: items described by their text, embedded with MiniLM, searched in FAISS.

Content is the source that knows a title before anyone has watched it: new titles are
retrievable the moment they are embedded (``ContentSource.add_items``), and a user with a few
events gets a profile from the titles' descriptions alone. It is weak on top-N accuracy next to
collaborative sources; its job is coverage, cold start, search and "more like this".

* ``text``: the deterministic item description that gets embedded.
* ``cache``: an on-disk {sha256(model, text) -> vector} store, so re-runs embed only new text.
* ``encoder``: the offline MiniLM encoder (batched, cached, normalised float32).
* ``profile``: rating- and recency-weighted user profiles.
* ``source``: ``ContentSource``, both a ``Scorer`` (offline eval) and a ``CandidateSource``.
"""

from recsys.candidates.content.encoder import TextEncoder
from recsys.candidates.content.source import ContentSource
from recsys.candidates.content.text import item_text, item_texts

__all__ = ["ContentSource", "TextEncoder", "item_text", "item_texts"]
