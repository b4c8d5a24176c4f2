"""Triton for the serving stack, under explicit model control: the served version, every
experiment arm's version, and whatever the version watcher loads later (a hot swap, a canary).

At start Triton loads the served version's ranker and each arm's, one model per artefact
version (``recsys.runtime.triton_models``). ``TritonModels.load`` adds a version while requests
flow: a model Triton refuses raises before any replica is told about it, so the version watcher
refuses the version and the served one stays. After a swap ``retire`` unloads what no arm, no
canary and no one-step rollback needs.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recsys.runtime.triton_models import ServedModels
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.settings import ServeConfig


def arm_versions(cfg: ServeConfig, artefacts: ArtefactStore) -> list[str]:
    """The artefact versions the configured experiments' arms name (resolved)."""
    return [artefacts.resolve(arm.version)[0] for exp in cfg.experiments.values()
            for arm in exp.arms if arm.version]


@dataclass
class TritonModels:
    handle: object  # the TritonHandle
    served: ServedModels
    artefacts: ArtefactStore
    pinned: frozenset[str]  # experiment arms' versions: loaded for the stack's life

    def repo(self, version: str) -> Path:
        return self.artefacts.resolve(version)[1] / "ranker" / "triton_repository"

    def load(self, version: str) -> None:
        """Load ``version``'s ranker now (a no-op when loaded); ``TritonModelError`` if not."""
        if version in self.served.loaded:
            return
        with contextlib.closing(self.handle.grpc_client()) as client:
            self.served.load(client, version, self.repo(version))

    def retire(self, keep: set[str]) -> list[str]:
        """Unload every version but ``keep`` and the arms'; the versions unloaded."""
        with contextlib.closing(self.handle.grpc_client()) as client:
            return self.served.unload_except(client, set(keep) | set(self.pinned))


@contextlib.contextmanager
def triton_models(cfg: ServeConfig, artefacts: ArtefactStore, version: str
                  ) -> Iterator[TritonModels]:
    """Triton serving ``version`` and the arms' versions, stopped on exit."""
    from recsys.runtime.tritonserver import tritonserver

    pinned = arm_versions(cfg, artefacts)
    with tempfile.TemporaryDirectory(prefix="recsys-models-") as folder:
        served = ServedModels(folder)
        first = list(dict.fromkeys([version, *pinned]))
        models = TritonModels(None, served, artefacts, frozenset(pinned))
        names = [served.add(v, models.repo(v)) for v in first]
        with tritonserver(served.folder, load_models=names) as handle:
            models.handle = handle
            served.loaded = first
            yield models
