"""The serving stack's Triton models under explicit model control: one model per artefact
version, loaded and unloaded through Triton's repository API while the server runs.

Why one model per version (``ranker_<version>``) rather than numbered versions of one model:
a hot swap and a canary need two artefact versions served at once, each request naming the one
it wants, and an artefact version is a name, not Triton's integer. The stack owns the
repository folder: each model is a ``config.pbtxt`` (the version's own, renamed) beside a link
to the version's model files, so nothing is copied and the artefact store is never written.
Triton runs with ``--model-control-mode=explicit``: it loads what the stack asks for and
nothing else, and a model that fails to load leaves the ones already serving untouched.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from recsys import RecsysError

log = logging.getLogger(__name__)

PREFIX = "ranker_"
_NAME = re.compile(r'^name:\s*".*"\s*$', re.MULTILINE)


class TritonModelError(RecsysError):
    """A version's ranker could not be added to or loaded into Triton (the message says why)."""


def model_name(version: str) -> str:
    """Triton's name for ``version``'s ranker (letters, digits, ``_``, ``-`` and ``.``)."""
    return PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", version)


class ServedModels:
    """The stack's model repository (``folder``) and what it asked Triton to load."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.loaded: list[str] = []  # versions, in load order

    def add(self, version: str, version_repo: Path, model: str = "ranker") -> str:
        """Write ``version``'s model folder from its own Triton repository; return its name."""
        source = Path(version_repo) / model
        config = source / "config.pbtxt"
        if not config.is_file() or not (source / "1").is_dir():
            raise TritonModelError(f"version {version}: no Triton model at {source} "
                                   "(config.pbtxt and 1/)")
        name = model_name(version)
        target = self.folder / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        text, found = _NAME.subn(f'name: "{name}"', config.read_text(), count=1)
        if not found:
            text = f'name: "{name}"\n{text}'
        (target / "config.pbtxt").write_text(text)
        (target / "1").symlink_to((source / "1").resolve(), target_is_directory=True)
        return name

    def load(self, client, version: str, version_repo: Path) -> str:
        """Add and load ``version`` on a running Triton (``client``: tritonclient gRPC or
        HTTP); ``TritonModelError`` with Triton's reason if it does not load and become ready.
        """
        from tritonclient.utils import InferenceServerException

        name = self.add(version, version_repo)
        try:
            client.load_model(name)
            ready = client.is_model_ready(name)
        except InferenceServerException as err:
            raise TritonModelError(f"Triton did not load {name}: {err.message()[:300]}") from None
        if not ready:
            raise TritonModelError(f"Triton loaded {name} but it is not ready")
        if version in self.loaded:
            self.loaded.remove(version)
        self.loaded.append(version)
        log.info("Triton loaded %s", name)
        return name

    def unload_except(self, client, keep: set[str]) -> list[str]:
        """Unload every loaded version not in ``keep``; the versions unloaded."""
        from tritonclient.utils import InferenceServerException

        gone = []
        for version in [v for v in self.loaded if v not in keep]:
            try:
                client.unload_model(model_name(version))
            except InferenceServerException as err:
                log.warning("Triton did not unload %s: %s", model_name(version), err.message())
                continue
            self.loaded.remove(version)
            gone.append(version)
        return gone
