"""Where each sparse feature lives in the ranker's padded id matrix, and which table it reads.

Every ranker input row carries its sparse features as one padded ``(S,)`` id vector (``-1`` =
empty slot) with a same-shaped weight vector. The layout names the slice of that vector each
feature owns and the embedding table behind it. One layout object is shared by the feature
builder (which fills the slots), the training model (which turns the slices into a TorchRec
``KeyedJaggedTensor``) and the exported serving model (which gathers and sums), so the three can
never disagree about the order.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

PAD = -1  # id of an empty slot


@dataclass(frozen=True)
class SparseFeature:
    name: str  # the KJT key
    table: str  # embedding table it reads (several features may share one)
    slots: int  # width of its slice in the padded id matrix
    side: str  # user | item | context: the tower it feeds


@dataclass(frozen=True)
class Table:
    name: str
    num_embeddings: int
    dim: int


@dataclass(frozen=True)
class FeatureLayout:
    """Sparse features in slot order, their tables, and the dense widths per side."""

    features: tuple[SparseFeature, ...]
    tables: tuple[Table, ...]
    user_dense: int
    item_dense: int
    pair_dense: int

    @property
    def slots(self) -> int:
        return sum(f.slots for f in self.features)

    def offset(self, name: str) -> int:
        start = 0
        for feature in self.features:
            if feature.name == name:
                return start
            start += feature.slots
        raise KeyError(name)

    def slices(self) -> list[tuple[SparseFeature, int, int]]:
        """(feature, start, stop) in slot order."""
        out, start = [], 0
        for feature in self.features:
            out.append((feature, start, start + feature.slots))
            start += feature.slots
        return out

    def side(self, side: str) -> list[SparseFeature]:
        return [f for f in self.features if f.side == side]

    def side_slots(self, side: str) -> int:
        return sum(f.slots for f in self.side(side))

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    def features_of(self, table: str) -> list[str]:
        return [f.name for f in self.features if f.table == table]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureLayout:
        raw = json.loads(text)
        return cls(
            features=tuple(SparseFeature(**f) for f in raw["features"]),
            tables=tuple(Table(**t) for t in raw["tables"]),
            user_dense=raw["user_dense"], item_dense=raw["item_dense"],
            pair_dense=raw["pair_dense"],
        )
