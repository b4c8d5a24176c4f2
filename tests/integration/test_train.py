"""train.py end to end: artefacts, wandb offline run, sweeps, and the ml-1m benchmark number."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.config import compose_config

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from train import train  # noqa: E402


def _cfg(overrides):
    return compose_config(overrides)


def test_train_writes_artefacts_and_an_offline_wandb_run(tmp_path, capsys):
    cfg = _cfg(["model=popular", "logger=wandb", "trainer.progress=false"])
    results = train(cfg, tmp_path)
    assert set(results) == {"popular"}
    assert json.loads((tmp_path / "metrics.json").read_text())["popular"]["ndcg@10"] > 0.1
    assert (tmp_path / "model" / "counts.npy").exists()
    assert (tmp_path / "model" / "item_index.parquet").exists()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    out = capsys.readouterr().out
    assert "| ndcg@10 |" in out and "Top 10 from popular:" in out


def test_main_job_prints_metrics_and_titles(tmp_path):
    """What `make run` runs: EASE on the bundled data, metrics and a sample user's top 10."""
    proc = subprocess.run(
        [sys.executable, "train.py", f"hydra.run.dir={tmp_path}", "trainer.progress=false"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| metric | ease | popular |" in proc.stdout
    top = proc.stdout.split("Top 10 from ease:\n")[1].splitlines()
    assert len(top) >= 10 and top[0].startswith("  1. ") and "(" in top[0]  # "Title (year)"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["ease"]["ndcg@10"] > metrics["popular"]["ndcg@10"]
    assert (tmp_path / ".hydra" / "config.yaml").exists()


def test_multirun_sweep(tmp_path, data_root):
    proc = subprocess.run(
        [sys.executable, "train.py", "-m", "model=ease,popular", "data=ml-latest-small,ml-100k",
         f"data.root={data_root}", "logger=none", "trainer.progress=false",
         f"hydra.sweep.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list(tmp_path.glob("*/metrics.json"))) == 4


@pytest.mark.slow
def test_ml1m_benchmark_reproduces_ease(tmp_path, data_root):
    cfg = _cfg(["experiment=ml1m_benchmark", f"data.root={data_root}", "logger=none",
                "trainer.progress=false"])
    results = train(cfg, tmp_path)
    assert results["ease"]["ndcg@10"] == pytest.approx(0.375, abs=0.005)
    assert results["ease"]["recall@20"] == pytest.approx(0.32, abs=0.01)
    assert results["popular"]["ndcg@10"] < results["ease"]["ndcg@10"] / 1.5


def test_debug_preset_generates_synthetic_data_once(tmp_path):
    cache = tmp_path / "synthetic"
    cfg = _cfg(["debug=default", f"data.root={cache}"])
    first = train(cfg, tmp_path / "run1")
    folders = list(cache.iterdir())
    assert len(folders) == 1 and (folders[0] / "meta.json").exists()
    stamp = (folders[0] / "meta.json").stat().st_mtime_ns
    second = train(cfg, tmp_path / "run2")
    assert (folders[0] / "meta.json").stat().st_mtime_ns == stamp  # reused, not regenerated
    assert first == second  # same seed, same data, same numbers
    assert first["ease"]["users"] > 0


def test_ranker_job_publishes_a_loadable_serving_bundle(tmp_path):
    """The two-stage job end to end on tiny synthetic data: metrics, export, and a published
    artefact version that the serving side loads back."""
    from recsys.candidates.types import Context, UserHistory
    from recsys.config.jobs import two_stage_job
    from recsys.serving.artefacts import ArtefactStore
    from recsys.serving.bundle import load_bundle
    from recsys.train.two_stage import train_ranker

    cfg = _cfg(["debug=default", "candidates=fast", "ranker=two_tower", "trainer.epochs=1",
                "trainer.progress=false", "logger=none", "ranker.export.check_on_triton=false",
                f"data.root={tmp_path / 'data'}"])
    results = train_ranker(two_stage_job(cfg), tmp_path / "run")
    assert {"two_tower", "ease"} <= set(results)
    run = json.loads((tmp_path / "run" / "metrics.json").read_text())["run"]
    version, path = ArtefactStore(tmp_path / "run" / "artefacts").resolve("latest")
    assert version == run["artefact_version"]
    bundle = load_bundle(version, path)
    assert (bundle.ranker_dir / "triton_repository" / "ranker" / "config.pbtxt").is_file()
    user = int(bundle.events["user_idx"].iloc[0])
    history = bundle.events.loc[bundle.events["user_idx"] == user, "item_idx"].to_numpy()
    cands = bundle.generator.generate(UserHistory(user, history), Context())
    assert len(cands) > 0 and not set(cands.items.tolist()) & set(history.tolist())
    # the ranker's towers are served as one more source, after the ones it was trained on
    assert list(bundle.generator.sources) == ["cf", "cowatch", "trending", "two_tower"]
    assert bundle.generator.sources["two_tower"].quota == 100
    assert bundle.source_stats.names == ["cf", "cowatch", "trending"]  # features unchanged
    assert any(p.source == "two_tower" for c in cands.candidates for p in c.provenance)
