"""Export the ranking model to TorchScript and ONNX, and check both against eager PyTorch.

The ranker is trained in eager PyTorch but served by Triton, which runs a file, not a Python
object: TorchScript for the libtorch backend, ONNX for onnxruntime. Each exporter here verifies its
file in-process (same inputs, same scores within ``ATOL``) and at a *second* batch size, because the
classic export bug is a batch size baked into the graph by tracing, which only shows up when the
server merges requests into a batch of another size. ``ranking_spec`` describes the ranker's
tensors as a ``recsys.runtime.triton_specs.InputSpec``, from which the Triton repository config is
generated (``recsys.runtime.triton_repo``).
"""

from __future__ import annotations

import contextlib
import inspect
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys import RecsysError
from recsys.runtime.triton_specs import InputSpec, TensorSpec

__all__ = [
    "ATOL", "ExportError", "export_onnx", "export_torchscript", "load_torchscript",
    "measure_formats", "onnx_session", "ordered_args", "ranking_spec", "time_calls",
]

ATOL = 1e-5  # exported scores must match eager within this (probabilities, float32)
OPSET = 17
BATCH_AXIS = "batch"


class ExportError(RecsysError):
    """A model could not be exported, or its exported file disagrees with the eager model."""


def ranking_spec(n_slots: int, user_dim: int, item_dim: int, pair_dim: int) -> InputSpec:
    """The ranker's fixed interface: padded ids/weights, user/item/pair dense -> score."""
    return InputSpec(inputs=(
        TensorSpec("ids", "int64", (n_slots,)),
        TensorSpec("weights", "float32", (n_slots,)),
        TensorSpec("user_dense", "float32", (user_dim,)),
        TensorSpec("item_dense", "float32", (item_dim,)),
        TensorSpec("pair_dense", "float32", (pair_dim,)),
    ))


def ordered_args(
    model: torch.nn.Module, example_inputs: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, ...]:
    """``example_inputs`` as a positional tuple in ``model.forward``'s argument order.

    Exporters take positional inputs; going through the signature means a dict built in another
    order (or with a missing/extra key) is caught here instead of silently swapping tensors.
    """
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in params]
    if set(names) != set(example_inputs):
        raise ExportError(
            f"example_inputs {sorted(example_inputs)} do not match forward() arguments {names}"
        )
    return tuple(example_inputs[n] for n in names)


