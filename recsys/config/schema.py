"""Structured (dataclass) schemas for every config group in ``configs/``.

Each YAML option starts from one of these (``defaults: [/schema/<group>@_here_: <name>]``), so
a misspelled key or a wrong type fails at composition, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from recsys.candidates.als import ALSBackend
from recsys.candidates.base import Interactions
from recsys.candidates.cowatch import CoWatchMethod
from recsys.data.splits import SplitConfig
from recsys.eval.protocol import EvalConfig
from recsys.index.faiss_index import Metric
from recsys.retrain.settings import RetrainConfig
from recsys.serving.settings import ServeConfig  # the serve group: the serving layer's own
from recsys.tracking import LoggerConfig
from recsys.train.settings import RankerConfig, TrainerConfig


@dataclass
class DataConfig:
    name: str = MISSING  # ml-latest-small | ml-100k | ml-1m | synthetic | events
    # Folder holding <name>/ (MovieLens) or the generated data (synthetic); null = bundled copy.
    root: str | None = None


@dataclass
class SyntheticDataConfig(DataConfig):
    name: str = "synthetic"
    n_users: int = 2_000
    n_items: int = 1_000
    n_events: int = 100_000
    n_genres: int = 20
    popularity_exponent: float = 1.0
    # event mix (shares sum to 1; only ratings carry a score for eval.positive_threshold)
    play_share: float = 0.6
    click_share: float = 0.25
    rating_share: float = 0.1
    search_share: float = 0.05
    seed: int = 42


@dataclass
class EventsDataConfig(DataConfig):
    """``data=events``: train on the logged events (``recsys.data.events_data``)."""

    name: str = "events"
    path: str | None = None  # the folder `python -m recsys.stream export` wrote (required)
    days: int | None = None  # the last N calendar days of the export; null = all of it
    catalog: str = "ml-latest-small"  # the MovieLens release whose titles the stack served
    engaged_fraction: float = 0.7  # a play watched this far is engagement (a positive)
    engaged_rating: float = 5.0  # the rating an engaged play counts as
    event_types: list[str] = field(default_factory=lambda: ["play", "rating"])


@dataclass
class EaseConfig:
    _target_: str = "recsys.candidates.ease.EASE"
    l2: float = 500.0  # lambda: the one knob; 500 is the published ml-1m optimum region
    device: str = "${trainer.device}"


@dataclass
class PopularConfig:
    _target_: str = "recsys.candidates.popular.MostPopular"


@dataclass
class ALSConfig:
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008), confidence c = 1 + alpha * r."""

    _target_: str = "recsys.candidates.als.ALS"
    factors: int = 128
    regularization: float = 100.0
    alpha: float = 10.0
    iterations: int = 15
    seed: int = "${seed}"  # type: ignore[assignment]
    backend: ALSBackend = ALSBackend.implicit  # implicit: the faster CPU solver (benchmarks/cf.md)
    cg_steps: int = 3  # conjugate-gradient steps per row solve (both backends)
    device: str = "${trainer.device}"
    cpu_threads: int | None = None  # torch backend on CPU: pin threads (1 is best on 2 cores)
    interactions: Interactions = Interactions.positives  # liked titles, or every event


@dataclass
class TrendingConfig:
    _target_: str = "recsys.candidates.trending.Trending"
    half_life_days: float = 30.0  # decay of an event's weight; the knob between "now" and "ever"
    now: int | None = None  # Unix seconds; null = latest training event
    windows_days: list[int] = field(default_factory=lambda: [1, 7])


@dataclass
class CoWatchConfig:
    _target_: str = "recsys.candidates.cowatch.CoWatch"
    method: CoWatchMethod = CoWatchMethod.ease
    l2: float = 500.0  # ease
    neighbours: int = 200  # knn: kept neighbours per item
    shrink: float = 10.0  # knn: damps similarities built on few co-watches
    interactions: Interactions = Interactions.positives  # liked titles, or every event


