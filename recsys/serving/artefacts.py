"""Versioned artefact directory: training writes a version, serving reads one by name.

Layout::

    root/versions/<version>/...        indexes, factors, ranker, metadata
    root/versions/<version>/manifest.json
    root/latest -> versions/<version>  (relative symlink)

A version is written in full first and only then ``publish``-ed: publishing writes the
manifest and swaps ``latest`` with ``os.replace`` on a temporary symlink, which is atomic on
POSIX, so a server resolving ``latest`` sees either the old complete version or the new one,
never a half-written directory. Only versions with a manifest count as published.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

from recsys import RecsysError

MANIFEST = "manifest.json"
LATEST = "latest"
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name in {".", "..", LATEST}:
        raise RecsysError(f"Bad artefact version name {name!r}: use letters, digits, '.', '_' "
                          f"or '-' (not '.', '..' or {LATEST!r}).")
    return name


class ArtefactStore:
    """Creates, publishes and resolves artefact versions under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"

    def new_version(self, name: str | None = None) -> Path:
        """Create an empty version directory to write into; named by UTC time unless given."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        if name is not None:
            path = self.versions_dir / _check_name(name)
            try:
                path.mkdir()
            except FileExistsError:
                raise RecsysError(f"Artefact version {name!r} already exists in "
                                  f"{self.versions_dir}; pick another name.") from None
            return path
        base = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        for n in range(1000):  # same-second collisions get -1, -2, ...
            path = self.versions_dir / (base if n == 0 else f"{base}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
        raise RecsysError(f"Could not create a new version under {self.versions_dir}.")

    def publish(self, version: str | Path, extra: dict | None = None, activate: bool = True
                ) -> Path:
        """Write the version's manifest (with ``extra``: why it was published, e.g. a
        retrain's gate) and point ``latest`` at it (atomically; ``activate=False``: leave
        ``latest`` alone, for a canary)."""
        name = _check_name(Path(version).name)
        path = self.versions_dir / name
        if not path.is_dir():
            raise RecsysError(f"Cannot publish artefact version {name!r}: {path} does not "
                              "exist.")
        files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                       if p.is_file() and p.name != MANIFEST)
        manifest = {"version": name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "files": files, **(extra or {})}
        tmp_manifest = path / f".{MANIFEST}.tmp"
        tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp_manifest, path / MANIFEST)
        if not activate:
            return path
        tmp_link = self.root / f".{LATEST}.{uuid.uuid4().hex[:8]}.tmp"
        os.symlink(Path("versions") / name, tmp_link, target_is_directory=True)
        os.replace(tmp_link, self.root / LATEST)
        return path

    def activate(self, version: str) -> None:
        """Point ``latest`` at an already published ``version`` (a rollback): its manifest,
        and the record of why it was published, stay as they were."""
        name, _ = self.resolve(version)
        tmp_link = self.root / f".{LATEST}.{uuid.uuid4().hex[:8]}.tmp"
        os.symlink(Path("versions") / name, tmp_link, target_is_directory=True)
        os.replace(tmp_link, self.root / LATEST)

    def versions(self) -> list[str]:
        """Published versions, oldest first (timestamp names sort chronologically)."""
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if (p / MANIFEST).is_file())

    def resolve(self, version: str = LATEST) -> tuple[str, Path]:
        """The concrete version name and directory for ``version`` (``latest`` followed)."""
        if version == LATEST:
            link = self.root / LATEST
            if not link.is_symlink():
                raise RecsysError(f"No artefact version published under {self.root} yet; "
                                  "train and publish one first.")
            version = Path(os.readlink(link)).name
        path = self.versions_dir / _check_name(version)
        if not (path / MANIFEST).is_file():
            available = ", ".join(self.versions()) or "none"
            raise RecsysError(f"Artefact version {version!r} is not published under "
                              f"{self.root}; available: {available}.")
        return version, path

    def manifest(self, version: str = LATEST) -> dict:
        """The manifest of a published version (what the server reports and checks)."""
        _, path = self.resolve(version)
        return json.loads((path / MANIFEST).read_text())
