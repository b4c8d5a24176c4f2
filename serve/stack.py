"""Bring the whole serving stack up and down: Triton (the ranker) as its own process, then Ray
on 127.0.0.1 and the Ray Serve app (router -> recommender) on an HTTP port.

``running_stack(cfg.serve)`` is the one place that knows the order: Triton first (the
recommender replicas connect to it when they start), Serve last; teardown in reverse, even on
errors, and quiet (``stop_serve``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recsys import RecsysError
from recsys.runtime.environ import scoped_environ
from recsys.runtime.ports import free_port, free_ports
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.settings import Ingress, RankerKind, ServeConfig, Topology

log = logging.getLogger(__name__)

# Ray Serve's throughput mode, with direct ingress off so the proxy keeps serving host:port
# (direct ingress moves HTTP onto each ingress replica's own port, 30000+, for HAProxy).
THROUGHPUT_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}
SERVE_STOP_TIMEOUT_S = 60.0  # the controller drains replicas and proxies, then exits


@dataclass
class Stack:
    url: str  # http://127.0.0.1:<port>
    version: str
    triton_url: str | None
    triton: Any = None  # the TritonHandle while Triton runs
    events: Any = None  # the EventsConfig the stack runs with (None: live events off)
    live_folder: Path | None = None
    redis: Any = None  # the RedisHandle when the stack started redis-server itself
    processor: Any = None  # the stream processor's Ray actor
    watcher: Any = None  # the VersionWatcher following ``latest`` (None: hot swap off)


def serve_settings(cfg: ServeConfig | DictConfig) -> ServeConfig:
    """The composed ``serve`` node as the ``ServeConfig`` dataclass (converted once; the
    deployments get this object, pickled, and read it with no defaults of their own)."""
    return cfg if isinstance(cfg, ServeConfig) else OmegaConf.to_object(cfg)


@contextlib.contextmanager
def running_stack(cfg: ServeConfig | DictConfig) -> Iterator[Stack]:
    """``cfg``: the ``serve`` config node, or the ``ServeConfig`` it converts to."""
    from ray import serve

    from recsys.runtime.ray_local import local_ray
    from serve.app import Router, deployment_options
    from serve.recommender import Recommender
    from serve.triton_host import triton_models

    cfg = serve_settings(cfg)
    if not cfg.artefacts_root:
        raise RecsysError("serve.artefacts_root is not set: point it at a ranker run's "
                          "artefacts folder (python train.py experiment=... writes one)")
    artefacts = ArtefactStore(cfg.artefacts_root)
    version, path = artefacts.resolve(cfg.version)
    if cfg.experiments:  # a bad experiment stops the start here, in one line
        from recsys.serving.experiment_paths import check_experiments

        check_experiments(cfg, lambda v: artefacts.resolve(v)[0])
    port = cfg.port or free_port(cfg.host)
    with contextlib.ExitStack() as stack:
        # before Ray starts: its processes inherit them
        stack.enter_context(scoped_environ(ray_serve_env(cfg.throughput_optimized, cfg.ingress,
                                                         cfg.host)))
        triton = models = None
        if cfg.ranker == RankerKind.triton:  # explicit model control: serve/triton_host.py
            models = stack.enter_context(triton_models(cfg, artefacts, version))
            triton = models.handle
        keys = api_keys()
        live = None
        if cfg.events.enabled:
            cfg, live = stack.enter_context(live_events(cfg, path))
        stack.enter_context(local_ray())
        processor = None
        if live is not None:
            from serve.stream_actor import start_stream_actor

            processor = start_stream_actor(cfg.events, str(live.folder))
            stack.callback(stop_actor, processor)
        serve.start(http_options={"host": cfg.host, "port": port})
        stack.callback(stop_serve)
        events_args = None if live is None else (cfg.events, str(live.folder), path)
        from recsys.serving.canary_state import CANARY_FILE

        auth = (keys, cfg.read_needs_key, str(artefacts.root / CANARY_FILE))
        recommender_args = (cfg, version, triton.grpc_url if triton else None)
        triton_metrics = triton.metrics_url if triton else None

        def deploy(serving: str, canary: dict[str, Any] | None = None) -> None:
            """The app, serving ``serving`` and ``canary`` (``user_config``: a later call with
            other ones updates every replica in place, ``serve/swap.py``)."""
            live = {"user_config": {"version": serving, "canary": canary}}
            if cfg.topology == Topology.fused:  # the router replica runs the request path
                options = {**deployment_options(cfg.pipeline), **live,
                           "logging_config": {"enable_access_log": cfg.router.access_log}}
                app = Router.options(**options).bind(recommender_args, triton_metrics,
                                                     events_args, *auth)
            else:
                recommender = Recommender.options(**deployment_options(cfg.pipeline),
                                                  **live).bind(*recommender_args)
                app = Router.options(**deployment_options(cfg.router)).bind(
                    recommender, triton_metrics, events_args, *auth)
            serve.run(app, name="recsys", route_prefix="/", blocking=False)

        deploy(version)
        watcher = None
        if cfg.version == "latest" and cfg.version_poll_s > 0:
            from serve.swap import VersionWatcher

            watcher = VersionWatcher(artefacts, version, deploy, cfg.version_poll_s,
                                     cfg.canary, log_records(cfg) if live else None, models)
            stack.callback(watcher.start().stop)
        url = f"http://{cfg.host}:{port}"
        log.info("recsys serving version %s on %s (ranker: %s)", version, url, cfg.ranker)
        yield Stack(url, version, triton.grpc_url if triton else None, triton,
                    cfg.events if live else None, live.folder if live else None,
                    live.redis if live else None, processor, watcher)


def log_records(cfg: ServeConfig):
    """A reader of the whole event log (a canary's judge reads it at every check)."""
    def records():
        from recsys.events.log import open_log

        event_log = open_log(cfg.events, str(cfg.live_folder()))
        try:
            return [e.record for batch in event_log.scan() for e in batch]
        finally:
            event_log.close()
    return records


@dataclass
class Live:
    folder: Path
    redis: Any = None


def api_keys() -> Any:
    """The write (and read) keys from the environment, read once here: a malformed entry stops
    the stack in one sentence, and the replicas get digests only (``serve/auth.py``)."""
    from serve.auth import ENV_FILE, ENV_KEYS, ApiKeys

    keys = ApiKeys.from_environment()
    if not keys.configured:
        log.warning("no API keys configured: POST /v1/events and /v1/items answer 401 until "
                    "%s or %s is set", ENV_KEYS, ENV_FILE)
    return keys


@contextlib.contextmanager
def live_events(cfg: ServeConfig, bundle_dir: Path) -> Iterator[tuple[ServeConfig, Live]]:
    """What live events need before the replicas start: Redis when
    ``serve.events.backend=redis`` names no server, and a store that holds the history: an
    empty log is backfilled from the bundle's training events (``serve.events.backfill``) and
    applied."""
    from recsys.events.backfill import backfill, bundle_interactions
    from recsys.events.log import open_log
    from recsys.events.processor import StreamProcessor
    from recsys.events.settings import Backend, BackfillSource
    from recsys.events.store import open_store
    folder = cfg.live_folder()
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        redis = None
        if cfg.events.backend == Backend.redis and not cfg.events.redis_url:
            from recsys.runtime.redis_server import redis_server

            redis = stack.enter_context(redis_server(folder / "redis",
                                                     fsync=str(cfg.events.redis_fsync)))
            cfg = dataclasses.replace(cfg, events=dataclasses.replace(
                cfg.events, redis_url=redis.url))
        event_log = open_log(cfg.events, str(folder))
        store = open_store(cfg.events, str(folder))
        try:
            if cfg.events.backfill == BackfillSource.bundle and event_log.count() == 0:
                import numpy as np
                import pandas as pd

                ids = np.load(bundle_dir / "ids.npz")
                events = pd.read_parquet(bundle_dir / "events.parquet")
                backfill(event_log, bundle_interactions(events, ids["user_ids"],
                                                        ids["item_ids"]), "bundle")
            StreamProcessor(event_log, store, cfg.events).drain(timeout_s=1800)
        finally:
            event_log.close()
            store.close()
        yield cfg, Live(folder, redis)


def stop_actor(actor: Any) -> None:
    import ray

    with contextlib.suppress(Exception):
        ray.get(actor.stop.remote(), timeout=15)
    with contextlib.suppress(Exception):
        ray.kill(actor)


def stop_serve(timeout_s: float = SERVE_STOP_TIMEOUT_S) -> None:
    """Ray Serve's shutdown, in an order that leaves nothing failed behind.

    ``serve.shutdown()`` waits on the controller's ``graceful_shutdown`` call, which never
    returns by design: the controller kills itself once its replicas and proxies are down, and
    Ray reports that pending call to the driver as a failed task ("graceful_shutdown failed
    ... will be retried"). Here the controller is told to shut down without a reply, the driver
    waits until it is gone, and then drops its handle to it: the same teardown, no error. If
    this Ray's internals differ, or the controller outlives ``timeout_s``, it falls back to
    ``serve.shutdown()``.
    """
    import ray
    from ray import serve

    try:
        from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE
        from ray.serve.context import _disconnect, _get_global_client

        client = _get_global_client(raise_if_no_controller_running=False)
        if client is None:
            return
        client.shutdown_cached_handles()  # as serve.shutdown() does, first
        ray.get(client._controller.graceful_shutdown.remote(wait=False), timeout=timeout_s)
    except (ImportError, AttributeError, TypeError, ray.exceptions.RayError) as err:
        log.debug("Serve's quiet shutdown unavailable (%s); using serve.shutdown()", err)
        serve.shutdown()
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        except ValueError:  # gone: it stopped every replica and proxy before it exited
            client._shutdown = True
            _disconnect()
            return
        time.sleep(0.1)
    log.warning("Ray Serve's controller still up after %.0f s; forcing serve.shutdown()",
                timeout_s)
    serve.shutdown()


def ray_serve_env(throughput_optimized: bool, ingress: Ingress | str, host: str
                  ) -> dict[str, str]:
    """The Ray Serve mode as environment variables for Ray's processes: throughput mode (a
    value the caller already exported wins), and for ``ingress="haproxy"`` Ray's HAProxy
    ingress (it implies direct ingress: each ingress replica serves HTTP itself, on a port
    from 30000, behind HAProxy on ``serve.port``), with free ports for HAProxy's stats and
    metrics listeners instead of the fixed 8404 / 9101, so two stacks on one machine do not
    collide."""
    env = ({k: os.environ.get(k, v) for k, v in THROUGHPUT_ENV.items()}
           if throughput_optimized else {})
    if ingress == Ingress.haproxy:
        stats, metrics = free_ports(2, host)
        env.update({"RAY_SERVE_ENABLE_HA_PROXY": "1",
                    "RAY_SERVE_HAPROXY_STATS_PORT": str(stats),
                    "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics)})
    return env
