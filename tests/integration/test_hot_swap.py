"""Hot swap on the real stack under load: a newly published version is served by every replica
without a restart, a broken one is refused before any traffic reaches it, a rollback swaps
the previous one back, and not one request fails throughout."""

import shutil
import threading
import time

import httpx
import pytest

from recsys.config.compose import plain
from recsys.retrain.job import prune, rollback
from recsys.serving.artefacts import MANIFEST, ArtefactStore
from tests.integration.conftest import compose_config

pytestmark = pytest.mark.integration


def publish_copy(store: ArtefactStore, source: str, name: str, break_model: bool = False) -> str:
    src = store.versions_dir / source
    shutil.copytree(src, store.versions_dir / name, ignore=shutil.ignore_patterns(MANIFEST))
    if break_model:
        (store.versions_dir / name / "ranker" / "model.onnx").write_bytes(b"not a model")
    store.publish(name)
    return name


class Load:
    """Requests in a loop from two threads; every status and version they saw."""

    def __init__(self, url: str) -> None:
        self.url, self.seen, self.failed = url, [], []
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(k,)) for k in range(2)]

    def run(self, k: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    res = client.get("/v1/recommendations", params={"user_id": 1 + (n + k) % 50})
                except httpx.HTTPError as err:
                    self.failed.append(repr(err))
                    continue
                if res.status_code != 200:
                    self.failed.append(f"{res.status_code} {res.text[:200]}")
                else:
                    self.seen.append(res.json()["version"])

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self.threads:
            t.join()

    def until(self, version: str, timeout_s: float = 90.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.seen[-20:] and set(self.seen[-20:]) == {version}:
                return True
            time.sleep(0.2)
        return False


def test_versions_swap_in_place_with_no_failed_request(served_artefacts, api_keys):
    from serve.stack import running_stack

    store = ArtefactStore(served_artefacts)
    first = store.resolve("latest")[0]
    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.port=0",
                          "serve.ranker=onnx", "serve.pipeline.num_replicas=2",
                          "serve.pipeline.num_cpus=0.5", "serve.router.num_cpus=0.5",
                          "serve.version_poll_s=0.3"])
    serve_cfg = plain(cfg.serve)
    with running_stack(cfg.serve) as running, Load(running.url) as load:
        assert load.until(first)
        second = publish_copy(store, first, f"{first}b")
        assert load.until(second), load.seen[-5:]
        broken = publish_copy(store, first, f"{first}c", break_model=True)
        deadline = time.monotonic() + 20
        while broken not in running.watcher.refused and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "does not load" in running.watcher.refused[broken]
        time.sleep(1.0)
        assert set(load.seen[-20:]) == {second}  # the broken one never served
        assert rollback(serve_cfg) == (broken, second)  # latest: back past the broken one
        time.sleep(1.0)
        assert rollback(serve_cfg) == (second, first)  # and once more: the first version
        assert load.until(first)
        with httpx.Client(base_url=running.url) as client:
            assert client.get("/readyz").json()["version"] == first
    assert load.failed == [] and len(load.seen) > 50
    assert running.watcher.swaps == [second, first]
    assert prune(served_artefacts, 2) == [second]  # the oldest but latest beyond 2 go
    assert store.versions() == [first, broken]
