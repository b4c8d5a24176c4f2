"""Smokes for TorchRec, Ray, FAISS, wandb and redis-server: the smallest real use of each that
can go wrong.

Each function imports its library itself (a missing or broken install becomes that smoke's FAIL,
not a crash of the doctor), raises ``AssertionError`` with a readable message when a result is
wrong, and returns a one-line detail for the table. The Triton smoke lives in ``triton_smoke``.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from recsys.device import hardware, resolve_device
from recsys.runtime.environ import scoped_environ


def torchrec_smoke() -> str:
    """EmbeddingBagCollection (2 tables) forward + backward over a KeyedJaggedTensor."""
    import torch
    from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor

    device = resolve_device("auto")
    torch.manual_seed(0)
    tables = [
        EmbeddingBagConfig(name="t_user", embedding_dim=8, num_embeddings=100,
                           feature_names=["user_id"]),
        EmbeddingBagConfig(name="t_item", embedding_dim=8, num_embeddings=200,
                           feature_names=["item_id"]),
    ]
    ebc = EmbeddingBagCollection(tables=tables, device=device)
    # 3 samples; user_id lengths [1, 2, 1], item_id lengths [1, 2, 0] (an empty bag on purpose).
    kjt = KeyedJaggedTensor.from_lengths_sync(
        keys=["user_id", "item_id"],
        values=torch.tensor([1, 2, 3, 4, 5, 6, 7], device=device),
        lengths=torch.tensor([1, 2, 1, 1, 2, 0], device=device),
    )
    pooled = ebc(kjt)
    assert tuple(pooled.values().shape) == (3, 16), f"pooled shape {tuple(pooled.values().shape)}"
    pooled.values().pow(2).sum().backward()
    norms = {}
    for name, param in ebc.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        norms[name.split(".")[-2]] = float(param.grad.abs().sum())
    zero = [t for t, n in norms.items() if n == 0.0]
    assert not zero, f"zero gradients for {zero}"
    grads = ", ".join(f"{t} {n:.2f}" for t, n in sorted(norms.items()))
    return f"EBC 2 tables fwd+bwd on {device}, pooled (3, 16), |grad| {grads}"


def ray_smoke() -> str:
    """A remote task on a private local Ray returns the right values."""
    import ray

    from recsys.runtime.ray_local import local_ray

    @ray.remote
    def square(x: int) -> int:
        return x * x

    with local_ray(num_cpus=2) as address:
        got = ray.get([square.remote(i) for i in range(8)], timeout=60)
        cpus = ray.cluster_resources().get("CPU", 0)
    assert got == [i * i for i in range(8)], f"remote results {got}"
    return f"8 remote tasks correct on {address} ({cpus:.0f} CPUs), shut down"


def faiss_smoke(n: int = 2000, dim: int = 32) -> str:
    """IndexFlatIP over normalised vectors: each stored vector's top-1 neighbour is itself."""
    import faiss
    import numpy as np

    rng = np.random.default_rng(0)
    xb = rng.standard_normal((n, dim)).astype(np.float32)
    faiss.normalize_L2(xb)
    index = faiss.IndexFlatIP(dim)
    where = "CPU"
    gpus = hardware().faiss_gpus
    if gpus > 0:
        resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(resources, 0, index)
        where = f"GPU 0 of {gpus}"
    index.add(xb)
    queries = xb[:100]
    scores, ids = index.search(queries, 1)
    wrong = int((ids[:, 0] != np.arange(len(queries))).sum())
    assert wrong == 0, f"{wrong}/100 stored vectors did not find themselves"
    assert np.allclose(scores[:, 0], 1.0, atol=1e-4), "self inner product of a unit vector != 1"
    return (f"IndexFlatIP {n}x{dim} on {where}: 100/100 self top-1, score 1.0 "
            f"(faiss {faiss.__version__})")


def wandb_smoke() -> str:
    """An offline run logs a metric and finishes; its offline-run directory must exist."""
    import wandb

    with tempfile.TemporaryDirectory(prefix="recsys-wandb-") as tmp, scoped_environ({
        "WANDB_MODE": "offline", "WANDB_DIR": tmp, "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"
    }):
        run = wandb.init(project="recsys-doctor", dir=tmp, mode="offline",
                         config={"smoke": True}, reinit="create_new")
        run.log({"loss": 0.5})
        run.log({"loss": 0.25})
        run.finish()
        runs = sorted(Path(tmp, "wandb").glob("offline-run-*"))
        assert runs, f"no offline-run-* directory under {tmp}/wandb"
        files = sorted(p.name for p in runs[0].iterdir())
        assert any(f.endswith(".wandb") for f in files), f"no .wandb log in {runs[0].name}: {files}"
        name = runs[0].name
    with contextlib.suppress(Exception):
        wandb.teardown()  # stop the wandb-core service process we caused to start
    return f"offline run logged 2 steps, wrote {name}"


def redis_smoke() -> str:
    """redis-server (the system package the live-events log needs) starts with the AOF on, as
    the stack starts it, and answers PING over redis-py; then it is stopped."""
    import redis

    from recsys.runtime.redis_server import redis_server

    with (tempfile.TemporaryDirectory(prefix="recsys-doctor-redis-") as tmp,
          redis_server(Path(tmp)) as server):
        client = redis.Redis.from_url(server.url, socket_timeout=5, socket_connect_timeout=5)
        try:
            assert client.ping() is True, f"no PONG from {server.url}"
            version = client.info("server")["redis_version"]
            aof = client.config_get("appendonly").get("appendonly")
        finally:
            client.close()
        url = server.url
    assert aof == "yes", f"appendonly is {aof!r}, not yes"
    return (f"redis-server {version} answered PING on {url} (AOF on, redis-py "
            f"{redis.__version__}), stopped")
