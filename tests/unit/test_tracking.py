"""wandb tracking: offline runs record config, metrics and artefacts; logger=none writes nothing."""

from recsys.tracking import NullTracker, WandbTracker, start_tracker


def test_disabled_tracker_is_a_no_op(tmp_path):
    tracker = start_tracker(False, "offline", "p", {}, tmp_path, name="x")
    assert isinstance(tracker, NullTracker)
    tracker.log_metrics({"a": 1.0})
    tracker.finish()
    assert not (tmp_path / "wandb").exists()


def test_offline_run_holds_config_metrics_and_artifact(tmp_path):
    art = tmp_path / "model"
    art.mkdir()
    (art / "weights.bin").write_bytes(b"0" * 10)
    tracker = start_tracker(True, "offline", "recsys-test", {"model": {"l2": 500}}, tmp_path,
                            name="unit")
    assert isinstance(tracker, WandbTracker)
    tracker.log_metrics({"ease/ndcg@10": 0.3})
    tracker.log_artifact(art, name="unit-model", kind="model")
    assert tracker.run.config["model"] == {"l2": 500}
    assert tracker.run.summary["ease/ndcg@10"] == 0.3
    tracker.finish()
    run_dir = next((tmp_path / "wandb").glob("offline-run-*"))
    # Offline runs keep everything in the .wandb record log (protobuf, strings stored verbatim).
    log = next(run_dir.glob("*.wandb")).read_bytes()
    for needle in (b"ease/ndcg@10", b"unit-model", b"weights.bin", b"recsys-test"):
        assert needle in log, needle
