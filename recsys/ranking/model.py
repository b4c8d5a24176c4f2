"""The two-tower ranker: sparse arch -> user / item towers + dense arch -> interaction -> head.

::

    ids, weights ──► sparse arch (EmbeddingBagCollection over a KeyedJaggedTensor)
                       ├─ user features ──┐
                       ├─ item features ──┼─► item tower ─► v ─┐
                       └─ context ────────┘                     │
    user_dense ──────► user tower ─► u ─────────────────────────┤
    item_dense ──────► (item tower input)                       │
    pair_dense ──────► dense arch (with context, user_dense and ─► d ─┤
                       item_dense: source scores x popularity x activity)
                                                                 ▼
                           logit = <u, v> + interaction MLP([u, v, u*v, d])   (sigmoid = P(engaged))

The dot product ``<u, v>`` alone is the retrieval score: the item tower's outputs for the whole
catalog go into a FAISS index and the user tower's output is the query, which makes two-tower
retrieval one more candidate source. Three interchangeable sparse arches compute the same pooled
embeddings: ``torchrec`` (an ``EmbeddingBagCollection`` that ``DistributedModelParallel`` shards),
``embedding_bag`` (plain ``nn.EmbeddingBag``, the baseline of the throughput benchmark) and
``gather`` (index + multiply + sum over the padded slots: what gets exported, since TorchScript
and ONNX handle it everywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from recsys.ranking.layout import FeatureLayout
from recsys.ranking.sparse_arch import (
    EmbeddingBagSparseArch,
    GatherSparseArch,
    TorchRecSparseArch,
)

SPARSE_ARCHES = ("torchrec", "embedding_bag", "gather")


@dataclass
class ModelShape:
    """Layer widths: the ``ranker.model`` config group's schema."""

    tower_dims: list[int] = field(default_factory=lambda: [256, 64])  # last = embedding size
    dense_dims: list[int] = field(default_factory=lambda: [64, 64])  # over every dense feature
    interaction_dims: list[int] = field(default_factory=lambda: [64])


@dataclass
class ModelParams(ModelShape):
    """The widths plus how the embedding tables are held: TorchRec for training (sharded),
    plain ``nn.EmbeddingBag`` or a gather for export and serving (not a config knob: the job
    picks it per use)."""

    sparse_arch: str = "torchrec"  # torchrec | embedding_bag | gather


