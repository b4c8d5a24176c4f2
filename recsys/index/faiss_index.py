"""One FAISS wrapper for every vector source (CF item factors, content embeddings, two-tower).

The index type is a FAISS index-factory string (``Flat``, ``IVF1024,Flat``, ``HNSW32``,
``IVF256,PQ16``), so a researcher swaps it from the config. ``metric="cosine"`` normalises
vectors and searches by inner product. Ids are the caller's item indices (an ``IndexIDMap2`` where
the index type needs one), so results need no translation. On a machine with faiss-gpu and a
CUDA device, indexes that FAISS can move are searched on GPU 0; the CPU index stays the master
copy (it is what ``add`` and ``save`` touch) and the GPU copy is re-made lazily after changes.

Decisions worth knowing:

* ``search`` always returns ``(n_queries, k)``. Slots with no result (k larger than the index, an
  empty index, or an IVF probe that reached too few items) hold id -1 and score -inf for
  ``ip``/``cosine`` or +inf for ``l2``, so sorting and masking work without special cases.
* IVF training with fewer vectors than lists raises ``RecsysError`` instead of clamping nlist:
  silently rewriting the factory string would make the saved index differ from its config and
  hide a mis-sized choice. The message suggests a size that fits. Below FAISS's guideline of 39
  training vectors per list we only log a warning (it trains, recall suffers).
* Search knobs (``nprobe``, ``efSearch``) go through ``faiss.ParameterSpace``, which reaches the
  IVF/HNSW inside ``IndexIDMap2`` and ``IndexPreTransform`` wrappers; knobs that do not apply to
  the index type are ignored. ``nprobe`` is capped at nlist.
* Ids must be non-negative integers (-1 is FAISS's "no result"), unique within one call; FAISS
  does not check duplicates across ``add`` calls, and neither do we (it would cost a lookup
  table the size of the catalog).

>>> import numpy as np
>>> idx = VectorIndex("Flat", metric="ip").build(np.eye(4, dtype="float32"))
>>> idx.search(np.eye(4, dtype="float32")[:1], k=2)[1].tolist()[0][0]
0
"""

from __future__ import annotations

import json
import logging
import re
from enum import StrEnum
from pathlib import Path

import faiss
import numpy as np

from recsys import RecsysError
from recsys.device import hardware

log = logging.getLogger(__name__)

class Metric(StrEnum):
    cosine, ip, l2 = "cosine", "ip", "l2"  # cosine: inner product over L2-normalised vectors


METRICS = {Metric.ip: faiss.METRIC_INNER_PRODUCT, Metric.cosine: faiss.METRIC_INNER_PRODUCT,
           Metric.l2: faiss.METRIC_L2}
GPU_MAX_K = 2048  # FAISS GPU k-selection limit; larger k is answered by the CPU index
MIN_POINTS_PER_LIST = 39  # FAISS warns below this many training vectors per IVF list


