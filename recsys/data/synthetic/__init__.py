"""Synthetic users x items x events at scale, written in chunks to Parquet with bounded memory.

MovieLens tops out at a few million ratings; the scale work (sharded embeddings, ANN indices,
serving load) needs catalogs of a million titles and a billion events whose statistics resemble a
streaming service. This package draws them from a small generative story, one module per step:

* ``config``   ``SyntheticConfig``, the size and shape of a dataset, and its validation.
* ``catalog``  items: genres, power-law popularity, latent quality, and the sampling table
  (with ``GuideTable``) that events draw titles from.
* ``users``    users, one chunk at a time: activity, genre affinity (Dirichlet), country, age.
* ``events``   each chunk's events batch by batch: sessions, genres, titles, types, ratings and
  watch fractions that track the user's taste (so ``watch_fraction > 0.7`` is learnable).
* ``writer``   ``generate``: the driver, a background Parquet writer, and ``meta.json``.
* ``reader``   ``read_meta`` and ``load_synthetic``: a finished folder back as a ``Dataset``.
* ``layout``   the folder layout and format constants the writer and the reader share;
  ``streams`` the seeded random streams everything draws from.

Memory is bounded by the chunk (``chunk_users`` users' affinities) and the batch
(``batch_events`` events materialised at once), never by the totals: the catalog is held in memory
(O(n_items)) but users and events stream through. Everything is deterministic: each chunk draws
from its own ``SeedSequence`` stream keyed by (seed, chunk number), so the same config (chunking
included) gives byte-identical files in any process. Other chunk sizes give a different draw with
the same totals and statistics.

Import from the package (``from recsys.data.synthetic import SyntheticConfig, generate``); the
modules are its internal layout.
"""

from recsys.data.synthetic.catalog import (
    GENRE_NAMES,
    MATURITY_RATINGS,
    REGIONS,
    Catalog,
    GuideTable,
    catalog_table,
    genre_names,
    genre_prior,
    make_catalog,
)
from recsys.data.synthetic.config import SyntheticConfig
from recsys.data.synthetic.events import make_events
from recsys.data.synthetic.layout import META_FORMAT, META_VERSION, USERS_ARROW
from recsys.data.synthetic.reader import load_synthetic, read_meta
from recsys.data.synthetic.users import AGE_BUCKETS, UserChunk, chunk_event_totals, make_users
from recsys.data.synthetic.writer import generate

__all__ = [
    "AGE_BUCKETS",
    "GENRE_NAMES",
    "MATURITY_RATINGS",
    "META_FORMAT",
    "META_VERSION",
    "REGIONS",
    "USERS_ARROW",
    "Catalog",
    "GuideTable",
    "SyntheticConfig",
    "UserChunk",
    "catalog_table",
    "chunk_event_totals",
    "generate",
    "genre_names",
    "genre_prior",
    "load_synthetic",
    "make_catalog",
    "make_events",
    "make_users",
    "read_meta",
]
