"""Export round trips (TorchScript, ONNX) and the generated Triton repository, without a server."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys import RecsysError
from recsys.ranking.export import (
    ExportError,
    export_onnx,
    export_torchscript,
    load_torchscript,
    measure_formats,
    onnx_session,
    ordered_args,
    ranking_spec,
)
from recsys.runtime.triton_pymodel import merge_requests, split_rows
from recsys.runtime.triton_repo import (
    TritonRepoError,
    config_text,
    serving_output_names,
    write_model_repository,
)
from recsys.runtime.triton_specs import InputSpec, TensorSpec, TensorSpecError, dtype_name

N_IDS, SLOTS, DU, DI, DP = 50, 6, 3, 4, 2


class ToyRanker(torch.nn.Module):
    """The ranker's interface with plain ops: masked embedding sum over slots, then an MLP.

    The integration test imports it too, so both check the same model.
    """

    def __init__(self, n_ids: int = N_IDS, dim: int = 8) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(n_ids, dim)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(dim + DU + DI + DP, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )

    def forward(self, ids, weights, user_dense, item_dense, pair_dense):  # noqa: ANN001, ANN201
        mask = (ids >= 0).to(weights.dtype) * weights
        pooled = (self.emb(ids.clamp(min=0)) * mask.unsqueeze(-1)).sum(dim=1)
        x = torch.cat([pooled, user_dense, item_dense, pair_dense], dim=1)
        return torch.sigmoid(self.mlp(x))


def toy_model(seed: int = 0) -> ToyRanker:
    torch.manual_seed(seed)
    return ToyRanker().eval()


def toy_inputs(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch with padding (-1) in some slots, in ``ranking_spec`` order."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(-1, N_IDS, (batch, SLOTS), generator=g)
    return {
        "ids": ids,
        "weights": torch.rand(batch, SLOTS, generator=g),
        "user_dense": torch.randn(batch, DU, generator=g),
        "item_dense": torch.randn(batch, DI, generator=g),
        "pair_dense": torch.randn(batch, DP, generator=g),
    }


SPEC = ranking_spec(SLOTS, DU, DI, DP)


def _eager(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return model(**inputs).numpy()


# --- InputSpec -------------------------------------------------------------------------------


def test_spec_from_examples_matches_the_ranking_spec():
    assert InputSpec.from_examples(toy_inputs(3)) == SPEC
    assert SPEC.input_names == ["ids", "weights", "user_dense", "item_dense", "pair_dense"]
    assert SPEC.output_names == ["score"]


def test_spec_reads_numpy_and_torch_dtypes_alike():
    as_numpy = {k: v.numpy() for k, v in toy_inputs(3).items()}
    assert InputSpec.from_examples(as_numpy) == SPEC
    for dtype in (torch.bool, torch.uint8, torch.int32, torch.float16, torch.float64):
        assert dtype_name(dtype) == str(torch.empty(0, dtype=dtype).numpy().dtype)
    with pytest.raises(TypeError):  # torch-only: no numpy (nor Triton Python-backend) type
        dtype_name(torch.bfloat16)
    import ml_dtypes  # noqa: F401  (registers a numpy "bfloat16" extension type: still refused)

    with pytest.raises(TypeError):
        dtype_name(torch.bfloat16)


def test_spec_rejects_duplicate_names_and_bad_dims():
    with pytest.raises(TensorSpecError, match="unique"):
        InputSpec(inputs=(TensorSpec("score", "float32", (1,)),))
    with pytest.raises(TensorSpecError, match="dims"):
        TensorSpec("x", "float32", (0,))
    with pytest.raises(TypeError):
        TensorSpec("x", "floaty", (1,))


def test_ordered_args_follows_forward_not_dict_order():
    inputs = toy_inputs(2)
    shuffled = dict(reversed(list(inputs.items())))
    args = ordered_args(toy_model(), shuffled)
    assert args[0] is inputs["ids"] and args[-1] is inputs["pair_dense"]
    with pytest.raises(ExportError, match="do not match"):
        ordered_args(toy_model(), {"ids": inputs["ids"]})


# --- export round trips ----------------------------------------------------------------------


def test_torchscript_roundtrip_equals_eager(tmp_path):
    model = toy_model()
    model.train()  # export must switch to eval and hand the mode back
    path = export_torchscript(model, toy_inputs(4), tmp_path / "m.pt")
    assert model.training
    model.eval()
    loaded = load_torchscript(path)
    other = toy_inputs(37, seed=1)  # another batch size than the traced one
    with torch.no_grad():
        got = loaded(*ordered_args(model, other)).numpy()
    np.testing.assert_allclose(got, _eager(model, other), atol=1e-5)
    assert got.shape == (37, 1)


def test_onnx_roundtrip_equals_eager(tmp_path):
    model = toy_model()
    path = export_onnx(model, toy_inputs(4), tmp_path / "m.onnx")
    session = onnx_session(path)
    assert [i.name for i in session.get_inputs()] == SPEC.input_names
    assert [o.name for o in session.get_outputs()] == ["score"]
    assert all(i.shape[0] == "batch" for i in session.get_inputs())  # dynamic batch axis
    other = toy_inputs(37, seed=1)
    got = session.run(None, {k: v.numpy() for k, v in other.items()})[0]
    np.testing.assert_allclose(got, _eager(model, other), atol=1e-5)


class _Unused(torch.nn.Module):
    def forward(self, x, unused):  # noqa: ANN001, ANN201
        return torch.sigmoid(x.sum(dim=1, keepdim=True))


def test_onnx_export_reports_inputs_the_graph_drops(tmp_path):
    inputs = {"x": torch.randn(2, 3), "unused": torch.randn(2, 3)}
    with pytest.raises(ExportError, match="unused input"):
        export_onnx(_Unused(), inputs, tmp_path / "u.onnx")


class _BakedBatch(torch.nn.Module):
    """Reshapes with the traced batch size: right at that size, wrong at any other."""

    def forward(self, x):  # noqa: ANN001, ANN201
        return x[:, :1] + torch.zeros(int(x.shape[0]), 1)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_torchscript_export_catches_batch_dependent_graphs(tmp_path):
    with pytest.raises(ExportError, match="batch"):
        export_torchscript(_BakedBatch(), {"x": torch.randn(3, 2)}, tmp_path / "b.pt")


def test_measure_formats_times_every_format_and_batch(tmp_path):
    res = measure_formats(toy_model(), toy_inputs(4), batch_sizes=(1, 16), repeats=3, warmup=1,
                          threads=1, workdir=tmp_path)
    assert set(res) == {"eager", "torchscript", "onnxruntime"}
    for per_batch in res.values():
        assert set(per_batch) == {1, 16}
        assert all(s["p50_ms"] > 0 and s["rows_per_s"] > 0 for s in per_batch.values())
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "model.onnx").is_file()


# --- config.pbtxt ----------------------------------------------------------------------------


def _squash(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_python_backend_config(fmt):
    text = config_text("ranker", SPEC, fmt=fmt, max_batch_size=512, preferred_batch_sizes=[256, 64],
                       max_queue_delay_us=800, max_queue_size=32, instance_count=2, num_threads=1)
    flat = _squash(text)
    assert text.startswith('name: "ranker"\nbackend: "python"\nmax_batch_size: 512\n')
    assert f'name: "ids" data_type: TYPE_INT64 dims: [ {SLOTS} ]' in flat
    assert f'name: "weights" data_type: TYPE_FP32 dims: [ {SLOTS} ]' in flat
    assert f'name: "pair_dense" data_type: TYPE_FP32 dims: [ {DP} ]' in flat
    assert 'output [ { name: "score" data_type: TYPE_FP32 dims: [ 1 ] } ]' in flat
    assert "instance_group [ { count: 2 kind: KIND_CPU } ]" in flat
    assert ("dynamic_batching { preferred_batch_size: [ 64, 256 ] "
            "max_queue_delay_microseconds: 800 default_queue_policy { timeout_action: REJECT "
            "default_timeout_microseconds: 0 allow_timeout_override: true max_queue_size: 32 } }"
            ) in flat
    file = "model.pt" if fmt == "torchscript" else "model.onnx"
    assert f'key: "model_format" value: {{ string_value: "{fmt}" }}' in flat
    assert f'key: "model_file" value: {{ string_value: "{file}" }}' in flat
    assert 'key: "num_threads" value: { string_value: "1" }' in flat


def test_warmup_runs_zero_batches_of_each_size_over_every_input():
    flat = _squash(config_text("ranker", SPEC, max_batch_size=512, warmup_batch_sizes=[300, 40]))
    samples = flat.split("model_warmup [ ", 1)[1]
    assert samples.index('name: "rows_40" batch_size: 40') < samples.index('name: "rows_300"')
    for tensor in SPEC.inputs:
        assert samples.count(f'key: "{tensor.name}"') == 2
    assert (f'key: "ids" value: {{ data_type: TYPE_INT64 dims: [ {SLOTS} ] zero_data: true }}'
            in samples)
    assert "model_warmup" not in config_text("ranker", SPEC)  # none unless asked for


def test_native_torchscript_config_uses_libtorch_and_indexed_outputs():
    flat = _squash(config_text("r", SPEC, fmt="torchscript", backend="native", kind="gpu"))
    assert 'platform: "pytorch_libtorch"' in flat and "backend:" not in flat
    assert 'output [ { name: "score__0" data_type: TYPE_FP32 dims: [ 1 ] } ]' in flat
    assert serving_output_names(SPEC, "torchscript", "native") == ["score__0"]
    assert "kind: KIND_GPU" in flat
    assert 'key: "INFERENCE_MODE"' in flat and "model_format" not in flat


def test_native_onnx_config_uses_onnxruntime_backend():
    flat = _squash(config_text("r", SPEC, fmt="onnx", backend="native", num_threads=2))
    assert 'backend: "onnxruntime"' in flat and "platform:" not in flat
    assert 'output [ { name: "score" data_type: TYPE_FP32 dims: [ 1 ] } ]' in flat
    assert 'key: "intra_op_thread_count" value: { string_value: "2" }' in flat
    assert "max_queue_size: 256" in flat  # bounded by default


@pytest.mark.parametrize("kwargs, match", [
    ({"fmt": "savedmodel"}, "fmt"),
    ({"kind": "tpu"}, "kind"),
    ({"backend": "tensorrt"}, "backend"),
    ({"max_batch_size": 64, "preferred_batch_sizes": [128]}, "preferred"),
    ({"max_queue_size": 0}, "max_queue_size"),
    ({"max_batch_size": 64, "preferred_batch_sizes": [], "warmup_batch_sizes": [65]}, "warmup"),
    ({"warmup_batch_sizes": [0]}, "warmup"),
])
def test_config_rejects_impossible_settings(kwargs, match):
    with pytest.raises(TritonRepoError, match=match):
        config_text("r", SPEC, **kwargs)
    assert issubclass(TritonRepoError, RecsysError)


@pytest.mark.parametrize("backend", ["python", "native"])
def test_write_model_repository_layout(tmp_path, backend):
    model_file = tmp_path / "exported.onnx"
    model_file.write_bytes(b"onnx bytes")
    repo = tmp_path / "repo"
    model_dir = write_model_repository(repo, "ranker", model_file, SPEC, fmt="onnx",
                                       backend=backend)
    assert model_dir == repo / "ranker"
    assert (model_dir / "1" / "model.onnx").read_bytes() == b"onnx bytes"
    assert (model_dir / "1" / "model.py").exists() == (backend == "python")
    assert (model_dir / "config.pbtxt").read_text().startswith('name: "ranker"')
    # Rewriting replaces the folder: no stale model file of the other format survives.
    pt = tmp_path / "exported.pt"
    pt.write_bytes(b"ts")
    write_model_repository(repo, "ranker", pt, SPEC, fmt="torchscript", backend=backend)
    assert sorted(p.name for p in (model_dir / "1").iterdir()) == sorted(
        ["model.pt"] + (["model.py"] if backend == "python" else []))


def test_write_model_repository_refuses_missing_file_and_foreign_folders(tmp_path):
    with pytest.raises(TritonRepoError, match="not found"):
        write_model_repository(tmp_path, "m", tmp_path / "nope.pt", SPEC)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "precious.txt").write_text("x")
    model_file = tmp_path / "f.pt"
    model_file.write_bytes(b"")
    with pytest.raises(TritonRepoError, match="not a model folder"):
        write_model_repository(tmp_path, "m", model_file, SPEC)
    assert (tmp_path / "m" / "precious.txt").exists()


# --- the Python-backend model's batching helpers --------------------------------------------------


def test_merge_and_split_requests_roundtrip():
    reqs = [{"a": np.full((n, 2), n, np.float32), "b": np.arange(n)} for n in (3, 1, 5)]
    batch, sizes = merge_requests(reqs, ["a", "b"])
    assert sizes == [3, 1, 5] and batch["a"].shape == (9, 2)
    pieces = split_rows(batch["a"][:, :1], sizes)
    assert [p.shape for p in pieces] == [(3, 1), (1, 1), (5, 1)]
    assert [int(p[0, 0]) for p in pieces] == [3, 1, 5]
    with pytest.raises(ValueError, match="rows"):
        split_rows(np.zeros((8, 1)), sizes)
