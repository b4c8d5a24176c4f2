"""An experiment end to end through the real stack: two experiments of one layer served at
once, the HTTP simulator's users requesting and posting their clicks and plays back, every
response an exposure in the log, and the report (``python -m recsys.ab report``) read from it."""

import time

import httpx
import numpy as np
import pandas as pd
import pytest

from recsys.ab.cli import main as ab_main
from recsys.ab.sim_http import run_http
from recsys.ab.simulator import ClickModel, HeldOut, SimSettings
from recsys.events.log import open_log
from recsys.experiments.exposures import is_exposure
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.bundle import load_bundle
from tests.integration.conftest import WRITE_KEY, compose_config

pytestmark = pytest.mark.integration
EXPERIMENTS = "ab=[ease_vs_ranker,interleave_ease]"


@pytest.fixture(scope="module")
def stack(served_artefacts, api_keys, tmp_path_factory):
    from serve.stack import running_stack

    live = tmp_path_factory.mktemp("live")
    overrides = [f"serve.artefacts_root={served_artefacts}", "serve.port=0",
                 "serve.ranker=onnx", f"serve.events.path={live}", EXPERIMENTS]
    with running_stack(compose_config(overrides).serve) as running:
        yield running, overrides


def taste(bundle, seed: int = 0) -> HeldOut:
    """A pretend held-out set: 30 random titles per user, ratings 1..5."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(len(bundle.user_ids)), 30)
    return HeldOut(pd.DataFrame({"user_idx": users,
                                 "item_idx": rng.integers(0, len(bundle.item_ids), len(users)),
                                 "rating": rng.choice([1.0, 3.0, 4.0, 5.0], len(users))}))


def test_an_experiment_runs_through_the_stack_and_reports_from_the_log(stack, served_artefacts,
                                                                      tmp_path, capsys):
    running, overrides = stack
    bundle = load_bundle(*ArtefactStore(served_artefacts).resolve("latest"))
    settings = SimSettings(click_positive=0.9, click_rated=0.5, click_other=0.2)
    model = ClickModel(settings, taste(bundle))
    index = {int(t): i for i, t in enumerate(bundle.item_ids)}
    users = [(int(u), i) for i, u in enumerate(bundle.user_ids[:60])]
    run = run_http(running.url, WRITE_KEY, users, 3, model, settings, index)
    assert run.errors == [] and run.requests == 180 and run.events_accepted > 0
    arms = {key.split(":")[1] for key in run.arms}
    assert {"control", "ease_only", "interleaved"} <= arms  # both experiments, both A/B arms
    assert sum(run.arms.values()) == run.requests  # one layer: each user in exactly one

    event_log = open_log(running.events, str(running.live_folder))
    try:
        deadline = time.monotonic() + 10
        while True:  # exposures are flushed off the response path, within ~50 ms
            records = [e.record for b in event_log.scan() for e in b]
            exposures = [r for r in records if is_exposure(r)]
            if len(exposures) >= run.requests or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        event_log.close()
    assert len(exposures) == run.requests
    ids = {r["request_id"] for r in exposures}
    engaged = [r for r in records if r["type"] in ("click", "play") and r.get("request_id")]
    assert len(engaged) == run.events_accepted and {r["request_id"] for r in engaged} <= ids
    mixed = [r for r in exposures if r["experiments"][0]["kind"] == "interleave"]
    assert mixed and all(set(r["teams"]) <= {"control", "ease_only"} for r in mixed)
    assert all(r["latency_ms"] > 0 and r["items"] for r in exposures)

    for name in ("ease_vs_ranker", "interleave_ease"):
        code = ab_main(["report", name, "--out", str(tmp_path), "--period-s", "5",
                        *overrides])
        assert code == 0, capsys.readouterr().err
        text = (tmp_path / f"{name}.md").read_text()
        assert "control" in text and "ease_only" in text
        assert list(tmp_path.glob(f"{name}_*.png"))
    with httpx.Client(base_url=running.url) as client:
        ready = client.get("/readyz").json()
    assert ready["experiments"] == ["ease_vs_ranker", "interleave_ease"]
    assert ready["experiments_failed"] == {}


def test_a_bad_experiment_stops_the_start_in_one_line(served_artefacts):
    from recsys.experiments.assignment import ExperimentError
    from serve.stack import running_stack

    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.port=0",
                          "serve.ranker=onnx", EXPERIMENTS,
                          "serve.experiments.interleave_ease.offset=0.3"])
    with pytest.raises(ExperimentError, match="overlap 'ease_vs_ranker'"):
        with running_stack(cfg.serve):
            pass


def test_the_report_command_refuses_bad_input_in_one_line(capsys):
    assert ab_main(["report", "nope"]) == 2
    assert "ab/nope" in capsys.readouterr().err
    assert ab_main(["report", "ease_vs_ranker", "--period-s", "0"]) == 2
    assert "--period-s" in capsys.readouterr().err