def mlp(in_dim: int, dims: list[int], last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for j, out in enumerate(dims):
        layers.append(nn.Linear(in_dim, out))
        if last_activation or j < len(dims) - 1:
            layers.append(nn.ReLU())
        in_dim = out
    return nn.Sequential(*layers)


class TwoTowerRanker(nn.Module):
    """See the module docstring. ``forward`` returns logits (B,); ``score`` = sigmoid."""

    def __init__(self, layout: FeatureLayout, params: ModelParams | None = None,
                 sparse_device: torch.device | None = None,
                 tables: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.layout = layout
        self.params = params = params or ModelParams()
        if params.sparse_arch not in SPARSE_ARCHES:
            raise ValueError(f"sparse_arch must be one of {SPARSE_ARCHES}, "
                             f"got {params.sparse_arch!r}")
        if params.sparse_arch == "torchrec":
            self.sparse_arch: nn.Module = TorchRecSparseArch(layout, sparse_device)
        elif params.sparse_arch == "embedding_bag":
            self.sparse_arch = EmbeddingBagSparseArch(layout)
        else:
            self.sparse_arch = GatherSparseArch(layout, tables)
        dims = {t.name: t.dim for t in layout.tables}
        self.user_features = [f.name for f in layout.side("user")]
        self.item_features = [f.name for f in layout.side("item")]
        self.context_features = [f.name for f in layout.side("context")]
        width = {f.name: dims[f.table] for f in layout.features}
        self.user_tower = mlp(sum(width[f] for f in self.user_features) + layout.user_dense,
                              params.tower_dims, last_activation=False)
        self.item_tower = mlp(sum(width[f] for f in self.item_features) + layout.item_dense,
                              params.tower_dims, last_activation=False)
        self.dense_arch = mlp(sum(width[f] for f in self.context_features) + layout.pair_dense
                              + layout.user_dense + layout.item_dense, params.dense_dims)
        d = params.tower_dims[-1]
        self.interaction = mlp(3 * d + params.dense_dims[-1], [*params.interaction_dims, 1],
                               last_activation=False)

    def towers(self, ids: torch.Tensor, weights: torch.Tensor, user_dense: torch.Tensor,
               item_dense: torch.Tensor, pair_dense: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pooled = self.sparse_arch(ids, weights)
        return (self.user_vector(pooled, user_dense), self.item_vector(pooled, item_dense),
                self.dense_vector(pooled, user_dense, item_dense, pair_dense))

    def user_vector(self, pooled: dict[str, torch.Tensor], user_dense: torch.Tensor
                    ) -> torch.Tensor:
        return self.user_tower(torch.cat([pooled[f] for f in self.user_features]
                                         + [user_dense], 1))

    def item_vector(self, pooled: dict[str, torch.Tensor], item_dense: torch.Tensor
                    ) -> torch.Tensor:
        return self.item_tower(torch.cat([pooled[f] for f in self.item_features]
                                         + [item_dense], 1))

    def dense_vector(self, pooled: dict[str, torch.Tensor], user_dense: torch.Tensor,
                     item_dense: torch.Tensor, pair_dense: torch.Tensor) -> torch.Tensor:
        # the dense arch sees every dense feature at once: how much a source's score is worth
        # depends on the title's popularity and the user's activity (measured on ml-1m)
        return self.dense_arch(torch.cat([pooled[f] for f in self.context_features]
                                         + [pair_dense, user_dense, item_dense], 1))

    def head(self, u: torch.Tensor, v: torch.Tensor, d: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ranking logit, retrieval logit <u, v>), both (B,)."""
        dot = (u * v).sum(-1)
        return dot + self.interaction(torch.cat([u, v, u * v, d], 1)).squeeze(-1), dot

    def logits(self, ids, weights, user_dense, item_dense, pair_dense
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ranking logit, retrieval logit <u, v>), both (B,)."""
        return self.head(*self.towers(ids, weights, user_dense, item_dense, pair_dense))

    def forward(self, ids, weights, user_dense, item_dense, pair_dense
                ) -> tuple[torch.Tensor, torch.Tensor]:
        # Both logits come out of forward (not a side method) so that, under
        # DistributedModelParallel, every gradient flows through the wrapped forward and the
        # dense parameters are all-reduced.
        return self.logits(ids, weights, user_dense, item_dense, pair_dense)


class ServingRanker(nn.Module):
    """What Triton serves: P(engaged) as a (B, 1) float32, from the five padded inputs.

    The rows of one request are one user's candidates, so their user slots and ``user_dense``
    repeat row after row. With the export arch (``gather``) the user side (history and genre
    pooling, user tower) runs once per distinct user row (``torch.unique``, exported as ONNX
    ``Unique``) instead of pooling the same history once per candidate row
    (``benchmarks/ranker.md``). A batch that merges several requests has several distinct users
    and is scored the same way. Other arches score row by row.
    """

    def __init__(self, ranker: TwoTowerRanker) -> None:
        super().__init__()
        self.ranker = ranker
        self.dedupe = isinstance(ranker.sparse_arch, GatherSparseArch)
        user, self.other_slices, self.user_slices = [], [], []
        for feature, start, stop in ranker.layout.slices():
            if feature.side == "user":
                self.user_slices.append((feature, len(user), len(user) + stop - start))
                user += range(start, stop)
            else:
                self.other_slices.append((feature, start, stop))
        self.register_buffer("user_columns", torch.tensor(user, dtype=torch.long),
                             persistent=False)

    def forward(self, ids: torch.Tensor, weights: torch.Tensor, user_dense: torch.Tensor,
                item_dense: torch.Tensor, pair_dense: torch.Tensor) -> torch.Tensor:
        if not self.dedupe:
            logit = self.ranker(ids, weights, user_dense, item_dense, pair_dense)[0]
            return torch.sigmoid(logit).unsqueeze(-1)
        r, k = self.ranker, self.user_columns.shape[0]
        # one float64 key per row holds its user ids, weights and dense values exactly (ids
        # below 2**53), so the distinct keys decode back into the user side's inputs
        key = torch.cat([ids.index_select(1, self.user_columns).to(torch.float64),
                         weights.index_select(1, self.user_columns).to(torch.float64),
                         user_dense.to(torch.float64)], 1)
        users, row_user = torch.unique(key, sorted=True, return_inverse=True, dim=0)
        pooled_users = r.sparse_arch.pool(users[:, :k].to(torch.long),
                                          users[:, k:2 * k].to(weights.dtype), self.user_slices)
        u = r.user_vector(pooled_users, users[:, 2 * k:].to(user_dense.dtype))[row_user]
        pooled = r.sparse_arch.pool(ids, weights, self.other_slices)
        logit = r.head(u, r.item_vector(pooled, item_dense),
                       r.dense_vector(pooled, user_dense, item_dense, pair_dense))[0]
        return torch.sigmoid(logit).unsqueeze(-1)


def as_gather_model(model: TwoTowerRanker) -> TwoTowerRanker:
    """A copy of ``model`` with the export-friendly arch and the same weights (any arch in)."""
    tables = {k: v.detach().cpu() for k, v in model.sparse_arch.table_weights().items()}
    params = ModelParams(model.params.tower_dims, model.params.dense_dims,
                         model.params.interaction_dims, "gather")
    out = TwoTowerRanker(model.layout, params, tables=tables)
    dense = {k: v for k, v in model.state_dict().items() if not k.startswith("sparse_arch.")}
    out.load_state_dict(dense, strict=False)
    return out.eval()


def _widths(state: dict[str, torch.Tensor], prefix: str) -> list[int]:
    """Output widths of the ``nn.Linear`` layers of an ``mlp`` in ``state``, in order."""
    layers = sorted((int(k[len(prefix):].split(".")[0]), v.shape[0]) for k, v in state.items()
                    if k.startswith(prefix) and k.endswith(".weight"))
    return [width for _, width in layers]


def ranker_from_state(layout: FeatureLayout, state: dict[str, torch.Tensor]) -> TwoTowerRanker:
    """The export-arch ranker from a saved ``state_dict`` (the bundle's ``ranker_state.pt``).

    The layer widths are read off the weights, so any host with plain PyTorch (a GPU box without
    TorchRec, a benchmark) gets the trained model back without the training config.
    """
    prefix = "sparse_arch.tables."
    tables = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing = sorted({t.name for t in layout.tables} - set(tables))
    if missing:
        raise ValueError(f"state has no gather-arch tables for {missing} (keys like "
                         f"'{prefix}<table>'); save the model returned by as_gather_model")
    interaction = _widths(state, "interaction.")
    params = ModelParams(_widths(state, "user_tower."), _widths(state, "dense_arch."),
                         interaction[:-1], "gather")
    model = TwoTowerRanker(layout, params, tables=tables)
    model.load_state_dict(state)
    return model.eval()
