"""One FAISS wrapper for every vector source (CF item factors, content embeddings, two-tower).

The index type is a FAISS index-factory string (``Flat``, ``IVF1024,Flat``, ``HNSW32``,
``IVF256,PQ16``), so a researcher swaps it from the config. ``metric="cosine"`` normalises
vectors and searches by inner product. Ids are the caller's item indices (an ``IndexIDMap`` where
the index type needs one), so results need no translation. On a machine with faiss-gpu and a
CUDA device, indexes that FAISS can move are searched on GPU 0.

>>> import numpy as np
>>> idx = VectorIndex("Flat", metric="ip").build(np.eye(4, dtype="float32"))
>>> idx.search(np.eye(4, dtype="float32")[:1], k=2)[1].tolist()[0][0]
0
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import faiss
import numpy as np

from recsys import RecsysError
from recsys.device import hardware

log = logging.getLogger(__name__)

METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "cosine": faiss.METRIC_INNER_PRODUCT,
           "l2": faiss.METRIC_L2}


class VectorIndex:
    """Build, search, extend, save and load one FAISS index over item vectors."""

    def __init__(self, factory: str = "Flat", metric: str = "ip", nprobe: int = 16,
                 ef_search: int = 128, use_gpu: bool = True) -> None:
        if metric not in METRICS:
            raise RecsysError(f"unknown metric '{metric}'; choose one of {', '.join(METRICS)}")
        self.factory = factory
        self.metric = metric
        self.nprobe = nprobe  # IVF cells visited per query: recall vs latency
        self.ef_search = ef_search  # HNSW candidate list size: recall vs latency
        self.use_gpu = use_gpu and hardware().faiss_gpus > 0
        self.index: faiss.Index | None = None
        self.dim: int | None = None

    # -- building ---------------------------------------------------------------------------
    def build(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> VectorIndex:
        """Train (IVF/PQ need it) and fill the index; ``ids`` default to row numbers."""
        vectors = self._prepare(vectors)
        self.dim = vectors.shape[1]
        try:
            index = faiss.index_factory(self.dim, self.factory, METRICS[self.metric])
        except RuntimeError as err:
            raise RecsysError(f"bad FAISS index factory string '{self.factory}': "
                              f"{str(err).strip().splitlines()[-1]}") from err
        if not index.is_trained:
            index.train(vectors)
        self.index = index if _supports_ids(index) else faiss.IndexIDMap2(index)
        self._tune()
        self.add(vectors, ids, prepared=True)
        return self

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None,
            prepared: bool = False) -> None:
        """Add vectors (e.g. new titles: the cold-start path for content)."""
        if self.index is None:
            raise RuntimeError("VectorIndex.add before build")
        vectors = vectors if prepared else self._prepare(vectors)
        if ids is None:
            ids = np.arange(self.index.ntotal, self.index.ntotal + len(vectors))
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        self._gpu_index = None  # rebuilt lazily on next search

    def __len__(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    # -- searching --------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k); missing results have id -1 and score -inf/inf."""
        if self.index is None:
            raise RuntimeError("VectorIndex.search before build")
        queries = self._prepare(np.atleast_2d(queries))
        k = min(k, len(self))
        if k == 0:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        scores, ids = self._searcher().search(queries, k)
        return scores, ids

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        self.nprobe = nprobe or self.nprobe
        self.ef_search = ef_search or self.ef_search
        self._tune()
        self._gpu_index = None

    def _searcher(self) -> faiss.Index:
        if not self.use_gpu:
            return self.index
        if getattr(self, "_gpu_index", None) is None:
            try:
                self._gpu_resources = faiss.StandardGpuResources()
                self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self.index)
            except RuntimeError as err:  # e.g. HNSW has no GPU version: stay on CPU
                log.info("FAISS %s stays on CPU: %s", self.factory, str(err).splitlines()[0])
                self.use_gpu = False
                return self.index
        return self._gpu_index

    def _tune(self) -> None:
        inner = faiss.downcast_index(self.index.index if hasattr(self.index, "id_map")
                                     else self.index)
        if hasattr(inner, "nprobe"):
            inner.nprobe = self.nprobe
        hnsw = getattr(inner, "hnsw", None)
        if hnsw is not None:
            hnsw.efSearch = self.ef_search

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or (self.dim is not None and vectors.shape[1] != self.dim):
            raise RecsysError(f"expected vectors of shape (n, {self.dim or 'd'}), "
                              f"got {vectors.shape}")
        if self.metric == "cosine":
            vectors = vectors.copy()
            faiss.normalize_L2(vectors)
        return vectors

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(directory / "index.faiss"))
        meta = {"factory": self.factory, "metric": self.metric, "nprobe": self.nprobe,
                "ef_search": self.ef_search, "dim": self.dim}
        (directory / "index.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path, use_gpu: bool = True) -> VectorIndex:
        directory = Path(directory)
        meta = json.loads((directory / "index.json").read_text())
        obj = cls(meta["factory"], meta["metric"], meta["nprobe"], meta["ef_search"], use_gpu)
        obj.index = faiss.read_index(str(directory / "index.faiss"))
        obj.dim = meta["dim"]
        obj._tune()
        return obj


def _supports_ids(index: faiss.Index) -> bool:
    """IVF indexes store ids themselves; Flat/HNSW/PQ need an IndexIDMap wrapper."""
    try:
        faiss.extract_index_ivf(index)
        return True
    except RuntimeError:
        return False