def _grow(args: tuple[torch.Tensor, ...], batch: int) -> tuple[torch.Tensor, ...]:
    """The example rows repeated/cycled to ``batch`` rows (keeps real ids and padding)."""
    idx = torch.arange(batch) % args[0].shape[0]
    return tuple(a[idx] for a in args)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Export in eval mode (no dropout) and hand the model back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _eager(model: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> np.ndarray:
    with torch.no_grad():
        return model(*args).detach().cpu().numpy()


def _check_close(what: str, got: np.ndarray, want: np.ndarray) -> None:
    if got.shape != want.shape:
        raise ExportError(f"{what}: output shape {got.shape} != eager {want.shape}")
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    if not err <= ATOL:  # also catches NaN
        raise ExportError(f"{what}: max |exported - eager| = {err:.3g} > {ATOL}")


def _check_batches(
    what: str, run: Callable[[tuple[torch.Tensor, ...]], np.ndarray], model: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
) -> None:
    """Compare with eager at the example's batch size and at another one (baked-in shapes)."""
    for batch in (args[0].shape[0], args[0].shape[0] * 2 + 1):
        grown = _grow(args, batch)
        try:
            got = run(grown)
        except Exception as exc:  # noqa: BLE001 - e.g. a reshape to the traced batch size
            raise ExportError(f"{what} fails at batch {batch}: {exc}") from exc
        _check_close(f"{what} at batch {batch}", got, _eager(model, grown))


def load_torchscript(path: str | Path, device: str = "cpu") -> torch.jit.ScriptModule:
    """Load an exported TorchScript file in eval mode."""
    return torch.jit.load(str(path), map_location=device).eval()


def export_torchscript(
    model: torch.nn.Module, example_inputs: Mapping[str, torch.Tensor], path: str | Path
) -> Path:
    """Trace ``model`` (eval mode) on ``example_inputs`` and save it; returns the file's path.

    Tracing, not scripting: it accepts any module built from plain tensor ops, and the result is
    checked against eager at two batch sizes, which is what scripting would otherwise buy.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ordered_args(model, example_inputs)
    with _eval_mode(model):
        try:
            traced = torch.jit.trace(model, args, check_trace=False)
        except Exception as exc:  # noqa: BLE001 - tracing errors come in many types
            raise ExportError(f"torch.jit.trace failed: {exc}") from exc
        torch.jit.save(traced, str(path))
        loaded = load_torchscript(path)
        _check_batches("TorchScript", lambda a: _eager(loaded, a), model, args)
    return path


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for ``path`` (``threads`` caps intra-op threads)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError("onnxruntime is not installed (see requirements.lock)") from exc
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_onnx(
    model: torch.nn.Module, example_inputs: Mapping[str, torch.Tensor], path: str | Path,
    *, output_name: str = "score",
) -> Path:
    """Export ``model`` to ONNX (opset 17, dynamic batch axis everywhere), verified by onnxruntime.

    Uses the TorchScript-based exporter (``dynamo=False``): it needs only the ``onnx`` package,
    while the dynamo exporter also needs onnxscript. Input names are the ``forward`` argument
    names and the output is ``output_name`` (``score``), as ``ranking_spec`` describes.
    """
    try:
        import onnx  # noqa: F401 - torch.onnx.export needs it; fail with a clear message
    except ImportError as exc:
        raise ExportError("the onnx package is needed for ONNX export (see requirements.lock)") \
            from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ordered_args(model, example_inputs)
    names = list(inspect.signature(model.forward).parameters)[: len(args)]
    outputs = [output_name]
    with _eval_mode(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its own deprecation
        try:
            torch.onnx.export(
                model, args, str(path), input_names=names, output_names=outputs,
                dynamic_axes={n: {0: BATCH_AXIS} for n in (*names, *outputs)},
                opset_version=OPSET, do_constant_folding=True, dynamo=False,
            )
        except Exception as exc:  # noqa: BLE001 - exporter errors come in many types
            raise ExportError(f"torch.onnx.export failed: {exc}") from exc
        session = onnx_session(path)
        graph_inputs = [i.name for i in session.get_inputs()]
        if graph_inputs != names:
            # The exporter silently drops inputs the graph never reads.
            raise ExportError(f"ONNX graph inputs {graph_inputs} != forward arguments {names} "
                              "(an unused input is dropped by the exporter)")

        def run(a: tuple[torch.Tensor, ...]) -> np.ndarray:
            return session.run(None, {n: t.numpy() for n, t in zip(names, a, strict=True)})[0]

        _check_batches("ONNX", run, model, args)
    return path


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int) -> dict[str, float]:
    """p50 / p90 / mean / min of ``repeats`` timed calls of ``fn`` in ms, after ``warmup`` untimed
    ones (``fn`` must block until its work is done, e.g. copy a GPU result back)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return {"p50_ms": statistics.median(samples),
            "p90_ms": samples[min(len(samples) - 1, int(0.9 * len(samples)))],
            "mean_ms": statistics.fmean(samples), "min_ms": samples[0]}


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_formats(
    model: torch.nn.Module,
    example_inputs: Mapping[str, torch.Tensor],
    *,
    batch_sizes: tuple[int, ...] = (1, 64, 600),
    repeats: int = 30,
    warmup: int = 5,
    threads: int | None = None,
    workdir: str | Path | None = None,
) -> dict[str, dict[int, dict[str, float]]]:
    """Time in-process inference of eager, TorchScript and onnxruntime at each batch size.

    Returns ``{format: {batch: {"p50_ms", "p90_ms", "mean_ms", "rows_per_s"}}}`` with formats
    ``eager``, ``torchscript`` and ``onnxruntime``: the server-free baseline that a Triton
    benchmark table is read against. The files are exported (and verified) into ``workdir``,
    a temporary folder by default. ``threads`` caps intra-op threads for all three alike.
    """
    args = ordered_args(model, example_inputs)
    names = list(inspect.signature(model.forward).parameters)[: len(args)]
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="recsys-export-"))
        workdir = Path(workdir)
        scripted = load_torchscript(export_torchscript(model, example_inputs, workdir / "model.pt"))
        session = onnx_session(export_onnx(model, example_inputs, workdir / "model.onnx"), threads)
        stack.enter_context(_eval_mode(model))
        stack.enter_context(_torch_threads(threads))
        results: dict[str, dict[int, dict[str, float]]] = {
            "eager": {}, "torchscript": {}, "onnxruntime": {},
        }
        for batch in batch_sizes:
            grown = _grow(args, batch)
            feed = {n: t.numpy() for n, t in zip(names, grown, strict=True)}
            runners: dict[str, Callable[[], Any]] = {
                "eager": lambda g=grown: model(*g),
                "torchscript": lambda g=grown: scripted(*g),
                "onnxruntime": lambda f=feed: session.run(None, f),
            }
            for fmt, fn in runners.items():
                stats = time_calls(fn, repeats, warmup)
                stats["rows_per_s"] = batch / (stats["p50_ms"] / 1e3)
                results[fmt][batch] = stats
    return results
