"""The on-disk format of a synthetic dataset, shared by the writer, the reader and the users.

Kept apart so that ``writer.py`` and ``reader.py`` agree on one definition of the folder without
importing each other. Parquet files use the canonical Arrow schemas of ``recsys.data.schema``
(absent ratings and watch fractions are nulls there, NaN once loaded), plus ``USERS_ARROW``::

    items.parquet                      the catalog (item ids 1..n_items)
    users/part-00000.parquet ...       one part per chunk of ``chunk_users`` users (ids 1..n_users):
                                       country, age bucket and latent_top_genre (ground truth)
    interactions/part-00000.parquet    the same chunks' events, by user, sessions in time order;
                                       one row group per batch of ``batch_events``
    meta.json                          config and counts; written last, so it marks completion
"""

from __future__ import annotations

import pyarrow as pa

META_FORMAT = "recsys-synthetic"
META_VERSION = 1

USERS_ARROW = pa.schema(
    [
        ("user_id", pa.int64()),
        ("country", pa.string()),
        ("age_bucket", pa.string()),
        # Ground truth of the generator (argmax of the genre affinity), for checking that a model
        # recovers taste; a real source has no such column, so do not feed it to a model.
        ("latent_top_genre", pa.string()),
    ]
)
