"""Vector indexes for every embedding source (FAISS, on GPU when faiss-gpu and CUDA are present)."""

from recsys.index.faiss_index import VectorIndex

__all__ = ["VectorIndex"]
