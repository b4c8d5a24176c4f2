"""Typed settings of the ranker job: the trainer and the ranker (features, model, negatives,
stacking, optimisation, export).

These dataclasses are the Hydra schemas of the ``trainer`` and ``ranker`` groups
(``recsys/config/schema.py`` registers them), and the objects the job receives: a knob is
defined once, here or in the library class it configures (``FeatureParams``, ``ModelParams``,
``NegativeMix``, ``StackingParams``). Choices are ``StrEnum``s, so a typo fails at composition
with the valid values listed, and a member still compares equal to its string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from recsys.ranking.features import FeatureParams
from recsys.ranking.model import ModelShape
from recsys.ranking.pairs import NegativeMix
from recsys.ranking.prepare import StackingParams


class TrainerKind(StrEnum):
    local = "local"  # one in-process worker (a torch.distributed world of one)
    ray = "ray"  # Ray Train's TorchTrainer with num_workers workers


class EmbeddingOptimizer(StrEnum):
    adagrad = "adagrad"
    rowwise_adagrad = "rowwise_adagrad"
    sgd = "sgd"
    adam = "adam"


class ExportFormat(StrEnum):
    torchscript = "torchscript"
    onnx = "onnx"


class InstanceKind(StrEnum):
    cpu = "cpu"  # Triton KIND_CPU
    gpu = "gpu"  # Triton KIND_GPU: the Python backend moves each merged batch to CUDA


@dataclass
class TrainerConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N (falls back to CPU with a warning)
    progress: bool = True  # progress bars on long steps
    eval_batch_size: int = 2048  # users scored per batch during evaluation
    # ranker training (ignored by the single-stage models)
    kind: TrainerKind = TrainerKind.local
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
class RankerExportConfig:
    formats: list[ExportFormat] = field(
        default_factory=lambda: [ExportFormat.torchscript, ExportFormat.onnx])
    # the file Triton serves: onnxruntime is the faster CPU runtime (benchmarks/ranker.md)
    serve_format: ExportFormat = ExportFormat.onnx
    # Rows per Triton execution: room for several requests, so the dynamic batcher can merge
    # them. One request carries up to sum(candidates quotas) + two_tower_quota rows; the job
    # refuses a smaller value before any work (Triton would reject every request)
    max_batch_size: int = 8192
    # none by default: a request is hundreds of rows, so a preferred size only adds waiting
    preferred_batch_sizes: list[int] = field(default_factory=list)
    # microseconds Triton holds a request hoping for more to merge. 0: no waiting; requests
    # that queue while the instance is busy still merge (benchmarks/serving.md)
    max_queue_delay_us: int = 0
    # Warm-up batches Triton runs before it reports ready, in requests: k -> k x the most rows
    # one request carries (capped at max_batch_size). [] = none
    warmup_requests: list[int] = field(default_factory=lambda: [1, 4])
    max_queue_size: int = 64  # bounded queue: requests beyond it are rejected, not buffered
    instance_count: int = 1
    # with gpu, serve the torchscript file unless onnxruntime-gpu is installed
    # (benchmarks/gpu.md)
    instance_kind: InstanceKind = InstanceKind.cpu
    # intra-op threads per Triton instance; 1 leaves the other cores to the Ray Serve replicas
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
    features: FeatureParams = field(default_factory=FeatureParams)
    model: ModelShape = field(default_factory=ModelShape)
    negatives: NegativeMix = field(default_factory=NegativeMix)
    stacking: StackingParams = field(default_factory=StackingParams)
    export: RankerExportConfig = field(default_factory=RankerExportConfig)
    dense_lr: float = 1e-3  # Adam on the towers and MLPs
    embedding_lr: float = 0.05  # fused optimizer on the embedding tables
    embedding_optimizer: EmbeddingOptimizer = EmbeddingOptimizer.adagrad
    # extra BCE on <u, v> alone (sharpens two-tower retrieval); 0 is what benchmarks/ranker.md
    # measured (a second default of 0.5 in the training loop was only ever seen by tests)
    retrieval_loss_weight: float = 0.0
