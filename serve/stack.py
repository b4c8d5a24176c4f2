"""Bring the whole serving stack up and down: Triton (the ranker) as its own process, then Ray
on 127.0.0.1 and the Ray Serve app (router -> pipeline) on an HTTP port.

``running_stack(cfg.serve)`` is the one place that knows the order: Triton first (the pipeline
replicas connect to it when they start), Serve last; teardown in reverse, even on errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from recsys import RecsysError
from recsys.runtime.environ import scoped_environ
from recsys.runtime.ports import free_port, free_ports
from recsys.serving.artefacts import ArtefactStore

log = logging.getLogger(__name__)

TOPOLOGIES = ("split", "fused")
INGRESSES = ("proxy", "haproxy")
# Ray Serve's throughput mode, with direct ingress off so the proxy keeps serving host:port
# (direct ingress moves HTTP onto each ingress replica's own port, 30000+, for HAProxy).
THROUGHPUT_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}


@dataclass
class Stack:
    url: str  # http://127.0.0.1:<port>
    version: str
    triton_url: str | None
    triton: Any = None  # the TritonHandle while Triton runs


@contextlib.contextmanager
def running_stack(cfg: Any) -> Iterator[Stack]:
    """``cfg``: the ``serve`` config node (``ServeConfig``)."""
    from ray import serve

    from recsys.runtime.ray_local import local_ray
    from recsys.runtime.tritonserver import tritonserver
    from serve.app import Pipeline, Router, deployment_options

    for knob, value, allowed in (("topology", cfg.topology, TOPOLOGIES),
                                 ("ingress", cfg.ingress, INGRESSES)):
        if value not in allowed:
            raise RecsysError(f"serve.{knob} must be one of {', '.join(allowed)}, "
                              f"got {value!r}")
    if not cfg.artefacts_root:
        raise RecsysError("serve.artefacts_root is not set: point it at a ranker run's "
                          "artefacts folder (python train.py experiment=... writes one)")
    version, path = ArtefactStore(cfg.artefacts_root).resolve(cfg.version)
    params = {"rank_deadline_ms": cfg.rank_deadline_ms, "threads": int(cfg.threads),
              "user_row_cache": int(cfg.user_row_cache),
              "surface_sources": OmegaConf.to_container(cfg.surface_sources),
              "rerank": OmegaConf.to_container(cfg.rerank)}
    port = int(cfg.port) or free_port(cfg.host)
    with contextlib.ExitStack() as stack:
        # before Ray starts: its processes inherit them
        stack.enter_context(scoped_environ(ray_serve_env(cfg.throughput_optimized, cfg.ingress,
                                                         cfg.host)))
        triton = None
        if cfg.ranker == "triton":
            triton = stack.enter_context(tritonserver(path / "ranker" / "triton_repository"))
        stack.enter_context(local_ray())
        serve.start(http_options={"host": cfg.host, "port": port})
        stack.callback(serve.shutdown)
        pipeline_args = (str(cfg.artefacts_root), version, cfg.ranker,
                         triton.grpc_url if triton else None, params)
        triton_metrics = triton.metrics_url if triton else None
        if cfg.topology == "fused":  # the router replica runs the pipeline: scale it as one
            options = {**deployment_options(cfg.pipeline), "logging_config": {
                "enable_access_log": bool(cfg.router.access_log)}}
            app = Router.options(**options).bind(pipeline_args, triton_metrics)
        else:
            pipeline = Pipeline.options(**deployment_options(cfg.pipeline)).bind(*pipeline_args)
            app = Router.options(**deployment_options(cfg.router)).bind(pipeline,
                                                                        triton_metrics)
        serve.run(app, name="recsys", route_prefix="/", blocking=False)
        url = f"http://{cfg.host}:{port}"
        log.info("recsys serving version %s on %s (ranker: %s)", version, url, cfg.ranker)
        yield Stack(url, version, triton.grpc_url if triton else None, triton)



def ray_serve_env(throughput_optimized: bool, ingress: str, host: str) -> dict[str, str]:
    """The Ray Serve mode as environment variables for Ray's processes: throughput mode (a
    value the caller already exported wins), and for ``ingress="haproxy"`` Ray's HAProxy
    ingress (it implies direct ingress: each ingress replica serves HTTP itself, on a port
    from 30000, behind HAProxy on ``serve.port``), with free ports for HAProxy's stats and
    metrics listeners instead of the fixed 8404 / 9101, so two stacks on one machine do not
    collide."""
    env = ({k: os.environ.get(k, v) for k, v in THROUGHPUT_ENV.items()}
           if throughput_optimized else {})
    if ingress == "haproxy":
        stats, metrics = free_ports(2, host)
        env.update({"RAY_SERVE_ENABLE_HA_PROXY": "1",
                    "RAY_SERVE_HAPROXY_STATS_PORT": str(stats),
                    "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics)})
    return env
