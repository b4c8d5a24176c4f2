"""Versioned artefact directory: publish and resolve, explicit versions, clear errors, the
atomic ``latest`` switch and the manifest."""

import json
import os

import pytest

from recsys import RecsysError
from recsys.serving.artefacts import ArtefactStore


def write_version(store: ArtefactStore, name: str | None = None) -> str:
    path = store.new_version(name)
    (path / "index").mkdir()
    (path / "index" / "items.faiss").write_bytes(b"x")
    (path / "ranker.pt").write_bytes(b"y")
    return path.name


def test_publish_then_resolve_latest(tmp_path):
    store = ArtefactStore(tmp_path)
    name = write_version(store)
    assert len(name) >= 16 and name.endswith("Z")  # YYYYMMDDTHHMMSSZ
    with pytest.raises(RecsysError, match="No artefact version published"):
        store.resolve()
    assert store.versions() == []  # written but not published: not servable
    store.publish(name)
    assert store.resolve() == (name, tmp_path / "versions" / name)
    assert store.versions() == [name]


def test_same_second_versions_get_distinct_names(tmp_path):
    store = ArtefactStore(tmp_path)
    names = {store.new_version().name for _ in range(3)}
    assert len(names) == 3


def test_latest_switches_and_older_version_still_resolves(tmp_path):
    store = ArtefactStore(tmp_path)
    store.publish(write_version(store, "v1"))
    store.publish(write_version(store, "v2"))
    assert (tmp_path / "latest").is_symlink()
    assert os.readlink(tmp_path / "latest") == os.path.join("versions", "v2")
    assert store.resolve()[0] == "v2"
    assert store.resolve("v1") == ("v1", tmp_path / "versions" / "v1")
    assert store.versions() == ["v1", "v2"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp left


def test_missing_version_names_available(tmp_path):
    store = ArtefactStore(tmp_path)
    store.publish(write_version(store, "v1"))
    store.publish(write_version(store, "v2"))
    with pytest.raises(RecsysError, match="'v9' is not published.*available: v1, v2"):
        store.resolve("v9")


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "latest", "..", "sp ace"])
def test_bad_version_name_refused(tmp_path, bad):
    store = ArtefactStore(tmp_path)
    with pytest.raises(RecsysError, match="Bad artefact version name"):
        store.new_version(bad)


def test_existing_name_refused(tmp_path):
    store = ArtefactStore(tmp_path)
    write_version(store, "v1")
    with pytest.raises(RecsysError, match="already exists"):
        store.new_version("v1")


def test_manifest_lists_files(tmp_path):
    store = ArtefactStore(tmp_path)
    path = store.publish(write_version(store, "v1"))
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["version"] == "v1" and manifest["created"]
    assert manifest["files"] == ["index/items.faiss", "ranker.pt"]
    assert store.manifest() == manifest