@dataclass
class ContentConfig:
    """MiniLM embeddings of title/year/genres/tags, searched with the configured FAISS index."""

    _target_: str = "recsys.candidates.content.ContentSource"
    factory: str = "${index.factory}"
    metric: Metric = "${index.metric}"  # type: ignore[assignment]
    nprobe: int = "${index.nprobe}"  # type: ignore[assignment]
    ef_search: int = "${index.ef_search}"  # type: ignore[assignment]
    half_life_days: float | None = 365.0  # recency decay of a liked title in the user profile
    rating_center: float = 2.5  # ratings at or below this add nothing to the profile
    implicit_weight: float = 1.0  # weight of an event without a rating (play, click)
    max_tags: int = 10  # tags per title in its text
    batch_size: int = 64  # titles per encoder batch
    cache_dir: str | None = "${oc.env:RECSYS_CACHE,.cache}/embeddings"  # by content hash
    device: str = "${trainer.device}"
    progress: bool = "${trainer.progress}"  # type: ignore[assignment]


@dataclass
class IndexConfig:
    """A FAISS index over item vectors (recsys.index.VectorIndex)."""

    _target_: str = "recsys.index.VectorIndex"
    factory: str = "Flat"  # FAISS index factory string: Flat | IVF1024,Flat | HNSW32 | IVF,PQ
    metric: Metric = Metric.cosine
    nprobe: int = 16  # IVF cells visited per query
    ef_search: int = 128  # HNSW candidate list size
    use_gpu: bool = True  # used only where faiss-gpu and CUDA are present


@dataclass
class SourceSlot:
    model: Any = MISSING  # a model config (configs/model/*) that is also a candidate source
    quota: int = 100  # most new items this source adds to the merged set
    weight: float = 1.0  # trust in its ranking for the merge order (reciprocal-rank fusion)


@dataclass
class GeneratorConfig:
    sources: dict[str, SourceSlot] = field(default_factory=dict)
    overfetch: float = 2.0  # each source is asked for quota * overfetch (duplicates)


@dataclass
class OutputConfig:
    top_n: int = 10  # recommendations printed for the sample user
    sample_user: int | None = None  # raw user id; null = first evaluated user


@dataclass
class Config:
    data: Any = MISSING
    model: Any = MISSING
    index: Any = MISSING  # the FAISS index every vector source builds (configs/index/)
    candidates: Any = None  # the merged candidate set (configs/candidates/), when asked for
    ranker: Any = None  # the second stage (configs/ranker/); set = train.py trains the ranker
    serve: ServeConfig = field(default_factory=ServeConfig)  # python -m serve (configs/serve/)
    split: SplitConfig = field(default_factory=SplitConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)  # python -m recsys.retrain
    seed: int = 42
    name: str = "default"  # run name, shown in wandb and the output folder


def register_configs() -> None:
    """Put every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="schema/data", name="movielens", node=DataConfig)
    cs.store(group="schema/data", name="synthetic", node=SyntheticDataConfig)
    cs.store(group="schema/data", name="events", node=EventsDataConfig)
    cs.store(group="schema/model", name="ease", node=EaseConfig)
    cs.store(group="schema/model", name="popular", node=PopularConfig)
    cs.store(group="schema/model", name="als", node=ALSConfig)
    cs.store(group="schema/model", name="trending", node=TrendingConfig)
    cs.store(group="schema/model", name="cowatch", node=CoWatchConfig)
    cs.store(group="schema/model", name="content", node=ContentConfig)
    cs.store(group="schema/index", name="index", node=IndexConfig)
    cs.store(group="schema/candidates", name="generator", node=GeneratorConfig)
    cs.store(group="schema/split", name="split", node=SplitConfig)
    cs.store(group="schema/trainer", name="trainer", node=TrainerConfig)
    cs.store(group="schema/ranker", name="ranker", node=RankerConfig)
    cs.store(group="schema/logger", name="logger", node=LoggerConfig)
    cs.store(group="schema/serve", name="serve", node=ServeConfig)
