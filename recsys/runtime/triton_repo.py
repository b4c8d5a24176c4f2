"""Generate a Triton model repository (``config.pbtxt`` + versioned model file) for the ranker.

The config is generated from ``InputSpec`` rather than written by hand so that tensor names, dtypes
and dims cannot drift from the exported file. Two backends:

* ``backend="native"``: ``pytorch_libtorch`` / ``onnxruntime``, for a full NGC tritonserver
  (GPU deployments). libtorch cannot name outputs, so its outputs follow Triton's
  ``<name>__<index>`` convention (``score__0``); ``serving_output_names`` says what to request.
* ``backend="python"``: what runs here, because the tritonserver bundled with PyTriton has only
  the Python backend. ``triton_pymodel.py`` is copied in as ``model.py`` and runs the same file
  with torch.jit or onnxruntime, one forward pass per dynamically-batched group of requests.

Dynamic batching is always on, with preferred sizes and a *bounded* queue: past
``max_queue_size`` waiting requests Triton rejects new ones at once, which a caller can shed or
retry, instead of letting latency grow without limit under overload.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from recsys import RecsysError
from recsys.runtime.triton_specs import InputSpec, TensorSpec

__all__ = [
    "MODEL_FILES", "TritonRepoError", "config_text", "serving_output_names",
    "write_model_repository",
]

Format = Literal["torchscript", "onnx"]
Kind = Literal["cpu", "gpu"]
KINDS: tuple[str, ...] = ("cpu", "gpu")  # where an instance runs: KIND_CPU / KIND_GPU
Backend = Literal["python", "native"]

MODEL_FILES = {"torchscript": "model.pt", "onnx": "model.onnx"}  # Triton's default file names
_NATIVE = {"torchscript": 'platform: "pytorch_libtorch"', "onnx": 'backend: "onnxruntime"'}
# Thread-count parameter names of the native backends (the Python model reads "num_threads").
_NATIVE_THREADS = {"torchscript": "INTRA_OP_THREAD_COUNT", "onnx": "intra_op_thread_count"}
_DTYPES = {
    "bool": "TYPE_BOOL", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "uint8": "TYPE_UINT8", "float16": "TYPE_FP16",
    "float32": "TYPE_FP32", "float64": "TYPE_FP64",
}
PYTHON_MODEL = Path(__file__).with_name("triton_pymodel.py")


class TritonRepoError(RecsysError):
    """Impossible repository settings (unknown format, preferred size above the max, ...)."""


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise TritonRepoError(f"{what} must be one of {list(choices)}, got {value!r}")


def serving_output_names(spec: InputSpec, fmt: Format, backend: Backend) -> list[str]:
    """Output tensor names a client requests from the generated model."""
    if fmt == "torchscript" and backend == "native":
        return [f"{t.name}__{i}" for i, t in enumerate(spec.outputs)]
    return spec.output_names


def _tensor_block(kind: str, tensors: Sequence[TensorSpec], names: Sequence[str]) -> str:
    items = []
    for t, name in zip(tensors, names, strict=True):
        if t.dtype not in _DTYPES:
            raise TritonRepoError(f"{t.name}: dtype {t.dtype} has no Triton type here")
        dims = ", ".join(str(d) for d in t.dims)
        items.append(
            f'  {{\n    name: "{name}"\n    data_type: {_DTYPES[t.dtype]}\n'
            f"    dims: [ {dims} ]\n  }}"
        )
    return f"{kind} [\n" + ",\n".join(items) + "\n]"


def _warmup_block(spec: InputSpec, batch_sizes: Sequence[int]) -> str:
    """``model_warmup``: Triton runs each batch size once (all-zero inputs: id 0 and weight 0
    are valid) before it reports the model ready, so the first real requests do not pay for
    lazy initialisation: TorchScript's profiling executor specialising on a new batch shape
    took ~1 s on a GPU instance, onnxruntime's first run allocates its arena."""
    samples = []
    for size in batch_sizes:
        inputs = "".join(
            f'    inputs {{\n      key: "{t.name}"\n      value: {{\n'
            f"        data_type: {_DTYPES[t.dtype]}\n"
            f"        dims: [ {', '.join(str(d) for d in t.dims)} ]\n"
            "        zero_data: true\n      }\n    }\n"
            for t in spec.inputs)
        samples.append(f'  {{\n    name: "rows_{size}"\n    batch_size: {size}\n{inputs}  }}')
    return "model_warmup [\n" + ",\n".join(samples) + "\n]"


def _parameters(params: dict[str, str]) -> str:
    return "".join(
        f'parameters: {{\n  key: "{k}"\n  value: {{ string_value: "{v}" }}\n}}\n'
        for k, v in params.items()
    )


