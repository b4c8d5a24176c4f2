"""The experiment analysis and report on synthetic logs: planted effects are found with the
right sign, an A/A is not, broken splits and bad records are flagged, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsys.experiments.analysis import (
    METRIC_PARTS,
    collect,
    compare,
    interleave_credit,
    linearised,
    user_table,
)
from recsys.experiments.assignment import INTERLEAVED
from recsys.experiments.interleave import preference
from recsys.experiments.report import build_report
from recsys.experiments.settings import ArmConfig, ExperimentConfig, ExperimentKind
from recsys.experiments.stats import mean_difference

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, ms
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def _cfg(kind: ExperimentKind = ExperimentKind.ab, arms: tuple[str, ...] = ("control", "treat"),
         primary: str = "play_rate") -> ExperimentConfig:
    return ExperimentConfig(name="exp", kind=kind, arms=[ArmConfig(a) for a in arms],
                            primary_metric=primary)


def _exposure(rid: str, user: int, ts: int, arm: str, items: list, teams: list | None = None,
              experiment: str = "exp", latency: float = 10.0) -> dict:
    """A record as recsys.experiments.exposures.exposure_record writes it."""
    kind = "interleave" if arm == INTERLEAVED else "ab"
    rec = {"event_id": rid, "type": "impression", "origin": "serve", "user_id": user,
           "ts_ms": ts, "ingest_ms": ts, "request_id": rid, "surface": "home", "items": items,
           "experiments": [{"experiment": experiment, "arm": arm, "kind": kind}],
           "latency_ms": latency, "version": "v1", "degraded": []}
    if teams is not None:
        rec["teams"] = teams
    return rec


def _engage(kind: str, user: int, item: int, ts: int, rid: str | None = None,
            watch: float | None = None, duration: float | None = 1800.0) -> dict:
    rec = {"event_id": f"{kind}-{user}-{item}-{ts}", "type": kind, "user_id": user,
           "item_id": item, "ts_ms": ts, "ingest_ms": ts, "origin": "api"}
    if kind == "play":
        rec["watch_fraction"] = watch
        if duration is not None:
            rec["duration_s"] = duration
    if rid is not None:
        rec["request_id"] = rid
    return rec


def _ab_records(seed: int, n_users: int, play_rates: tuple[float, ...],
                weights: tuple[float, ...] = (0.5, 0.5), days: int = 7) -> list[dict]:
    """Users of varied propensity (gamma, mean 1): their pre-period plays and their plays per
    exposure both scale with it, so the pre-period is a correlated covariate."""
    rng = np.random.default_rng(seed)
    arms = rng.choice(len(play_rates), size=n_users, p=np.asarray(weights) / sum(weights))
    propensity = rng.gamma(2.0, 0.5, n_users)
    names = ["control", "treat", "third"]
    out: list[dict] = []
    for user in range(n_users):
        start = T0 + int(rng.integers(0, days * DAY_MS))
        for k in range(rng.poisson(6 * propensity[user])):
            out.append(_engage("play", user, 5000 + k, start - (k + 1) * HOUR_MS, watch=0.5))
        for e in range(1 + rng.poisson(4)):
            ts, rid = start + e * HOUR_MS, f"r{user}-{e}"
            items = rng.choice(1000, 10, replace=False).tolist()
            out.append(_exposure(rid, user, ts, names[arms[user]], items,
                                 latency=float(rng.gamma(2, 5))))
            if rng.random() < min(0.95, play_rates[arms[user]] * propensity[user]):
                slot = int(rng.integers(0, 10))
                out.append(_engage("click", user, items[slot], ts + 1000, rid))
                out.append(_engage("play", user, items[slot], ts + 2000, rid,
                                   watch=float(rng.random())))
    return out


@pytest.fixture(scope="module")
def planted() -> list[dict]:
    return _ab_records(seed=1, n_users=3000, play_rates=(0.30, 0.36))


def test_collect_attributes_engagement_to_exposure_slot_and_arm() -> None:
    recs = [_exposure("a", 1, T0, "treat", [10, 11, 12, 13]),
            _engage("click", 1, 13, T0 + 5, "a"), _engage("play", 1, 99, T0 + 6, "a", 0.9),
            _engage("click", 1, 12, T0 - 10),  # before the exposure, no request id: pre
            _engage("click", 1, 12, T0 + 7, "other-request")]  # another experiment's
    data = collect(recs, _cfg())
    assert data.skipped == {}
    eng = data.engagement.set_index("item_id")
    assert eng.loc[13, "position"] == 3 and eng.loc[13, "arm"] == "treat"
    assert eng.loc[99, "position"] == -1 and eng.loc[99, "team"] is None
    assert len(data.engagement) == 2 and data.pre.loc[1] == 1
    row = user_table(data).loc[1]
    assert (row.exposures, row.clicks, row.plays, row.completes) == (1, 1, 1, 1)
    assert row.watch_s == pytest.approx(0.9 * 1800)


def test_watch_seconds_fall_back_to_an_hour_and_until_cuts_the_data() -> None:
    recs = [_exposure("a", 1, T0, "control", [5]), _exposure("b", 1, T0 + DAY_MS, "control", [6]),
            _engage("play", 1, 5, T0 + 1, "a", 0.5, duration=None),
            _engage("play", 1, 6, T0 + DAY_MS + 1, "b", 0.2)]
    data = collect(recs, _cfg())
    assert user_table(data).loc[1, "watch_s"] == pytest.approx(0.5 * 3600 + 0.2 * 1800)
    early = user_table(data, until_ms=T0 + 10).loc[1]
    assert (early.exposures, early.plays, early.completes) == (1, 1, 0)


def test_planted_play_rate_effect_is_detected_with_its_sign(planted: list[dict]) -> None:
    table = user_table(collect(planted, _cfg()))
    est = compare(table, _cfg())["play_rate"]["treat"]
    assert est.p_value < 0.001 and est.ci_low > 0 and est.diff > 0
    assert est.rel_lift == pytest.approx(0.2, abs=0.1)
    assert set(compare(table, _cfg())) == set(METRIC_PARTS)


def test_linearised_ratio_has_the_arm_ratio_as_its_mean(planted: list[dict]) -> None:
    table = user_table(collect(planted, _cfg()))
    v = linearised(table, "play_rate")
    for _, group in table.groupby("arm"):
        assert v[group.index].mean() == pytest.approx(group.plays.sum() / group.exposures.sum())
    # and its mean difference has the delta method's interval (up to t vs normal quantiles)
    ratio = compare(table, _cfg())["play_rate"]["treat"]
    arm = table["arm"].to_numpy()
    mean = mean_difference(v[arm == "control"].to_numpy(), v[arm == "treat"].to_numpy())
    assert mean.diff == pytest.approx(ratio.diff)
    assert mean.ci_high - mean.ci_low == pytest.approx(ratio.ci_high - ratio.ci_low, rel=0.01)


def test_a_a_finds_nothing_and_keeps_running(tmp_path: Path) -> None:
    recs = _ab_records(seed=2, n_users=3000, play_rates=(0.3, 0.3))
    est = compare(user_table(collect(recs, _cfg())), _cfg())
    assert all(est[m]["treat"].p_value > 0.05 for m in METRIC_PARTS)
    report = build_report(recs, _cfg(), tmp_path)
    assert report.summary["decision"] == "keep running"
    assert report.summary["sequential_p"]["treat"] > 0.05
    assert not report.summary["srm_flag"]


def test_report_writes_markdown_figures_and_the_decision(planted: list[dict],
                                                         tmp_path: Path) -> None:
    report = build_report(iter(planted), _cfg(), tmp_path / "out", period_s=86400)
    names = {p.name for p in report.plots}
    assert names == {f"exp_{m}.png" for m in METRIC_PARTS} | {"exp_users.png"}
    assert all(p.exists() and p.stat().st_size > 1000 for p in report.plots)
    assert report.path == tmp_path / "out" / "exp.md" and report.path.exists()
    md = report.path.read_text()
    assert report.summary["decision"] == "may stop: treat differs from control"
    assert report.summary["decision"] in md and "`control`" in md and "`treat`" in md
    assert "| arm | users |" in md
    assert 7 <= report.summary["looks"] <= 8
    assert report.summary["sequential_p"]["treat"] < 0.05
    assert report.summary["latency_p99_ms"]["control"] > 10
    json.dumps(report.summary, allow_nan=False)


def test_cuped_with_a_correlated_pre_period_reduces_variance(planted: list[dict],
                                                             tmp_path: Path) -> None:
    summary = build_report(planted, _cfg(), tmp_path).summary
    assert summary["cuped_reduction"]["treat"] > 0.2
    raw = summary["comparisons"]["play_rate"]["treat"]
    adjusted = summary["cuped"]["treat"]
    assert adjusted["ci_high"] - adjusted["ci_low"] < raw["ci_high"] - raw["ci_low"]
    assert adjusted["diff"] == pytest.approx(raw["diff"], abs=0.02)


def test_sample_ratio_mismatch_is_flagged(tmp_path: Path) -> None:
    recs = _ab_records(seed=3, n_users=2000, play_rates=(0.3, 0.3), weights=(0.6, 0.4))
    summary = build_report(recs, _cfg(), tmp_path).summary
    assert summary["srm_p"] < 1e-3 and summary["srm_flag"]
    assert "Sample-ratio mismatch (p =" in (tmp_path / "exp.md").read_text()
    # the same users against the split that was really configured: no mismatch
    again = build_report(recs, _cfg(), tmp_path, weights=[0.6, 0.4]).summary
    assert again["srm_p"] > 1e-3 and not again["srm_flag"]


def test_a_user_in_two_arms_is_counted_and_flagged(tmp_path: Path) -> None:
    recs = [_exposure(f"r{u}", u, T0 + u, ("control", "treat")[u % 2], [1, 2]) for u in range(50)]
    recs.append(_exposure("late", 0, T0 + DAY_MS, "treat", [3]))  # user 0 was control
    table = user_table(collect(recs, _cfg()))
    assert table.loc[0, "arm"] == "control" and table.loc[0, "multi_arm"]
    assert table["multi_arm"].sum() == 1 and table.loc[0, "exposures"] == 2
    summary = build_report(recs, _cfg(), tmp_path).summary
    assert summary["multi_arm_users"] == 1 and summary["multi_arm_share"] == pytest.approx(0.02)
    assert summary["multi_arm_flag"]


def test_malformed_records_are_skipped_and_counted() -> None:
    good = _exposure("ok", 1, T0, "control", [1, 2, 3])
    no_user = _engage("click", 1, 2, T0 + 1, "ok")
    del no_user["user_id"]
    recs = [good, no_user, "not a record", None,
            _engage("click", 1, 2, T0 + 2, "unknown-request"),  # not attributed, not an error
            _exposure("bad-items", 2, T0, "control", "1,2,3"),  # type: ignore[arg-type]
            _exposure("bad-arm", 3, T0, "ghost", [1]),
            _exposure("bad-item", 4, T0, "control", [1, "x"]),
            _exposure("ok", 1, T0 + 5, "control", [9]),  # a replayed request id
            {**_engage("play", 1, 2, T0 + 3, "ok", watch=0.5), "watch_fraction": 2.0},
            {**_engage("click", 1, 2, T0 + 4, "ok"), "ts_ms": "yesterday"},
            _exposure("other", 5, T0, "whatever", "junk", experiment="another_experiment"),
            {"type": "rating", "user_id": 1, "item_id": 2, "value": 4.0, "ts_ms": T0},
            _engage("click", 1, 3, T0 + 9, "ok")]
    data = collect(recs, _cfg())
    assert data.skipped == {
        "click: missing or bad user_id": 1, "not a dict": 2, "exposure: items not a list": 1,
        "exposure: unknown arm": 1, "exposure: missing or bad item_id": 1,
        "exposure: duplicate request_id": 1, "play: missing or bad watch_fraction": 1,
        "click: missing or bad ts_ms": 1}
    assert data.exposures["request_id"].tolist() == ["ok"]
    assert data.engagement["item_id"].tolist() == [3]
    row = user_table(data).loc[1]
    assert (row.exposures, row.clicks, row.pre) == (1, 1, 0)


def test_report_on_a_log_of_bad_records_only_does_not_raise(tmp_path: Path) -> None:
    report = build_report([{"type": "click"}, 7], _cfg(), tmp_path)
    assert report.summary["skipped"] == {"click: missing or bad user_id": 1, "not a dict": 1}
    assert report.summary["decision"] == "keep running" and report.path.exists()


def _interleave_records(seed: int, n_users: int, p_a: float, p_b: float) -> list[dict]:
    rng = np.random.default_rng(seed)
    out: list[dict] = []
    for user in range(n_users):
        for e in range(1 + rng.poisson(2)):
            ts, rid = T0 + user * 1000 + e * HOUR_MS, f"i{user}-{e}"
            items = rng.choice(1000, 8, replace=False).tolist()
            teams = rng.permutation(["control"] * 4 + ["ease_only"] * 4).tolist()
            out.append(_exposure(rid, user, ts, INTERLEAVED, items, teams))
            for slot, team in enumerate(teams):
                if rng.random() < (p_a if team == "control" else p_b):
                    out.append(_engage("click", user, items[slot], ts + 10, rid))
                    out.append(_engage("play", user, items[slot], ts + 20, rid, watch=0.8))
    return out


def test_interleave_credits_slots_once_and_finds_the_better_arm(tmp_path: Path) -> None:
    cfg = _cfg(ExperimentKind.interleave, ("control", "ease_only"))
    recs = _interleave_records(seed=4, n_users=600, p_a=0.12, p_b=0.06)
    data = collect(recs, cfg)
    assert data.skipped == {}
    credit = interleave_credit(data)
    plays = data.engagement.query("type == 'play' and team == 'control'")
    assert credit["credit_a"].sum() == len(plays)  # a click and a play of a slot: once
    pref = preference(credit["credit_a"].to_numpy(), credit["credit_b"].to_numpy())
    assert pref.delta > 0 and pref.ci_low > 0 and pref.wins > pref.losses
    report = build_report(recs, cfg, tmp_path)
    assert report.summary["ci"][0] > 0 and report.summary["sign_p"] < 0.01
    assert report.summary["click_share"]["control"] > 0.6
    assert report.summary["decision"] == "may stop: control preferred"
    assert {p.name for p in report.plots} == {"exp_preference.png", "exp_users.png"}
    assert all(p.exists() for p in report.plots) and "`ease_only`" in report.markdown


def test_interleave_teams_logged_as_indices_and_bad_teams_are_skipped() -> None:
    cfg = _cfg(ExperimentKind.interleave, ("control", "ease_only"))
    recs = [_exposure("a", 1, T0, INTERLEAVED, [7, 8], teams=[1, 0]),
            _exposure("b", 2, T0, INTERLEAVED, [7, 8], teams=["control"]),
            _exposure("c", 3, T0, "control", [7, 8], teams=["control", "ease_only"]),
            _engage("click", 1, 7, T0 + 1, "a")]
    data = collect(recs, cfg)
    assert data.skipped == {"exposure: bad teams": 1, "exposure: unknown arm": 1}
    assert data.engagement["team"].tolist() == ["ease_only"]
    assert interleave_credit(data).loc[1].tolist() == [0, 1]


def test_the_pre_period_counts_exposures_and_engagement_before_the_experiment() -> None:
    """CUPED's covariate is the metric itself before the user's first exposure in the
    experiment: exposures outside it (no experiment, or another one) and the engagement then."""
    from recsys.experiments.pre_period import covariate

    before = [_exposure("p1", 1, 100, "x", [5, 6], experiment="other"),
              {**_exposure("p2", 1, 200, "x", [7]), "experiments": []},
              _engage("play", 1, 5, 150, "p1", watch=0.9), _engage("click", 1, 7, 250, "p2"),
              _exposure("p3", 2, 100, "x", [5], experiment="other")]
    during = [_exposure("r1", 1, 1_000, "control", [8, 9]),
              _exposure("r2", 2, 1_000, "treat", [8]),
              _exposure("late", 1, 2_000, "x", [5], experiment="other"),  # after: not pre
              _engage("play", 1, 8, 1_100, "r1", watch=0.5)]
    data = collect(before + during, _cfg())
    table = user_table(data)
    assert table.loc[1, ["pre_exposures", "pre_plays", "pre_clicks", "pre_completes"]
                     ].tolist() == [2, 1, 1, 1]
    assert table.loc[2, ["pre_exposures", "pre_plays"]].tolist() == [1, 0]
    assert table.loc[1, "plays"] == 1 and table.loc[1, "exposures"] == 1  # not the pre ones
    x = covariate(table, "plays", "exposures")  # plays - (1 / 3) * exposures, per user
    np.testing.assert_allclose(x, [1 - 2 / 3, 0 - 1 / 3])
