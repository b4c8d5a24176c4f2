"""The daily retrain end to end on a real log: export -> train -> gate -> publish, the first
version published ungated, a candidate as good as the serving one published with the gate in
its manifest, a refused one left in staging with the serving version untouched."""

from __future__ import annotations

import json

import pytest

from recsys.config import compose_config
from recsys.events.log import open_log
from recsys.events.settings import EventsConfig
from recsys.retrain.__main__ import main
from recsys.serving.artefacts import ArtefactStore
from tests.integration.test_train_from_events import logged

pytestmark = pytest.mark.integration


def test_export_train_gate_publish_and_refuse(tmp_path, monkeypatch, capsys):
    live, artefacts = tmp_path / "live", tmp_path / "artefacts"
    log = open_log(EventsConfig(path=str(live)))
    log.append(logged(days=5, users=60, per_day=4))
    log.close()
    args = [f"serve.artefacts_root={artefacts}", f"serve.events.path={live}",
            "retrain.tolerance=0.05", "retrain.train_overrides=['trainer.epochs=1',"
            "'trainer.progress=false','logger=none']"]
    assert main(args) == 0
    first = ArtefactStore(artefacts).resolve("latest")[0]
    manifest = ArtefactStore(artefacts).manifest(first)
    assert manifest["retrain"]["gate"]["reason"] == "no serving version yet"
    assert set(manifest["retrain"]["seconds"]) == {"export", "train", "gate"}

    assert main(args) == 0  # the same data: as good as the serving version, within 5 %
    second = ArtefactStore(artefacts).resolve("latest")[0]
    gate = ArtefactStore(artefacts).manifest(second)["retrain"]["gate"]
    assert second != first and gate["serving"] == first and gate["passed"]
    assert gate["users"] > 0 and 0.0 <= gate["candidate_value"] <= 1.0
    assert "published" in capsys.readouterr().out

    monkeypatch.setattr("recsys.retrain.gate.passes", lambda *a: False)
    assert main(args) == 3
    assert ArtefactStore(artefacts).resolve("latest")[0] == second  # the serving one stays
    refused = sorted((tmp_path / "staging" / "versions").glob("*/gate.json"))
    assert len(refused) == 1 and not json.loads(refused[0].read_text())["gate"]["passed"]
    assert "refused by the gate" in capsys.readouterr().out
    assert main([*args, "retrain.metric=auc"]) == 2
    assert "retrain.metric" in capsys.readouterr().err
    assert main(["retrain.train_overrides=[a=1]"]) == 2  # bad syntax: a sentence, no trace
    assert "quote values" in capsys.readouterr().err
    assert compose_config(["retrain.holdout_days=2"]).retrain.holdout_days == 2
