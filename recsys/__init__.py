"""recsys: a GPU-native, end-to-end recommender stack that runs the same code on a laptop CPU.

Data flows through the subpackages in this order: ``data`` (events and catalog) ->
``candidates`` (retrieval sources) -> ``eval`` (offline metrics). Later stages (filters, ranking,
rerank, explain, experiments) join as they are built.
"""

__version__ = "0.1.0"


class RecsysError(Exception):
    """An error a user can fix (bad input, missing file, impossible request).

    Entry points print its message as one line and exit non-zero instead of a traceback.
    """
