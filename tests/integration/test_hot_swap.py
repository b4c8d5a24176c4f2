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


def publish_copy(store: ArtefactStore, source: str, name: str, break_model: bool = False,
                 break_triton: bool = False) -> str:
    src = store.versions_dir / source
    shutil.copytree(src, store.versions_dir / name, ignore=shutil.ignore_patterns(MANIFEST))
    if break_model:
        (store.versions_dir / name / "ranker" / "model.onnx").write_bytes(b"not a model")
    if break_triton:  # the ONNX file opens; Triton cannot parse the model's config
        config = store.versions_dir / name / "ranker" / "triton_repository" / "ranker"
        (config / "config.pbtxt").write_text("max_batch_size: not-a-number\n")
    store.publish(name)
    return name


def triton_models(running) -> dict[str, str]:
    """Triton's repository index: model name -> state."""
    import contextlib

    with contextlib.closing(running.triton.grpc_client()) as client:
        index = client.get_model_repository_index(as_json=True).get("models", [])
    return {m["name"]: m.get("state", "") for m in index}


class Load:
    """Requests in a loop from two threads; every status and version they saw."""

    def __init__(self, url: str) -> None:
        self.url, self.seen, self.failed = url, [], []
        self.t0 = time.monotonic()  # failures carry their time from here and the swaps seen
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
                    self.failed.append(f"{self.clock()} {err!r}")
                    continue
                if res.status_code != 200:
                    self.failed.append(f"{self.clock()} {res.status_code} {res.text[:200]}")
                else:
                    self.seen.append(res.json()["version"])

    def clock(self) -> str:
        """Seconds since the start, and where the versions seen changed (for a failure)."""
        changes = [i for i in range(1, len(self.seen)) if self.seen[i] != self.seen[i - 1]]
        return f"t={time.monotonic() - self.t0:.1f}s after {len(self.seen)} ok, changes {changes}"

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


def refused(running, version: str) -> str:
    deadline = time.monotonic() + 30
    while version not in running.watcher.refused and time.monotonic() < deadline:
        time.sleep(0.1)
    return running.watcher.refused.get(version, "")


def test_versions_swap_in_place_with_no_failed_request(served_artefacts, api_keys):
    """The default stack (the ranker on Triton, explicit model control), two replicas."""
    from recsys.runtime.triton_models import model_name
    from serve.stack import running_stack

    store = ArtefactStore(served_artefacts)
    first = store.resolve("latest")[0]
    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.port=0",
                          "serve.ranker=triton", "serve.pipeline.num_replicas=2",
                          "serve.pipeline.num_cpus=0.5", "serve.router.num_cpus=0.5",
                          "serve.version_poll_s=0.3"])
    serve_cfg = plain(cfg.serve)
    with running_stack(cfg.serve) as running, Load(running.url) as load:
        assert load.until(first)
        assert triton_models(running) == {model_name(first): "READY"}
        second = publish_copy(store, first, f"{first}b")
        assert load.until(second), load.seen[-5:]
        assert triton_models(running)[model_name(second)] == "READY"
        broken = publish_copy(store, first, f"{first}c", break_model=True)
        assert "does not load" in refused(running, broken)
        no_triton = publish_copy(store, first, f"{first}d", break_triton=True)
        assert "Triton did not load" in refused(running, no_triton)
        time.sleep(1.0)
        assert set(load.seen[-20:]) == {second}  # neither broken one ever served
        models = triton_models(running)
        assert models[model_name(second)] == "READY" and models[model_name(first)] == "READY"
        assert models.get(model_name(no_triton)) != "READY"
        store.activate(second)  # latest back on the serving version (no swap: it serves)
        assert rollback(serve_cfg) == (second, first)  # one command: the previous version
        assert load.until(first)
        with httpx.Client(base_url=running.url) as client:
            assert client.get("/readyz").json()["version"] == first
        assert triton_models(running)[model_name(first)] == "READY"
    assert load.failed == [] and len(load.seen) > 50
    assert running.watcher.swaps == [second, first]
    assert prune(served_artefacts, 2) == [second, broken]  # the oldest but latest beyond 2 go
    assert store.versions() == [first, no_triton]
