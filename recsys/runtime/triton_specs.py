"""``TensorSpec`` / ``InputSpec``: a served model's tensors as Triton sees them.

One description of names, dtypes and trailing dims, from which ``triton_repo`` generates
``config.pbtxt`` and against which the exporters in ``recsys.ranking.export`` check their files,
so the two cannot drift apart. It lives in the runtime layer because the repository writer needs
it and the runtime imports nothing above itself; numpy is its only dependency (dtypes are numpy
names, which is what ``config.pbtxt`` types and tritonclient's arrays are keyed by).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys import RecsysError

__all__ = ["InputSpec", "TensorSpec", "TensorSpecError", "dtype_name"]


class TensorSpecError(RecsysError):
    """An impossible tensor description (a zero dim, duplicate names, no inputs)."""


def dtype_name(dtype: Any) -> str:
    """numpy's name for a numpy or torch dtype (``torch.int64`` -> ``"int64"``).

    torch prints its dtypes as numpy's names with a ``torch.`` prefix for every type numpy has,
    so the runtime layer needs no torch import; a torch-only type (bfloat16) raises TypeError,
    also once ``ml_dtypes`` (imported by onnx) has taught numpy an extension type of that name.
    """
    found = np.dtype(str(dtype).removeprefix("torch."))
    if found.kind not in "biufcOSU":  # numpy's own kinds; extension types are 'V'
        raise TypeError(f"{dtype} has no numpy dtype a Triton model can exchange")
    return found.name


@dataclass(frozen=True)
class TensorSpec:
    """One model tensor as a server sees it: name, numpy dtype name, dims after the batch axis.

    A dim of -1 is variable; Triton batches only requests whose variable dims agree.
    """

    name: str
    dtype: str
    dims: tuple[int, ...]

    def __post_init__(self) -> None:
        np.dtype(self.dtype)  # fail early on a typo such as "floaty" (TypeError)
        if any(d == 0 or d < -1 for d in self.dims):
            raise TensorSpecError(f"{self.name}: dims must be positive or -1, got {self.dims}")


SCORE = TensorSpec("score", "float32", (1,))  # one probability per row, the rankers' output


@dataclass(frozen=True)
class InputSpec:
    """Names, dtypes and trailing dims of a model's inputs (in ``forward`` order) and outputs.

    >>> InputSpec((TensorSpec("features", "float32", (8,)),)).output_names
    ['score']
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = (SCORE,)

    def __post_init__(self) -> None:
        names = [t.name for t in (*self.inputs, *self.outputs)]
        if not self.inputs or len(set(names)) != len(names):
            raise TensorSpecError(
                f"an InputSpec needs inputs and unique tensor names, got {names}")

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @classmethod
    def from_examples(
        cls, example_inputs: Mapping[str, Any], outputs: tuple[TensorSpec, ...] = (SCORE,),
    ) -> InputSpec:
        """Read names, dtypes and trailing dims off one example batch of numpy arrays or torch
        tensors (dims are then fixed)."""
        inputs = tuple(TensorSpec(name, dtype_name(t.dtype), tuple(t.shape[1:]))
                       for name, t in example_inputs.items())
        return cls(inputs=inputs, outputs=outputs)
