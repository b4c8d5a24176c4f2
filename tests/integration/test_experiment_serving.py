"""Experiments in the request path over a real trained bundle: arms as request-path variants,
a second artefact version loaded once, team-draft interleaving, fallbacks, start-time checks."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from recsys.experiments.assignment import ExperimentError
from recsys.experiments.exposures import exposure_record
from recsys.experiments.settings import ArmConfig, ExperimentConfig, ExperimentKind
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.bundle import load_bundle
from recsys.serving.experiment_paths import ExperimentPaths, check_experiments
from recsys.serving.rankers import OnnxRanker
from recsys.serving.request_path import Request, RequestPath
from recsys.serving.settings import RankerKind, ServeConfig
from recsys.serving.state import InMemoryUserStore
from serve.recommender import result_dict

pytestmark = pytest.mark.integration

EASE_ONLY = {"ranker": "none", "surface_sources": {"home": ["cowatch"]}}  # cowatch: EASE


@pytest.fixture(scope="module")
def artefacts(served_artefacts: Path) -> ArtefactStore:
    """The served bundle, and a copy published as a second version ("b")."""
    store = ArtefactStore(served_artefacts)
    version, path = store.resolve("latest")
    shutil.copytree(path, store.versions_dir / "b")
    return store


@pytest.fixture(scope="module")
def base(artefacts: ArtefactStore) -> RequestPath:
    bundle = load_bundle(*artefacts.resolve("latest"))
    cfg = ServeConfig(ranker=RankerKind.onnx, artefacts_root=str(artefacts.root))
    store = InMemoryUserStore.from_events(bundle.events, bundle.items)
    return RequestPath(bundle, store, OnnxRanker(bundle.ranker_dir / "model.onnx"), cfg)


def loader(artefacts: ArtefactStore, base: RequestPath):
    def load(version: str) -> RequestPath:
        bundle = load_bundle(*artefacts.resolve(version))
        loaded.append(version)
        return RequestPath(bundle, base.store, OnnxRanker(bundle.ranker_dir / "model.onnx"),
                           base.cfg)
    loaded: list[str] = []
    load.loaded = loaded  # type: ignore[attr-defined]
    return load


def with_experiments(base: RequestPath, **experiments: ExperimentConfig) -> ServeConfig:
    return replace(base.cfg, experiments=experiments)


def users(base: RequestPath, n: int = 40) -> list[int]:
    return [int(u) for u in base.bundle.user_ids[:n]]


def test_ab_arms_are_request_path_variants(base):
    exp = ExperimentConfig(arms=[ArmConfig("control"), ArmConfig("ease_only", serve=EASE_ONLY)])
    paths = ExperimentPaths(base, with_experiments(base, ease_vs_ranker=exp))
    seen = {}
    for user in users(base):
        res = paths.recommend_sync(Request(user_id=user, n=10, request_id=f"r{user}"))
        (named,) = res.experiments
        assert named["experiment"] == "ease_vs_ranker" and named["kind"] == "ab"
        seen[named["arm"]] = res
        if named["arm"] == "ease_only":  # no ranker (merge order), one source
            assert "rank" in res.degraded
            assert all(r.sources == ["cowatch"] for r in res.items)
        else:
            assert res.degraded == [] and any(r.sources != ["cowatch"]
                                              for r in res.items)
    assert set(seen) == {"control", "ease_only"}
    again = paths.recommend_sync(Request(user_id=users(base)[0], n=10))
    assert again.experiments == paths.recommend_sync(
        Request(user_id=users(base)[0], n=10)).experiments  # sticky
    record = exposure_record(result_dict(seen["ease_only"], True), 1_000, 5.0)
    assert record["items"] == [r.item_id for r in seen["ease_only"].items]
    assert record["experiments"][0]["arm"] == "ease_only" and "teams" not in record


def test_interleave_merges_both_arms_by_team_draft(base):
    exp = ExperimentConfig(kind=ExperimentKind.interleave,
                           arms=[ArmConfig("control"), ArmConfig("ease_only", serve=EASE_ONLY)])
    paths = ExperimentPaths(base, with_experiments(base, mix=exp))
    user = users(base)[3]
    res = paths.recommend_sync(Request(user_id=user, n=10, request_id="abc"))
    assert res.experiments == [{"experiment": "mix", "arm": "interleaved",
                                "kind": "interleave"}]
    arms = [r.arm for r in res.items]
    assert set(arms) <= {"control", "ease_only"} and abs(arms.count("control")
                                                         - arms.count("ease_only")) <= 1
    assert len({r.item_id for r in res.items}) == len(res.items) == 10
    replayed = paths.recommend_sync(Request(user_id=user, n=10, request_id="abc"))
    assert [(r.item_id, r.arm) for r in replayed.items] == [(r.item_id, r.arm)
                                                            for r in res.items]
    record = exposure_record(result_dict(res, True), 1_000, 5.0)
    assert record["teams"] == arms


def test_an_arm_of_another_version_is_loaded_once(artefacts, base):
    exp = ExperimentConfig(arms=[ArmConfig("control"), ArmConfig("b", version="b"),
                                 ArmConfig("b_unranked", version="b", serve={"ranker": "none"})])
    load = loader(artefacts, base)
    paths = ExperimentPaths(base, with_experiments(base, versions=exp), load)
    assert load.loaded == ["b"] and sorted(paths.loaded_versions()) == sorted(
        [base.bundle.version, "b"])
    versions = {paths.recommend_sync(Request(user_id=u, n=5)).version for u in users(base)}
    assert versions == {base.bundle.version, "b"}


def test_an_arm_that_cannot_load_falls_back_to_control(base):
    exp = ExperimentConfig(arms=[ArmConfig("control"), ArmConfig("b", version="b")])
    paths = ExperimentPaths(base, with_experiments(base, broken=exp), load_version=None)
    assert "broken" in paths.failed
    res = paths.recommend_sync(Request(user_id=users(base)[0], n=5))
    assert res.experiments == [] and res.version == base.bundle.version and res.items
    typo = ExperimentConfig(arms=[ArmConfig("control"),
                                  ArmConfig("x", serve={"surface_sources": {"home": ["eaze"]}})])
    assert "eaze" in ExperimentPaths(base, with_experiments(base, typo=typo)).failed["typo"]


def test_layers_overlap_and_their_knobs_combine(base):
    ranker = ExperimentConfig(layer="ranking", arms=[
        ArmConfig("control"), ArmConfig("unranked", serve={"ranker": "none"})])
    rerank = ExperimentConfig(layer="rerank", arms=[
        ArmConfig("control"), ArmConfig("diverse", serve={"rerank.max_genre_share": 0.5})])
    paths = ExperimentPaths(base, with_experiments(base, ranker=ranker, rerank=rerank))
    combos = {tuple(e["arm"] for e in paths.recommend_sync(
        Request(user_id=u, n=5)).experiments) for u in users(base, 120)}
    assert combos == {("control", "control"), ("control", "diverse"),
                      ("unranked", "control"), ("unranked", "diverse")}
    clash = ExperimentConfig(layer="other", arms=[
        ArmConfig("control"), ArmConfig("off", serve={"ranker": "none"})])
    with pytest.raises(ExperimentError, match="both set"):
        ExperimentPaths(base, with_experiments(base, ranker=ranker, clash=clash))


@pytest.mark.parametrize("arm, message", [
    (ArmConfig("t", serve={"replicas": 2}), "not a knob an arm can set"),
    (ArmConfig("t", serve={"ranker": "trition"}), "not one of"),
    (ArmConfig("t", serve={"rerank": {"max_genre_shar": 0.3}}), "max_genre_shar"),
    (ArmConfig("t", serve={"rank_deadline_ms": "fast"}), "expected a number"),
    (ArmConfig("t", version="nope"), "version"),
])
def test_a_bad_arm_is_refused_at_start_naming_it(artefacts, base, arm, message):
    cfg = with_experiments(base, e=ExperimentConfig(arms=[ArmConfig("control"), arm]))
    with pytest.raises(Exception, match=message):
        check_experiments(cfg, lambda v: artefacts.resolve(v)[0])


def test_another_version_is_allowed_under_triton(artefacts, base):
    """Triton serves each artefact version as its own model (serve/triton_host.py)."""
    cfg = replace(with_experiments(base, e=ExperimentConfig(
        arms=[ArmConfig("control"), ArmConfig("b", version="b")])), ranker=RankerKind.triton)
    assert "e" in check_experiments(cfg, lambda v: artefacts.resolve(v)[0]).experiments