class VectorIndex:
    """Build, search, extend, save and load one FAISS index over item vectors."""

    def __init__(self, factory: str = "Flat", metric: str = "ip", nprobe: int = 16,
                 ef_search: int = 128, use_gpu: bool = True) -> None:
        if metric not in METRICS:
            raise RecsysError(f"unknown metric '{metric}'; choose one of {', '.join(METRICS)}")
        _check_knobs(nprobe, ef_search)
        self.factory = factory
        self.metric = metric
        self.nprobe = nprobe  # IVF cells visited per query: recall vs latency
        self.ef_search = ef_search  # HNSW candidate list size: recall vs latency
        self.use_gpu = use_gpu and hardware().faiss_gpus > 0
        self.index: faiss.Index | None = None
        self.dim: int | None = None
        self._next_id = 0  # default id for add() without ids: one past the largest id so far
        self._gpu_index: faiss.Index | None = None  # lazy GPU copy of self.index
        self._gpu_resources = None  # one StandardGpuResources per object, made on first use

    # -- building ---------------------------------------------------------------------------
    def build(self, vectors: np.ndarray, ids: np.ndarray | None = None,
              max_train: int | None = None) -> VectorIndex:
        """Train (IVF/PQ need it) and fill the index; ``ids`` default to row numbers.

        ``max_train`` trains on a random sample of that many rows (seeded, so rebuilds match):
        k-means cost grows with the rows, and ~40-256 per IVF list is all it needs.
        """
        vectors = self._prepare(vectors, new_dim=True)
        ids = None if ids is None else _check_ids(ids, len(vectors))  # before a long train
        dim = int(vectors.shape[1])
        try:
            index = faiss.index_factory(dim, self.factory, METRICS[self.metric])
        except RuntimeError as err:
            raise RecsysError(f"bad FAISS index factory string '{self.factory}' for dimension "
                              f"{dim}: {_faiss_reason(err)}") from err
        if not index.is_trained:
            sample = vectors
            if max_train is not None and len(vectors) > max_train:
                rows = np.random.default_rng(0).choice(len(vectors), max_train, replace=False)
                sample = vectors[np.sort(rows)]
            self._train(index, sample)
        # Only now replace state, so a failed rebuild leaves the previous index usable.
        self.index = index if _stores_ids(index) else faiss.IndexIDMap2(index)
        self.dim, self._gpu_index, self._next_id = dim, None, 0
        self._tune()
        self._add(vectors, ids)
        return self

    def _train(self, index: faiss.Index, sample: np.ndarray) -> None:
        nlist = _nlist(index)
        if nlist and len(sample) < nlist:
            fit = max(1, len(sample) // MIN_POINTS_PER_LIST)
            raise RecsysError(f"'{self.factory}' needs at least {nlist} training vectors (one per "
                              f"IVF list) but got {len(sample)}; use fewer lists, e.g. "
                              f"'IVF{fit},...', or 'Flat' for a catalog this small")
        if nlist and len(sample) < MIN_POINTS_PER_LIST * nlist:
            log.warning("training %s on %d vectors (< %d per list): expect lower recall",
                        self.factory, len(sample), MIN_POINTS_PER_LIST)
        for part in _parts(index):  # polysemous code ordering only helps polysemous_ht search,
            if hasattr(part, "do_polysemous_training"):  # which we never enable, and the
                part.do_polysemous_training = False  # annealing costs ~20 s per PQ build
        try:
            index.train(sample)
        except RuntimeError as err:  # e.g. PQ needs >= 256 training vectors
            raise RecsysError(f"could not train '{self.factory}' on {len(sample)} vectors: "
                              f"{_faiss_reason(err)}") from err

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> None:
        """Add vectors (e.g. new titles: the cold-start path for content) to a built index."""
        if self.index is None:
            raise RecsysError("VectorIndex.add called before build or load")
        self._add(self._prepare(vectors), ids)

    def _add(self, vectors: np.ndarray, ids: np.ndarray | None) -> None:
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + len(vectors), dtype=np.int64)
        ids = _check_ids(ids, len(vectors))
        if len(ids):
            self.index.add_with_ids(vectors, ids)
            self._next_id = max(self._next_id, int(ids.max()) + 1)
        self._gpu_index = None  # re-made lazily on the next search

    def __len__(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    # -- searching --------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k); empty slots have id -1 (see module docstring)."""
        if self.index is None:
            raise RecsysError("VectorIndex.search called before build or load")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise RecsysError(f"k must be a non-negative integer, got {k!r}")
        queries = self._prepare(np.atleast_2d(queries))
        n, k = len(queries), int(k)
        missing = -np.inf if self.metric != "l2" else np.inf
        scores = np.full((n, k), missing, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        kk = min(k, len(self))  # FAISS pads k > ntotal anyway; asking less saves the heap work
        if kk == 0 or n == 0:
            return scores, ids
        found_scores, found_ids = self._searcher(kk).search(queries, kk)
        scores[:, :kk], ids[:, :kk] = found_scores, found_ids
        scores[ids == -1] = missing  # FAISS writes +-FLT_MAX there; inf reads clearer
        return scores, ids

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change recall/latency knobs on a built or loaded index (kept by ``save``)."""
        nprobe = self.nprobe if nprobe is None else nprobe
        ef_search = self.ef_search if ef_search is None else ef_search
        _check_knobs(nprobe, ef_search)
        self.nprobe, self.ef_search = nprobe, ef_search
        if self.index is not None:
            self._tune()
        self._gpu_index = None  # the GPU copy took its knobs when cloned

    def _searcher(self, k: int) -> faiss.Index:
        if not self.use_gpu or k > GPU_MAX_K:
            return self.index
        if self._gpu_index is None:
            try:
                if self._gpu_resources is None:
                    self._gpu_resources = faiss.StandardGpuResources()
                self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self.index)
            except RuntimeError as err:  # e.g. HNSW has no GPU version: stay on CPU
                log.info("FAISS %s stays on CPU: %s", self.factory, _faiss_reason(err))
                self.use_gpu = False
                return self.index
        return self._gpu_index

    def _tune(self) -> None:
        """Push the knobs into the index, through IDMap/PreTransform wrappers."""
        nlist = _nlist(self.index)
        space = faiss.ParameterSpace()
        for name, value in (("nprobe", min(self.nprobe, nlist or self.nprobe)),
                            ("efSearch", self.ef_search)):
            try:
                space.set_index_parameter(self.index, name, value)
            except RuntimeError:  # the knob does not exist for this index type
                pass

    def _prepare(self, vectors: np.ndarray, new_dim: bool = False) -> np.ndarray:
        """float32, C-contiguous, right shape, finite; unit length for cosine (on a copy)."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[1] == 0 or (
                not new_dim and vectors.shape[1] != self.dim):
            want = "(n, d) with d >= 1" if new_dim else f"(n, {self.dim})"
            raise RecsysError(f"expected vectors of shape {want}, got {vectors.shape}")
        if not np.issubdtype(vectors.dtype, np.number) or np.issubdtype(vectors.dtype,
                                                                       np.complexfloating):
            raise RecsysError(f"vectors must be real numbers, got dtype {vectors.dtype}")
        prepared = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.metric == "cosine" and np.may_share_memory(prepared, vectors):
            prepared = prepared.copy()  # normalising in place must not touch the caller's array
        vectors = prepared
        if not np.isfinite(vectors).all():
            raise RecsysError("vectors contain NaN or inf; FAISS would return garbage for them")
        if self.metric == "cosine":
            faiss.normalize_L2(vectors)  # zero vectors stay zero (score 0 against everything)
        return vectors

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: Path | str) -> None:
        """Write ``index.faiss`` (ids and knobs inside) plus ``index.json`` (our settings)."""
        if self.index is None:
            raise RecsysError("VectorIndex.save called before build or load")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "index.faiss.tmp"  # write-then-rename: a crash leaves the old index
        faiss.write_index(self.index, str(tmp))
        tmp.replace(directory / "index.faiss")
        meta = {"factory": self.factory, "metric": self.metric, "nprobe": self.nprobe,
                "ef_search": self.ef_search, "dim": self.dim, "next_id": self._next_id,
                "ntotal": len(self)}
        (directory / "index.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path | str, use_gpu: bool = True) -> VectorIndex:
        directory = Path(directory)
        if not (directory / "index.json").is_file() or not (directory / "index.faiss").is_file():
            raise RecsysError(f"no saved VectorIndex in {directory} (index.json + index.faiss)")
        meta = json.loads((directory / "index.json").read_text())
        obj = cls(meta["factory"], meta["metric"], meta["nprobe"], meta["ef_search"], use_gpu)
        obj.index = faiss.read_index(str(directory / "index.faiss"))
        if obj.index.d != meta["dim"] or obj.index.ntotal != meta.get("ntotal", obj.index.ntotal):
            raise RecsysError(f"{directory}: index.faiss does not match index.json "
                              f"(d={obj.index.d}, ntotal={obj.index.ntotal}; json {meta})")
        obj.dim = meta["dim"]
        obj._next_id = meta.get("next_id", obj.index.ntotal)
        obj._tune()
        return obj


def _stores_ids(index: faiss.Index) -> bool:
    """IVF indexes (and explicit IDMap factories) store ids; Flat/HNSW/PQ need an IndexIDMap2."""
    if isinstance(faiss.downcast_index(index), faiss.IndexIDMap | faiss.IndexIDMap2):
        return True
    return _nlist(index) > 0


def _parts(index: faiss.Index) -> list[faiss.Index]:
    """The index and the ones it wraps (IDMap, PreTransform, IVF), downcast to their classes."""
    parts = [faiss.downcast_index(index)]
    if _nlist(index) and not isinstance(parts[0], faiss.IndexIVF):
        parts.append(faiss.downcast_index(faiss.extract_index_ivf(index)))
    while hasattr(parts[-1], "index") and parts[-1].index is not None and len(parts) < 8:
        parts.append(faiss.downcast_index(parts[-1].index))
    return parts


def _nlist(index: faiss.Index) -> int:
    """Number of IVF lists of the IVF inside ``index`` (through wrappers), 0 when not IVF."""
    try:
        return int(faiss.extract_index_ivf(index).nlist)
    except RuntimeError:
        return 0


def _check_ids(ids: np.ndarray, n: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise RecsysError(f"ids must be a 1-D array with one id per vector ({n}), "
                          f"got shape {ids.shape}")
    if n and not np.issubdtype(ids.dtype, np.integer):
        raise RecsysError(f"ids must be integers (item indices), got dtype {ids.dtype}")
    if n and (ids.min() < 0 or ids.max() > np.iinfo(np.int64).max):
        raise RecsysError("ids must lie in [0, 2**63): -1 means 'no result' in FAISS")
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if len(np.unique(ids)) != n:
        raise RecsysError("ids contain duplicates; each item needs its own id")
    return ids


def _check_knobs(nprobe: int, ef_search: int) -> None:
    if nprobe < 1 or ef_search < 1:
        raise RecsysError(f"nprobe and ef_search must be >= 1, got {nprobe} and {ef_search}")


def _faiss_reason(err: RuntimeError) -> str:
    """FAISS messages start with a C++ signature; the last part is the human reason."""
    text = " ".join(str(err).split())
    match = re.search(r" at \S+:\d+: (?:Error: '.*?' failed: )?(.*)$", text)
    return match.group(1) if match else text
