"""Hot swap: the running stack follows the artefact store's ``latest`` without a restart.

A ``VersionWatcher`` thread in the stack's process polls ``latest`` every
``serve.version_poll_s``. A new version is checked here first, before any traffic can reach
it: every file its manifest lists is present, the bundle loads and the ranker's model opens;
under ``serve.ranker=triton`` Triton loads the version as a model of its own
(``serve/triton_host.py``), and a Triton that refuses it keeps serving the old one.
Then it is deployed in place: the Ray Serve app is re-run with ``user_config={"version": v}``,
which calls ``Recommender.reconfigure`` on every replica without restarting one; each loads the
version beside the served one and swaps it in with one assignment, so no request fails or
waits on the load (``serve/recommender.py``). A version that fails the check, or fails to load
on a replica, is refused and logged, and the served one stays. ``python -m recsys.retrain
rollback`` points ``latest`` back at the previous version, which this then deploys the same way.

A canary (``recsys.serving.canary_state.start_canary``, or ``python -m recsys.retrain
retrain.canary=true``) is a version served to a share of users as an experiment arm
(``recsys.experiments.canary``), judged every ``serve.canary.check_s`` on the log: rolled back
when a guardrail fails, promoted to ``latest`` when it wins or holds; ``<artefacts>/canary.json``
holds its state and every verdict.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from recsys import RecsysError
from recsys.experiments.canary import PROMOTE, ROLLBACK, CanaryConfig, judge
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.canary_state import CANARY_FILE, write_json

log = logging.getLogger(__name__)


def check_version(store: ArtefactStore, version: str) -> None:
    """Raise ``RecsysError`` naming what is wrong with ``version`` (module doc)."""
    from recsys.serving.bundle import load_bundle

    name, path = store.resolve(version)
    missing = [f for f in store.manifest(name).get("files", []) if not (path / f).is_file()]
    if missing:
        raise RecsysError(f"version {name} is incomplete: {len(missing)} file(s) missing, "
                          f"e.g. {missing[0]}")
    try:
        bundle = load_bundle(name, path)
        import onnxruntime

        onnxruntime.InferenceSession(str(bundle.ranker_dir / "model.onnx"),
                                     providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - whatever breaks, the version is refused
        raise RecsysError(f"version {name} does not load: {type(err).__name__}: "
                          f"{str(err)[:300]}") from None


class VersionWatcher:
    """``deploy(version, canary)``: the in-place update of every replica (``running_stack``);
    ``records()``: the event log's records, for judging a canary."""

    def __init__(self, store: ArtefactStore, current: str,
                 deploy: Callable[[str, dict[str, Any] | None], None], poll_s: float,
                 canary: CanaryConfig | None = None,
                 records: Callable[[], Iterable[dict[str, Any]]] | None = None,
                 models: Any = None) -> None:
        self.store, self.current, self.deploy, self.poll_s = store, current, deploy, poll_s
        self.models = models  # serve.triton_host.TritonModels under serve.ranker=triton
        self.previous: str | None = None  # the version before current: kept loaded
        self.canary_cfg, self.records = canary or CanaryConfig(), records
        self.refused: dict[str, str] = {}
        self.swaps: list[str] = []
        self.canary: dict[str, Any] | None = None  # the canary deployed, with its state
        self._judged = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="version-watcher",
                                        daemon=True)

    def start(self) -> VersionWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.step()
                self.canary_step()
            except Exception as err:  # noqa: BLE001 - the watcher must outlive one bad poll
                log.error("version watcher: %s: %s", type(err).__name__, err)

    def step(self) -> str | None:
        """One poll of ``latest``: the version deployed, or None."""
        try:
            latest = self.store.resolve("latest")[0]
        except RecsysError:
            return None
        if latest == self.current or latest in self.refused:
            return None
        try:
            self.ready(latest)
        except RecsysError as err:
            self.refused[latest] = str(err)
            log.error("not deploying %s (still serving %s): %s", latest, self.current, err)
            return None
        log.info("deploying version %s in place of %s", latest, self.current)
        self.deploy(latest, self.served_canary())
        self.swapped(latest)
        return latest

    def ready(self, version: str) -> None:
        """Check ``version`` and, under Triton, load its model: raise before any traffic."""
        check_version(self.store, version)
        if self.models is not None:
            self.models.load(version)

    def swapped(self, version: str) -> None:
        """``version`` now serves: remember it, unload what nothing needs any more."""
        self.previous, self.current = self.current, version
        self.swaps.append(version)
        if self.models is not None:
            keep = {self.current, self.previous} | ({self.canary["version"]} if self.canary
                                                      else set())
            self.models.retire(keep)

    def served_canary(self) -> dict[str, Any] | None:
        c = self.canary
        return {"version": c["version"], "share": c["share"]} if c else None

    def canary_step(self) -> str | None:
        """A requested canary deployed, a running one judged (module doc): its new state."""
        path = self.store.root / CANARY_FILE
        if not path.is_file():
            return None
        state = json.loads(path.read_text())
        if state.get("state") != "running":
            return None
        version = state["version"]
        if self.canary is None or self.canary["version"] != version:
            try:
                self.ready(version)
            except RecsysError as err:
                return self.finish(path, state, "rolled_back", f"refused: {err}")
            self.canary = {"version": version, "share": float(state["share"])}
            self.deploy(self.current, self.served_canary())
            state.update(started_ms=int(time.time() * 1000), serving=self.current)
            write_json(path, state)
            self._judged = time.monotonic()
            log.info("canary %s on %.0f %% of users", version, 100 * self.canary["share"])
            return "running"
        if self.records is None or time.monotonic() - self._judged < self.canary_cfg.check_s:
            return None
        self._judged = time.monotonic()
        elapsed = time.time() - state["started_ms"] / 1000
        verdict = judge(self.records(), self.canary_cfg, version, elapsed,
                        since_ms=int(state["started_ms"]))
        state["verdict"] = {"state": verdict.state, "reason": verdict.reason,
                            "users": verdict.users, "guardrails": verdict.guardrails,
                            "latency_p99_ms": verdict.latency_p99_ms}
        if verdict.state == ROLLBACK:
            self.canary = None
            self.deploy(self.current, None)
            return self.finish(path, state, "rolled_back", verdict.reason)
        if verdict.state == PROMOTE:
            self.canary = None
            self.store.activate(version)
            self.deploy(version, None)
            self.swapped(version)
            return self.finish(path, state, "promoted", verdict.reason)
        write_json(path, state)
        return "running"

    def finish(self, path: Path, state: dict[str, Any], outcome: str, reason: str) -> str:
        state.update(state=outcome, reason=reason, decided_ms=int(time.time() * 1000))
        write_json(path, state)
        log.warning("canary %s %s: %s", state["version"], outcome.replace("_", " "), reason)
        return outcome
