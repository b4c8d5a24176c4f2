"""``device=cuda`` gives the CPU's answers: EASE, ALS (torch backend), the served ranker, and the
ranker on a Triton GPU instance. Skipped with a reason where torch sees no GPU (CI); run on a GPU
host with ``pytest -m gpu``. The imports stay light (no TorchRec, FAISS, Ray or Hydra) so that a
GPU host carrying only PyTorch and these tests' own needs can run them (scipy is imported inside
the tests that need it, since a numpy<2 environment for Triton may not import the host's scipy).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from recsys.ranking.layout import FeatureLayout, SparseFeature, Table
from recsys.ranking.model import ModelParams, ServingRanker, TwoTowerRanker, as_gather_model

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def interactions(users: int = 300, items: int = 400, density: float = 0.05, seed: int = 0):
    """A random binary user x item CSR matrix (scipy imported here: see the module docstring)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    m = sp.random(users, items, density=density, random_state=rng, format="csr",
                  dtype=np.float32)
    m.data[:] = 1.0
    return m


def test_ease_on_cuda_equals_cpu():
    from recsys.candidates.ease import EASE

    train = interactions()
    cpu, gpu = EASE(l2=50.0, device="cpu").fit(train), EASE(l2=50.0, device="cuda").fit(train)
    assert gpu.weights.device.type == "cuda"
    users = np.arange(50)
    np.testing.assert_allclose(gpu.score(users, train), cpu.score(users, train),
                               rtol=0, atol=1e-4)


def test_als_torch_backend_on_cuda_equals_cpu():
    from recsys.candidates.als import ALS

    train = interactions()

    def fit(device: str) -> np.ndarray:
        model = ALS(factors=16, iterations=5, regularization=1.0, alpha=5.0, backend="torch",
                    device=device).fit(train)
        return model.user_factors @ model.item_factors.T

    cpu, gpu = fit("cpu"), fit("cuda")
    # float32 conjugate gradient sums in another order on the GPU: 1.9e-3 relative on an H200
    rel = float(np.linalg.norm(gpu - cpu) / np.linalg.norm(cpu))
    assert rel < 1e-2, f"CUDA scores differ from CPU by {rel:.2e} (relative Frobenius)"
    top_cpu, top_gpu = np.argsort(-cpu, 1)[:, :10], np.argsort(-gpu, 1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top_cpu, top_gpu, strict=True)])
    assert overlap > 0.9, f"top-10 lists agree on {overlap:.0%} of titles only"


def tiny_layout() -> FeatureLayout:
    features = (SparseFeature("user_history", "item", 6, "user"),
                SparseFeature("item_id", "item", 1, "item"),
                SparseFeature("surface", "surface", 1, "context"))
    return FeatureLayout(features, (Table("item", 50, 8), Table("surface", 3, 4)),
                         user_dense=2, item_dense=3, pair_dense=4)


def request_rows(layout: FeatureLayout, users: int, per_user: int) -> dict[str, torch.Tensor]:
    """Rows as served: each user's slots and dense values repeat on all of that user's rows."""
    g = torch.Generator().manual_seed(0)
    n = users * per_user
    owner = torch.arange(n) // per_user
    ids = torch.randint(0, 3, (n, layout.slots), generator=g)
    history = torch.randint(0, 50, (users, 6), generator=g)
    ids[:, :6] = history[owner]
    ids[:, 6] = torch.randint(0, 50, (n,), generator=g)
    weights = torch.ones(n, layout.slots)
    return {"ids": ids, "weights": weights,
            "user_dense": torch.rand(users, 2, generator=g)[owner],
            "item_dense": torch.rand(n, 3, generator=g),
            "pair_dense": torch.rand(n, 4, generator=g)}


def served_model() -> ServingRanker:
    torch.manual_seed(0)
    layout = tiny_layout()
    return ServingRanker(as_gather_model(TwoTowerRanker(layout, ModelParams([16, 8], [8], [8],
                                                                             "gather")))).eval()


def test_served_ranker_on_cuda_equals_cpu():
    served = served_model()
    rows = request_rows(served.ranker.layout, users=3, per_user=40)
    with torch.inference_mode():
        want = served(**rows)
        got = served.to("cuda")(**{k: v.cuda() for k, v in rows.items()}).cpu()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("pytriton") is None,
                    reason="needs nvidia-pytriton (it ships tritonserver)")
@pytest.mark.skipif(int(np.__version__.split(".")[0]) >= 2,
                    reason="Triton's Python-backend stub needs numpy<2 (test_triton_numpy_guard)")
def test_triton_gpu_instance_serves_the_eager_scores(tmp_path):
    """The exported TorchScript file, served by the real Triton on a KIND_GPU instance (the
    Python backend moves each batch to the GPU), answers with the eager CPU model's scores."""
    from recsys.ranking.export import export_torchscript, ranking_spec
    from recsys.runtime.triton_client import infer
    from recsys.runtime.triton_repo import write_model_repository
    from recsys.runtime.tritonserver import tritonserver

    served = served_model()
    layout = served.ranker.layout
    rows = request_rows(layout, users=2, per_user=30)
    model_file = export_torchscript(served, rows, tmp_path / "model.pt")
    spec = ranking_spec(layout.slots, layout.user_dense, layout.item_dense, layout.pair_dense)
    write_model_repository(tmp_path / "repo", "ranker", model_file, spec, fmt="torchscript",
                           kind="gpu")
    with torch.inference_mode():
        want = served(**rows).numpy()
    with tritonserver(tmp_path / "repo", timeout_s=120) as server:
        client = server.grpc_client()
        try:
            got = infer(client, "ranker", {k: v.numpy() for k, v in rows.items()})
        finally:
            client.close()
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=0, atol=1e-5)
