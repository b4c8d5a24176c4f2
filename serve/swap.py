"""Hot swap: the running stack follows the artefact store's ``latest`` without a restart.

A ``VersionWatcher`` thread in the stack's process polls ``latest`` every
``serve.version_poll_s``. A new version is checked here first, before any traffic can reach
it: every file its manifest lists is present, the bundle loads and the ranker's model opens.
Then it is deployed in place: the Ray Serve app is re-run with ``user_config={"version": v}``,
which calls ``Recommender.reconfigure`` on every replica without restarting one; each loads the
version beside the served one and swaps it in with one assignment, so no request fails or
waits on the load (``serve/recommender.py``). A version that fails the check, or fails to load
on a replica, is refused and logged, and the served one stays. ``python -m recsys.retrain
rollback`` points ``latest`` back at the previous version, which this then deploys the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from recsys import RecsysError
from recsys.serving.artefacts import ArtefactStore

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
    """``deploy(version)``: the in-place update of every replica (``running_stack``)."""

    def __init__(self, store: ArtefactStore, current: str, deploy: Callable[[str], None],
                 poll_s: float) -> None:
        self.store, self.current, self.deploy, self.poll_s = store, current, deploy, poll_s
        self.refused: dict[str, str] = {}
        self.swaps: list[str] = []
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
            except Exception as err:  # noqa: BLE001 - the watcher must outlive one bad poll
                log.error("version watcher: %s: %s", type(err).__name__, err)

    def step(self) -> str | None:
        """One poll: the version deployed, or None."""
        try:
            latest = self.store.resolve("latest")[0]
        except RecsysError:
            return None
        if latest == self.current or latest in self.refused:
            return None
        try:
            check_version(self.store, latest)
        except RecsysError as err:
            self.refused[latest] = str(err)
            log.error("not deploying %s (still serving %s): %s", latest, self.current, err)
            return None
        log.info("deploying version %s in place of %s", latest, self.current)
        self.deploy(latest)
        self.current = latest
        self.swaps.append(latest)
        return latest
