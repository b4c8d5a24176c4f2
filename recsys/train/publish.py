"""The two-stage job's last steps: export the trained ranker (TorchScript / ONNX files and a
Triton model repository, checked on the real Triton server) and publish the serving bundle as a
new artefact version.

The export checks (``check_export``) run before any training, so a setting that would fail only
at export time, or fail every request once served, is refused in seconds.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys import RecsysError
from recsys.candidates.two_tower import TwoTowerRetrieval
from recsys.ranking.model import ServingRanker, TwoTowerRanker
from recsys.train.settings import RankerExportConfig

log = logging.getLogger(__name__)


def request_rows_bound(quotas: dict[str, int], export: RankerExportConfig) -> int:
    """Most ranker rows one request can carry: every candidate source's quota of new titles,
    plus the two-tower retrieval slot the bundle adds."""
    return sum(int(q) for q in quotas.values()) + max(0, int(export.two_tower_quota))


def warmup_batch_sizes(quotas: dict[str, int], export: RankerExportConfig) -> list[int]:
    """Rows of each Triton warm-up batch: ``ranker.export.warmup_requests`` requests of the
    largest size, capped at ``max_batch_size``."""
    rows = request_rows_bound(quotas, export)
    return sorted({min(int(k) * rows, int(export.max_batch_size))
                   for k in export.warmup_requests})


def check_export(quotas: dict[str, int] | None, export: RankerExportConfig) -> None:
    """Refuse export settings that would fail only after training, or fail every request once
    served: a served format that is not exported, a warm-up of no requests, or a
    ``max_batch_size`` below the rows of one request (Triton rejects a request larger than it,
    so each would fall back to candidate order). ``quotas`` None: no candidates configured."""
    if export.serve_format not in export.formats:
        raise RecsysError(f"ranker.export.serve_format={export.serve_format} is not in "
                          f"ranker.export.formats={[str(f) for f in export.formats]}")
    if export.two_tower_quota < 0:
        raise RecsysError("ranker.export.two_tower_quota must be >= 0, got "
                          f"{export.two_tower_quota}")
    if any(int(k) < 1 for k in export.warmup_requests):
        raise RecsysError(f"ranker.export.warmup_requests={list(export.warmup_requests)}: each "
                          "entry is a number of requests, >= 1 (use [] for no warm-up)")
    if quotas is None:
        return
    rows = request_rows_bound(quotas, export)
    if int(export.max_batch_size) < rows:
        raise RecsysError(
            f"ranker.export.max_batch_size={export.max_batch_size} is below the {rows} rows one "
            "request can carry (the candidates.sources quotas plus ranker.export.two_tower_quota)"
            f": Triton would reject every request; set it to at least {rows}, a few times more "
            "so that requests can merge")


def export_ranker(model: TwoTowerRanker, ranker_data, serving, quotas: dict[str, int],
                  export: RankerExportConfig, out: Path) -> dict[str, Any]:
    """TorchScript and/or ONNX files, the Triton repository, and the check on a real Triton."""
    from recsys.ranking.batches import gather
    from recsys.ranking.export import export_onnx, export_torchscript, ranking_spec
    from recsys.runtime.triton_repo import write_model_repository

    check_export(quotas, export)
    out.mkdir(parents=True, exist_ok=True)
    (out / "layout.json").write_text(ranker_data.layout.to_json())
    with open(out / "features.pkl", "wb") as fh:
        pickle.dump(ranker_data.builder, fh)
    torch.save(model.state_dict(), out / "ranker_state.pt")
    wrapped = ServingRanker(model).eval()
    layout = ranker_data.layout
    example_rows = np.arange(min(64, len(ranker_data.validation)))
    example = gather(serving.tables, ranker_data.validation, example_rows).inputs()
    writers = {"torchscript": (export_torchscript, "model.pt"),
               "onnx": (export_onnx, "model.onnx")}
    files = {}
    for fmt in export.formats:
        write, name = writers[fmt]
        files[str(fmt)] = write(wrapped, example, out / name)
    spec = ranking_spec(layout.slots, layout.user_dense, layout.item_dense, layout.pair_dense)
    repo = out / "triton_repository"
    write_model_repository(repo, "ranker", files[export.serve_format], spec,
                           fmt=str(export.serve_format), max_batch_size=export.max_batch_size,
                           preferred_batch_sizes=list(export.preferred_batch_sizes),
                           max_queue_delay_us=export.max_queue_delay_us,
                           max_queue_size=export.max_queue_size,
                           instance_count=export.instance_count, kind=str(export.instance_kind),
                           num_threads=export.num_threads,
                           warmup_batch_sizes=warmup_batch_sizes(quotas, export))
    result: dict[str, Any] = {"exported": sorted(files), "triton_repository": str(repo)}
    if export.check_on_triton:
        result["triton_max_abs_diff"] = check_on_triton(wrapped, repo, example)
    return result


def check_on_triton(model: torch.nn.Module, repo: Path, example: dict[str, torch.Tensor]
                    ) -> float:
    """Serve the repository on the real Triton and compare with the in-process model."""
    from recsys.runtime.triton_client import infer
    from recsys.runtime.tritonserver import tritonserver

    with torch.inference_mode():
        want = model(**example).numpy()
    with tritonserver(repo) as server:
        client = server.grpc_client()
        try:
            got = infer(client, "ranker", {k: v.numpy() for k, v in example.items()})
        finally:
            client.close()
    diff = float(np.abs(got.reshape(want.shape) - want).max())
    if diff > 1e-5:
        raise RecsysError(f"Triton's scores differ from the in-process ranker by {diff:.2e}")
    log.info("Triton equivalence: max |diff| %.2e over %d rows", diff, len(want))
    return diff


def bundle_sources(trained: dict[str, tuple[object, int]],
                   retrieval: TwoTowerRetrieval | None, quota: int
                   ) -> dict[str, tuple[object, int]]:
    """The serving slots: the trained sources, then two-tower retrieval as ``two_tower``. It
    comes last and out of ``SourceLists`` on purpose: the ranker was trained on the others'
    provenance features, and the towers exist only once the ranker does."""
    if quota < 0:
        raise RecsysError(f"ranker.export.two_tower_quota must be >= 0, got {quota}")
    if TwoTowerRetrieval.name in trained:
        raise RecsysError(f"candidates.sources.{TwoTowerRetrieval.name} clashes with the "
                          "two-tower retrieval slot the ranker job adds; rename the source")
    if retrieval is None or quota == 0:
        return dict(trained)
    return {**trained, TwoTowerRetrieval.name: (retrieval, quota)}


def publish_bundle(root: Path, weights: dict[str, float], overfetch: float,
                   positive_threshold: float | None, two_tower_quota: int, dataset,
                   train_events, serving, ranker_data, ranker_dir: Path,
                   retrieval: TwoTowerRetrieval | None = None) -> str:
    """Write the serving bundle as a new artefact version under ``root`` and point ``latest``
    at it. ``retrieval`` (the ranker's towers) becomes the ``two_tower`` slot unless
    ``two_tower_quota`` is 0."""
    from recsys.serving.artefacts import ArtefactStore
    from recsys.serving.bundle import write_bundle

    store = ArtefactStore(Path(root))
    path = store.new_version()
    slots = {name: {"weight": float(weight)} for name, weight in weights.items()}
    sources = bundle_sources(serving.sources, retrieval, int(two_tower_quota))
    write_bundle(path, sources, slots, overfetch, serving.lists, ranker_data.builder,
                 serving.tables, dataset.items_by_index(), train_events,
                 dataset.user_index.raw_ids, dataset.item_index.raw_ids, ranker_dir,
                 positive_threshold=positive_threshold)
    store.publish(path)
    log.info("serving artefacts: version %s in %s", path.name, root)
    return path.name
