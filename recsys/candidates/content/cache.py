"""An on-disk embedding store keyed by content: {sha256(model id, text) -> vector}.

Keying by the text itself (not the item id) means a re-run embeds only titles that are new or
whose description changed, whatever their index, and a second dataset sharing titles reuses
them. The store is append-only ``.npz`` shards (keys (n, 32) uint8, vectors (n, d) float32) under
``<directory>/<model slug>/``: each ``put`` writes one shard atomically (temp file + rename), so
an interrupted run loses at most its own unwritten batch and concurrent writers never corrupt a
file. Shards are merged into one when there are more than ``max_shards``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def content_key(model_id: str, text: str) -> bytes:
    """32-byte key of one text under one model (a different model never hits)."""
    return hashlib.sha256(f"{model_id}\n{text}".encode()).digest()


class EmbeddingCache:
    """Vectors by content key; ``directory=None`` keeps them in memory only."""

    def __init__(self, directory: str | Path | None, model_id: str, max_shards: int = 32) -> None:
        self.model_id = model_id
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("_")
        self.directory = None if directory is None else Path(directory) / slug
        self.max_shards = max_shards
        self._vectors: dict[bytes, np.ndarray] | None = None  # key -> (d,) float32, lazy
        self._shards: list[Path] = []  # shard files read into memory

    def key(self, text: str) -> bytes:
        return content_key(self.model_id, text)

    def __len__(self) -> int:
        return len(self._store())

    def get(self, keys: list[bytes]) -> list[np.ndarray | None]:
        """The cached vector for each key, None where it is missing."""
        store = self._store()
        return [store.get(k) for k in keys]

    def put(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Remember (and persist) vectors (n, d) for keys (n,)."""
        if len(keys) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        store = self._store()
        for k, v in zip(keys, vectors, strict=True):
            store[k] = v
        if self.directory is not None:
            self._shards.append(self._write(keys, vectors))
            if len(self._shards) > self.max_shards:
                self.compact()

    def compact(self) -> None:
        """Merge every shard this process has read or written into one file."""
        if self.directory is None or len(self._shards) <= 1:
            return
        store = self._store()
        merged = self._write(list(store), np.stack(list(store.values())))
        for shard in self._shards:
            shard.unlink(missing_ok=True)
        self._shards = [merged]

    def _store(self) -> dict[bytes, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            if self.directory is not None and self.directory.is_dir():
                for shard in sorted(self.directory.glob("shard-*.npz")):
                    try:
                        with np.load(shard, allow_pickle=False) as npz:
                            keys, vectors = npz["keys"], npz["vectors"]
                    except (OSError, ValueError, KeyError) as err:  # torn or foreign file
                        log.warning("skipping unreadable embedding shard %s: %s", shard, err)
                        continue
                    raw = keys.astype(np.uint8).tobytes()  # not "S32": numpy strips trailing \0
                    byte_keys = [raw[i:i + 32] for i in range(0, len(raw), 32)]
                    self._vectors.update(zip(byte_keys, vectors, strict=True))
                    self._shards.append(shard)
        return self._vectors

    def _write(self, keys: list[bytes], vectors: np.ndarray) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        key_array = np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), 32)
        path = self.directory / f"shard-{time.time_ns()}-{os.getpid()}.npz"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, keys=key_array, vectors=vectors)
        os.replace(tmp, path)
        return path
