"""Three interchangeable sparse arches of the two-tower ranker; each pools the padded
(B, slots) ids/weights of every feature into one embedding per feature:

* ``TorchRecSparseArch``: an ``EmbeddingBagCollection`` over a weighted ``KeyedJaggedTensor``,
  what ``DistributedModelParallel`` shards for training;
* ``EmbeddingBagSparseArch``: plain ``nn.EmbeddingBag`` per table (the no-TorchRec baseline);
* ``GatherSparseArch``: index, weight, sum: what gets exported (TorchScript and ONNX handle it
  everywhere), with the same numbers as the other two.
"""

from __future__ import annotations

import torch
from torch import nn

from recsys.ranking.layout import FeatureLayout, SparseFeature


def to_kjt(layout: FeatureLayout, ids: torch.Tensor, weights: torch.Tensor):
    """Padded (B, S) ids/weights -> a weighted KeyedJaggedTensor with the layout's keys."""
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    values, lengths, ws = [], [], []
    for _feature, start, stop in layout.slices():
        sub, w = ids[:, start:stop], weights[:, start:stop]
        mask = sub >= 0
        values.append(sub[mask])
        ws.append(w[mask])
        lengths.append(mask.sum(1))
    return KeyedJaggedTensor(
        keys=[f.name for f in layout.features], values=torch.cat(values),
        weights=torch.cat(ws), lengths=torch.cat(lengths).to(torch.int32),
    )


class TorchRecSparseArch(nn.Module):
    def __init__(self, layout: FeatureLayout, device: torch.device | None = None) -> None:
        super().__init__()
        from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
        from torchrec.modules.embedding_modules import EmbeddingBagCollection

        self.layout = layout
        self.ebc = EmbeddingBagCollection(
            tables=[EmbeddingBagConfig(name=t.name, embedding_dim=t.dim,
                                       num_embeddings=t.num_embeddings,
                                       feature_names=layout.features_of(t.name),
                                       pooling=PoolingType.SUM)
                    for t in layout.tables],
            is_weighted=True, device=device,
        )

    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.ebc(to_kjt(self.layout, ids, weights)).to_dict()

    def table_weights(self) -> dict[str, torch.Tensor]:
        return {name: bag.weight for name, bag in self.ebc.embedding_bags.items()}


class EmbeddingBagSparseArch(nn.Module):
    """Plain PyTorch: one ``nn.EmbeddingBag`` per table; row ``num_embeddings`` is padding."""

    def __init__(self, layout: FeatureLayout, sparse_grad: bool = True) -> None:
        super().__init__()
        self.layout = layout
        self.bags = nn.ModuleDict({
            t.name: nn.EmbeddingBag(t.num_embeddings + 1, t.dim, mode="sum",
                                    padding_idx=t.num_embeddings, sparse=sparse_grad)
            for t in layout.tables})

    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for feature, start, stop in self.layout.slices():
            bag = self.bags[feature.table]
            sub = ids[:, start:stop]
            sub = torch.where(sub >= 0, sub, torch.full_like(sub, bag.padding_idx))
            out[feature.name] = bag(sub, per_sample_weights=weights[:, start:stop])
        return out

    def table_weights(self) -> dict[str, torch.Tensor]:
        return {name: bag.weight[:-1] for name, bag in self.bags.items()}


class GatherSparseArch(nn.Module):
    """Index, weight, sum: the export-friendly arch (same numbers as the other two)."""

    def __init__(self, layout: FeatureLayout, tables: dict[str, torch.Tensor] | None = None
                 ) -> None:
        super().__init__()
        self.layout = layout
        self.tables = nn.ParameterDict({
            t.name: nn.Parameter(tables[t.name].detach().clone() if tables is not None
                                 else torch.randn(t.num_embeddings, t.dim) * 0.01)
            for t in layout.tables})

    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.pool(ids, weights, self.layout.slices())

    def pool(self, ids: torch.Tensor, weights: torch.Tensor,
             slices: list[tuple[SparseFeature, int, int]]) -> dict[str, torch.Tensor]:
        """Pooled embeddings of the features at ``slices`` (column ranges of ``ids``)."""
        out = {}
        for feature, start, stop in slices:
            sub = ids[:, start:stop]
            w = weights[:, start:stop] * (sub >= 0).to(weights.dtype)
            emb = self.tables[feature.table][sub.clamp(min=0)]  # (B, slots, dim)
            out[feature.name] = (emb * w.unsqueeze(-1)).sum(1)
        return out

    def table_weights(self) -> dict[str, torch.Tensor]:
        return dict(self.tables.items())