def config_text(
    model_name: str,
    spec: InputSpec,
    *,
    fmt: Format = "torchscript",
    max_batch_size: int = 1024,
    preferred_batch_sizes: Sequence[int] = (64, 256),
    max_queue_delay_us: int = 500,
    max_queue_size: int = 256,
    queue_timeout_us: int = 0,
    instance_count: int = 1,
    kind: Kind = "cpu",
    backend: Backend = "python",
    num_threads: int = 0,
    warmup_batch_sizes: Sequence[int] = (),
) -> str:
    """The ``config.pbtxt`` text (protobuf text format); see ``write_model_repository``."""
    _check_choice("fmt", fmt, list(MODEL_FILES))
    _check_choice("kind", kind, KINDS)
    _check_choice("backend", backend, ["python", "native"])
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise TritonRepoError(f"bad model name {model_name!r}")
    if max_batch_size < 1 or instance_count < 1 or max_queue_size < 1:
        raise TritonRepoError("max_batch_size, instance_count and max_queue_size must be >= 1")
    if max_queue_delay_us < 0 or queue_timeout_us < 0 or num_threads < 0:
        raise TritonRepoError("delays, timeouts and num_threads must be >= 0")
    preferred = sorted(set(preferred_batch_sizes))
    if any(p < 1 or p > max_batch_size for p in preferred):
        raise TritonRepoError(
            f"preferred_batch_sizes {list(preferred_batch_sizes)} must lie in 1..{max_batch_size}"
        )
    warmup = sorted(set(warmup_batch_sizes))
    if any(w < 1 or w > max_batch_size for w in warmup):
        raise TritonRepoError(
            f"warmup_batch_sizes {list(warmup_batch_sizes)} must lie in 1..{max_batch_size}"
        )
    if backend == "python":
        head = 'backend: "python"'
        params = {"model_format": fmt, "model_file": MODEL_FILES[fmt]}
        if num_threads:
            params["num_threads"] = str(num_threads)
    else:
        head = _NATIVE[fmt]
        params = {"INFERENCE_MODE": "true"} if fmt == "torchscript" else {}
        if num_threads:
            params[_NATIVE_THREADS[fmt]] = str(num_threads)
    batching = [f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]"] if preferred \
        else []
    batching += [
        f"  max_queue_delay_microseconds: {max_queue_delay_us}",
        "  default_queue_policy {",
        "    timeout_action: REJECT",
        f"    default_timeout_microseconds: {queue_timeout_us}",
        "    allow_timeout_override: true",
        f"    max_queue_size: {max_queue_size}",
        "  }",
    ]
    parts = [
        f'name: "{model_name}"',
        head,
        f"max_batch_size: {max_batch_size}",
        _tensor_block("input", spec.inputs, spec.input_names),
        _tensor_block("output", spec.outputs, serving_output_names(spec, fmt, backend)),
        "instance_group [\n  {\n"
        f"    count: {instance_count}\n    kind: {'KIND_GPU' if kind == 'gpu' else 'KIND_CPU'}\n"
        "  }\n]",
        "dynamic_batching {\n" + "\n".join(batching) + "\n}",
    ]
    if warmup:
        parts.append(_warmup_block(spec, warmup))
    text = "\n".join(parts) + "\n"
    return text + _parameters(params) if params else text


def write_model_repository(
    repo_dir: str | Path,
    model_name: str,
    model_file: str | Path,
    spec: InputSpec,
    *,
    fmt: Format = "torchscript",
    backend: Backend = "python",
    **options: Any,
) -> Path:
    """Write ``<repo>/<model>/config.pbtxt`` and ``<repo>/<model>/1/<model file>``; return the
    model folder. ``options`` are ``config_text``'s batching and instance settings.

    ``max_queue_size`` bounds the requests waiting for the batcher (excess ones are rejected
    immediately); ``queue_timeout_us`` > 0 also rejects requests that waited that long.
    ``num_threads`` > 0 caps the intra-op threads of each instance (0: the runtime's default).
    ``warmup_batch_sizes``: batches of zeros Triton runs before the model reports ready.
    An existing model folder of the same name is replaced, so no stale version or file lingers.
    """
    model_file = Path(model_file)
    if not model_file.is_file():
        raise TritonRepoError(f"model file not found: {model_file}")
    text = config_text(model_name, spec, fmt=fmt, backend=backend, **options)
    model_dir = Path(repo_dir) / model_name
    if model_dir.exists():
        if not (model_dir / "config.pbtxt").is_file():
            raise TritonRepoError(f"{model_dir} exists and is not a model folder; not replacing it")
        shutil.rmtree(model_dir)
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True)
    shutil.copyfile(model_file, version_dir / MODEL_FILES[fmt])
    if backend == "python":
        shutil.copyfile(PYTHON_MODEL, version_dir / "model.py")
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir
