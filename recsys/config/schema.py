"""Structured (dataclass) schemas for every config group in ``configs/``.

Each YAML option starts from one of these (``defaults: [/schema/<group>@_here_: <name>]``), so
a misspelled key or a wrong type fails at composition, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from recsys.serving.settings import ServeConfig  # the serve group: the serving layer's own


@dataclass
class DataConfig:
    name: str = MISSING  # ml-latest-small | ml-100k | ml-1m | synthetic
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
class SplitConfig:
    kind: str = "random"  # random | temporal | leave_last
    fraction: float = 0.2  # share of each user's events held out (ignored by leave_last)
    seed: int = "${seed}"  # type: ignore[assignment]  # follows the run seed by default


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
    backend: str = "implicit"  # implicit (CPU, measured faster here) | torch (CUDA by device)
    cg_steps: int = 3  # conjugate-gradient steps per row solve (both backends)
    device: str = "${trainer.device}"
    cpu_threads: int | None = None  # torch backend on CPU: pin threads (1 is best on 2 cores)
    interactions: str = "positives"  # positives | all: fit on liked titles or on every event


@dataclass
class TrendingConfig:
    _target_: str = "recsys.candidates.trending.Trending"
    half_life_days: float = 30.0  # decay of an event's weight; the knob between "now" and "ever"
    now: int | None = None  # Unix seconds; null = latest training event
    windows_days: list[int] = field(default_factory=lambda: [1, 7])


@dataclass
class CoWatchConfig:
    _target_: str = "recsys.candidates.cowatch.CoWatch"
    method: str = "ease"  # ease (dense, best on MovieLens) | knn (sparse, large catalogs)
    l2: float = 500.0  # ease
    neighbours: int = 200  # knn: kept neighbours per item
    shrink: float = 10.0  # knn: damps similarities built on few co-watches
    interactions: str = "positives"  # positives | all: fit on liked titles or on every event


@dataclass
class ContentConfig:
    """MiniLM embeddings of title/year/genres/tags, searched with the configured FAISS index."""

    _target_: str = "recsys.candidates.content.ContentSource"
    factory: str = "${index.factory}"
    metric: str = "${index.metric}"
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
    metric: str = "cosine"  # cosine | ip | l2
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
class TrainerConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N (falls back to CPU with a warning)
    progress: bool = True  # progress bars on long steps
    eval_batch_size: int = 2048  # users scored per batch during evaluation
    # ranker training (ignored by the single-stage models)
    kind: str = "local"  # local (one in-process worker) | ray (Ray Train TorchTrainer)
    num_workers: int = 1  # Ray Train workers; each holds a shard of the embedding tables
    cpus_per_worker: float = 1.0
    threads_per_worker: int | None = None  # torch threads per worker; null = cores / workers
    epochs: int = 5
    batch_size: int = 1024  # rows per worker per step
    patience: int = 2  # epochs without a better validation NDCG@10 before early stopping
    resume: bool = True  # continue from the last checkpoint in the run's checkpoint folder
    checkpoint_dir: str | None = None  # null = <run dir>/checkpoints
    # table -> allowed TorchRec sharding types; CPU allows data_parallel, table_wise,
    # column_wise, table_column_wise; CUDA adds row_wise (see configs/trainer/gpu.yaml)
    sharding: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class RankerFeaturesConfig:
    history_length: int = 50  # titles in the user's recent-history bag
    history_half_life: float = 10.0  # events back at which a history title's weight halves
    max_genres: int = 32
    max_tags: int = 8
    tag_vocab: int = 2000
    year_bucket: int = 5  # years per release-year bucket
    id_dim: int = 64  # user / item embedding size
    attr_dim: int = 16  # genre, tag, year, demographic and context embedding size
    rating_threshold: float = 4.0  # label: engaged = rating >= this ...
    watch_threshold: float = 0.7  # ... or watch fraction >= this for plays
    user_id: bool = False  # user-id embedding: memorised the label slice on ml-1m (features.py)


@dataclass
class RankerModelConfig:
    tower_dims: list[int] = field(default_factory=lambda: [256, 64])  # last = embedding size
    dense_dims: list[int] = field(default_factory=lambda: [64, 64])  # over every dense feature
    interaction_dims: list[int] = field(default_factory=lambda: [64])


@dataclass
class NegativesConfig:
    # per positive, drawn from the user's merged candidates; -1 = every merged candidate (the
    # rows the ranker sees when serving; measured best on ml-1m, benchmarks/ranker.md)
    hard: int = -1
    random: int = 0  # per positive, drawn from the catalog
    explicit: bool = False  # label events below the engagement bar are negatives too


@dataclass
class StackingConfig:
    label_fraction: float = 0.2  # share of each user's train events that label the ranker
    folds: int = 1  # > 1: K-fold stacking (each train event labels once; K x rows and fits)
    validation_users: float = 0.1  # share of label users kept for validation / early stopping


@dataclass
class RankerExportConfig:
    formats: list[str] = field(default_factory=lambda: ["torchscript", "onnx"])
    serve_format: str = "onnx"  # the file Triton serves: onnxruntime measured 2-10x faster on CPU
    # Rows per Triton execution: room for several requests, so the dynamic batcher can merge
    # them (a request carries up to sum(candidates quotas) + two_tower_quota rows, ~800 with
    # the default candidates; at 1024 two such requests never merged). Must be >= that sum:
    # train.py refuses a smaller one before any work (Triton would reject every request)
    max_batch_size: int = 8192
    # none by default: a request is hundreds of rows, so a preferred size only adds waiting
    preferred_batch_sizes: list[int] = field(default_factory=list)
    # How long Triton holds a request hoping for more to merge. 0: no waiting; requests that
    # queue while the instance is busy still merge. Measured here (one ONNX instance, 700-row
    # requests): 1 in flight p50 5.5 -> 3.2 ms vs the former 2000 us with sizes [256,512,1024];
    # 8 in flight 289 -> 382 req/s, 2,886 rows per execution (was 700: never merged)
    max_queue_delay_us: int = 0
    # Warm-up batches Triton runs before it reports ready, in requests: k -> k x the most rows
    # one request carries (capped at max_batch_size). [] = none
    warmup_requests: list[int] = field(default_factory=lambda: [1, 4])
    max_queue_size: int = 64  # bounded queue: requests beyond it are rejected, not buffered
    instance_count: int = 1
    # where each Triton instance runs: cpu | gpu (KIND_GPU; the Python backend moves each merged
    # batch to CUDA). With gpu, serve the torchscript file unless onnxruntime-gpu is installed.
    # H200: 501 vs 171 req/s of 700 rows at 8 in flight (benchmarks/gpu.md)
    instance_kind: str = "cpu"
    # intra-op threads per Triton instance; 1 leaves the other core to the Ray Serve replicas
    # (0 = the runtime's default: every core, spinning against the request path)
    num_threads: int = 1
    check_on_triton: bool = True  # start the real Triton and compare its scores (1e-5)
    # the bundle's two_tower source slot (the item-tower FAISS index queried with the user
    # vector): most new titles it adds to a request's candidates; 0 = leave it out
    two_tower_quota: int = 100
    # versioned serving artefacts (recsys/serving/bundle.py) are published here; null = <run dir>
    artefacts_root: str | None = None


@dataclass
class RankerConfig:
    features: RankerFeaturesConfig = field(default_factory=RankerFeaturesConfig)
    model: RankerModelConfig = field(default_factory=RankerModelConfig)
    negatives: NegativesConfig = field(default_factory=NegativesConfig)
    stacking: StackingConfig = field(default_factory=StackingConfig)
    export: RankerExportConfig = field(default_factory=RankerExportConfig)
    dense_lr: float = 1e-3  # Adam on the towers and MLPs
    embedding_lr: float = 0.05  # fused optimizer on the embedding tables
    embedding_optimizer: str = "adagrad"  # adagrad | rowwise_adagrad | sgd | adam
    retrieval_loss_weight: float = 0.0  # extra BCE on <u, v> alone (sharpens retrieval)
    retrieval_k: int = 200  # two-tower retrieval list length (FAISS over item-tower vectors)


@dataclass
class WandbLoggerConfig:
    enabled: bool = True
    mode: str = "offline"  # offline | online | disabled; offline needs no network or account
    project: str = "recsys"
    tags: list[str] = field(default_factory=list)


@dataclass
class NoLoggerConfig:
    enabled: bool = False
    mode: str = "disabled"
    project: str = "recsys"
    tags: list[str] = field(default_factory=list)


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [10, 20])
    positive_threshold: float | None = 4.0  # ratings >= this are positives; null = every event
    compare_popular: bool = True  # also score MostPopular in the same run, as the floor


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
    seed: int = 42
    name: str = "default"  # run name, shown in wandb and the output folder


def register_configs() -> None:
    """Put every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="schema/data", name="movielens", node=DataConfig)
    cs.store(group="schema/data", name="synthetic", node=SyntheticDataConfig)
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
    cs.store(group="schema/logger", name="wandb", node=WandbLoggerConfig)
    cs.store(group="schema/logger", name="none", node=NoLoggerConfig)
    cs.store(group="schema/serve", name="serve", node=ServeConfig)
