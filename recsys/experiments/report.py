"""An experiment's report from the event log: a markdown file, its figures and a JSON summary.

A/B: the arms' metrics and latency guardrail, every arm against the control (fixed horizon,
with relative lifts), the checks that void a result (sample-ratio mismatch, users in several
arms), CUPED on the primary metric, and an always-valid sequential test that says whether the
experiment may stop. Interleave: the per-user preference (wins, ties, losses, delta with a
bootstrap CI, sign test) and the click shares.

Looks: the data as it stood at the end of each ``period_s`` from the first exposure (the last:
all of it). Each look recomputes the user table (users' counts keep growing, so looks are not
batches of frozen users as ``msprt_sequence`` assumes); the always-valid p is the running
minimum of ``msprt`` over the looks, with one ``tau2`` (sequential's default, from all data);
with a planned horizon the group-sequential test decides (``sequential_report``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from recsys.experiments import plots, sequential_report
from recsys.experiments.analysis import (
    METRIC_PARTS,
    ExperimentData,
    collect,
    compare,
    interleave_credit,
    linearised,
    user_table,
)
from recsys.experiments.interleave import preference, user_preference
from recsys.experiments.plots import (
    duration,
    fmt,
    fmt_ci,
    fmt_p,
    fmt_pct,
    jsonable,
    md_table,
    new_band,
    push,
    spec_of,
)
from recsys.experiments.pre_period import covariate
from recsys.experiments.sequential import DEFAULT_TAU_SD
from recsys.experiments.sequential_report import mixing_variance
from recsys.experiments.settings import ExperimentConfig, ExperimentKind
from recsys.experiments.stats import (
    confidence_sequence,
    cuped_difference,
    msprt,
    srm_test,
    users_for_power,
)

# A look counts once each arm has this many users: with fewer, the per-user variance comes
# from a handful of users and the mSPRT's z is not normal (every sequential test's burn-in)
MIN_LOOK_USERS = 100
MAX_LOOKS = 100  # more periods than this are merged (the report must stay seconds, not minutes)
SRM_ALPHA = 1e-3  # Fabijan et al. 2019: below this the split is broken, not unlucky
MULTI_ARM_SHARE = 0.01  # users seen in more than one arm, above this share: flagged
DAY_MS = 86_400_000
LABELS = {"ctr": "CTR", "play_rate": "play rate", "completion_rate": "completion rate",
          "watch_time": "watch time / user (s)"}


@dataclass
class Report:
    markdown: str
    path: Path  # the markdown file
    plots: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)  # JSON-able; nan written as None


def _looks(data: ExperimentData, period_s: float) -> tuple[np.ndarray, float]:
    """The looks' end times (ms) and the period used (widened to at most MAX_LOOKS)."""
    if data.exposures.empty:
        return np.zeros(0, dtype=np.int64), period_s
    start = int(data.exposures["ts_ms"].min())
    now = max(int(data.exposures["ts_ms"].max()), int(data.engagement["ts_ms"].max())
              if len(data.engagement) else start)
    period_ms = max(1, round(period_s * 1000))
    if math.ceil((now - start) / period_ms) > MAX_LOOKS:
        period_ms = math.ceil((now - start) / MAX_LOOKS)
    n = max(1, math.ceil((now - start) / period_ms))
    return np.minimum(start + period_ms * np.arange(1, n + 1), now), period_ms / 1000


def _power(sd: float, effect: float, alpha: float, arms: int) -> float:
    """Users a fixed-horizon test needs for 80 % power at ``effect``; nan when undefined."""
    if not (math.isfinite(sd) and sd > 0 and math.isfinite(effect)):
        return math.nan
    return users_for_power(sd, effect, alpha, 0.8, arms)


def build_report(records: Iterable[dict], cfg: ExperimentConfig, out_dir: Path,
                 period_s: float = 86400, weights: Sequence[float] | None = None,
                 title: str | None = None, now_ms: int | None = None) -> Report:
    """Collect ``records`` for ``cfg``, write ``<out_dir>/<name>.md`` and its PNGs.

    ``weights``: the split the SRM test expects (None: the arms' configured weights; pass the
    ramp's actual split when it differs). ``period_s``: the time between the sequential looks.
    ``now_ms``: the report's time (None: the clock), which says which of the group-sequential
    test's looks have passed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = collect(records, cfg)
    ends, period_used = _looks(data, period_s)
    start = int(data.exposures["ts_ms"].min()) if len(ends) else 0
    days = (ends - start) / DAY_MS
    head = [f"# {title or f'Experiment {cfg.name}'}", "",
            f"Experiment `{cfg.name}` ({cfg.kind}), arms: "
            + ", ".join(f"`{a.name}`" for a in cfg.arms) + f" (control `{cfg.arms[0].name}`); "
            f"{len(data.exposures)} exposures over {days[-1] if len(days) else 0:.2f} days, "
            f"{len(ends)} looks every {duration(period_used)}; alpha {cfg.alpha:g}.", ""]
    if cfg.kind == ExperimentKind.interleave:
        body, summary, figs = _interleave(data, ends, days, out_dir)
    else:
        now = round(time.time() * 1000) if now_ms is None else int(now_ms)
        body, summary, figs = _ab(data, ends, days, out_dir, weights,
                                  (round(period_s * 1000), now))
    summary.update(experiment=cfg.name, kind=str(cfg.kind), looks=len(ends),
                   period_s=period_used, skipped=dict(data.skipped))
    lines = head + body + ["## Skipped records", ""] + (md_table(
        ["reason", "records"], sorted(data.skipped.items(), key=lambda kv: -kv[1]))
        if data.skipped else ["None.", ""])
    lines += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figs] + [""]
    markdown = "\n".join(lines)
    path = out_dir / f"{cfg.name}.md"
    path.write_text(markdown)
    summary = jsonable(summary)
    json.dumps(summary, allow_nan=False)  # fail here, not in the caller, if a value slipped
    return Report(markdown, path, figs, summary)


def _ab(data: ExperimentData, ends: np.ndarray, days: np.ndarray, out_dir: Path,
        weights: Sequence[float] | None, clock: tuple[int, int]
        ) -> tuple[list[str], dict[str, Any], list[Path]]:
    cfg, alpha, primary = data.config, data.config.alpha, data.config.primary_metric
    names = [a.name for a in cfg.arms]
    control, treatments = names[0], names[1:]
    table = user_table(data)
    est = compare(table, cfg)
    by_arm = table.groupby("arm")["exposures"].agg(["size", "sum"]).reindex(names, fill_value=0)
    users, exposures = by_arm["size"].astype(int).to_dict(), by_arm["sum"].astype(int).to_dict()
    # each arm's metric: compare's sum(num) / sum(den) per arm, or its per-user mean
    values = {m: {control: next(iter(est[m].values())).control if treatments else math.nan,
                  **{a: e.treatment for a, e in est[m].items()}} for m in METRIC_PARTS}
    p99 = data.exposures.groupby("arm")["latency_ms"].quantile(0.99)
    latency = {arm: float(p99.get(arm, math.nan)) for arm in names}
    weights = [a.weight for a in cfg.arms] if weights is None else list(weights)
    srm_p = srm_test([users[a] for a in names], weights)
    multi = int(table["multi_arm"].sum())
    share = multi / len(table) if len(table) else 0.0
    # primary metric per user, linearised for a ratio metric (analysis.linearised)
    y, pre = linearised(table, primary).to_numpy(), covariate(table, *METRIC_PARTS[primary])
    mask = {arm: (table["arm"] == arm).to_numpy() for arm in names}
    tau2 = {arm: mixing_variance(y[mask[control]], y[mask[arm]]) for arm in treatments}
    cuped = {arm: cuped_difference(y[mask[control]], pre[mask[control]], y[mask[arm]],
                                   pre[mask[arm]], alpha) for arm in treatments}
    bands = {m: {arm: new_band() for arm in treatments} for m in METRIC_PARTS}
    cs_band = {arm: new_band() for arm in treatments}
    seq = {arm: [] for arm in treatments}
    users_t = {arm: [] for arm in names}
    tables: dict[int, pd.DataFrame] = {}

    def look_table(end: int) -> pd.DataFrame:  # the user table at end, built once per end
        return tables[end] if end in tables else tables.setdefault(end, user_table(data, end))

    for end in ends:  # one user table per look; see the module docstring
        look = look_table(int(end))
        look_est, yk = compare(look, cfg), linearised(look, primary).to_numpy()
        arms_k = look["arm"].to_numpy()
        for arm in names:
            users_t[arm].append(int((arms_k == arm).sum()))
        for arm in treatments:
            for m in METRIC_PARTS:
                e = look_est[m][arm]
                push(bands[m][arm], e.diff, e.ci_low, e.ci_high)
            c, t = yk[arms_k == control], yk[arms_k == arm]
            burn_in = min(len(c), len(t)) < MIN_LOOK_USERS  # the normal approximation's
            seq[arm].append(1.0 if burn_in else msprt(c, t, tau2[arm]))
            low, high = confidence_sequence(c, t, alpha, tau2[arm])
            push(cs_band[arm], (low + high) / 2, low, high)
    seq_p = {arm: float(np.minimum.accumulate(seq[arm])[-1]) if seq[arm] else 1.0
             for arm in treatments}
    cs = {arm: confidence_sequence(y[mask[control]], y[mask[arm]], alpha, tau2[arm])
          for arm in treatments}
    power = {arm: _power(math.sqrt(tau2[arm]) / DEFAULT_TAU_SD if tau2[arm] else math.nan,
                         est[primary][arm].diff, alpha, len(names)) for arm in treatments}
    horizon, gst = sequential_report.tests(data, len(ends) > 0, *clock, look_table, MIN_LOOK_USERS)
    decision, rule = sequential_report.decision(gst, seq_p, alpha)
    ci, spec = f"{100 * (1 - alpha):g} % CI", spec_of(primary)
    lines = [f"**Decision: {decision}** ({rule} on {LABELS[primary]})", ""]
    if srm_p < SRM_ALPHA:
        lines += [f"**Sample-ratio mismatch (p = {fmt_p(srm_p)}): the split is broken; the "
                  "estimates below are void until it is explained.**", ""]
    lines += ["## Arms", ""] + md_table(
        ["arm", "users", "exposures", *(LABELS[m] for m in METRIC_PARTS), "latency p99 (ms)"],
        [[f"`{a}`", users[a], exposures[a], *(fmt(values[m][a], spec_of(m)) for m in METRIC_PARTS),
          fmt(latency[a], ".1f")] for a in names])
    lines += [f"## Against the control `{control}` (fixed horizon)", ""] + md_table(
        ["metric", "arm", "difference", ci, "relative lift", f"lift {ci}", "p"],
        [[LABELS[m], f"`{a}`", fmt(e.diff, spec_of(m)), fmt_ci(e.ci_low, e.ci_high, spec_of(m)),
          fmt_pct(e.rel_lift), fmt_ci(e.rel_ci_low, e.rel_ci_high, "%"), fmt_p(e.p_value)]
         for m in METRIC_PARTS for a, e in est[m].items()])
    expected = np.asarray(weights, float) / sum(weights) * len(table)
    lines += ["## Checks", "", f"Sample-ratio mismatch: chi-square p = {fmt_p(srm_p)} "
              f"({'FLAGGED' if srm_p < SRM_ALPHA else 'ok'}, flagged below {SRM_ALPHA:g})."]
    lines += [""] + md_table(["arm", "users", "expected"], [
        [f"`{a}`", users[a], f"{x:.0f}"] for a, x in zip(names, expected, strict=True)])
    lines += [f"Users seen in more than one arm: {multi} ({100 * share:.2f} %, "
              f"{'FLAGGED' if share > MULTI_ARM_SHARE else 'ok'}, flagged above "
              f"{100 * MULTI_ARM_SHARE:g} %); each is kept under the arm of their first "
              "exposure.", ""]
    lines += [f"## CUPED on {LABELS[primary]}", "",
              "Covariate: the same metric in the user's pre-period (before their first "
              "exposure in the experiment; `recsys/experiments/pre_period.py`), linearised "
              "for a ratio; the metric is linearised per arm (`analysis.linearised`), so the "
              "adjusted difference estimates the ratio's difference.", ""] + md_table(
        ["arm", "difference", ci, "p", "variance reduction"],
        [[f"`{a}`", fmt(e.diff, spec), fmt_ci(e.ci_low, e.ci_high, spec), fmt_p(e.p_value),
          f"{100 * r:.1f} %"] for a, (e, r) in cuped.items()])
    lines += sequential_report.section(LABELS[primary], ci, spec, len(ends), horizon, clock[0],
                                       gst, seq_p, cs, power, cfg)
    figs = [plots.band_over_time(
        days, bands[m], out_dir / f"{cfg.name}_{m}.png", f"{LABELS[m]}: difference from "
        f"{control} ({ci})", "treatment - control",
        {f"{a} confidence sequence": cs_band[a] for a in treatments} if m == primary else None)
        for m in METRIC_PARTS]
    figs.append(plots.users_over_time(days, users_t, out_dir / f"{cfg.name}_users.png",
                                      f"{cfg.name}: users per arm"))
    summary = {
        "users": users, "exposures": exposures, "metrics": values, "latency_p99_ms": latency,
        "comparisons": {m: {a: vars(e) for a, e in est[m].items()} for m in METRIC_PARTS},
        "p_values": {m: {a: e.p_value for a, e in est[m].items()} for m in METRIC_PARTS},
        "srm_p": srm_p, "srm_flag": srm_p < SRM_ALPHA, "multi_arm_users": multi,
        "multi_arm_share": share, "multi_arm_flag": share > MULTI_ARM_SHARE,
        "primary_metric": primary, "cuped_reduction": {a: r for a, (_, r) in cuped.items()},
        "cuped": {a: vars(e) for a, (e, _) in cuped.items()}, "sequential_p": seq_p,
        "confidence_sequence": {a: list(v) for a, v in cs.items()}, "users_for_power": power,
        "group_sequential": sequential_report.summary(gst), "decision": decision,
        "decided_by": rule}
    return lines, summary, figs


def _interleave(data: ExperimentData, ends: np.ndarray, days: np.ndarray, out_dir: Path
                ) -> tuple[list[str], dict[str, Any], list[Path]]:
    cfg, alpha = data.config, data.config.alpha
    names, ci = [a.name for a in cfg.arms], f"{100 * (1 - alpha):g} % CI"
    credit = interleave_credit(data)
    pref = preference(credit["credit_a"].to_numpy(), credit["credit_b"].to_numpy(), alpha)
    clicks = data.engagement.loc[data.engagement["type"] == "click", "team"].dropna()
    share = {a: float((clicks == a).mean()) if len(clicks) else math.nan for a in names}
    latency = float(data.exposures["latency_ms"].quantile(0.99)) if len(ends) else math.nan
    per_user = user_preference(credit["credit_a"].to_numpy(), credit["credit_b"].to_numpy())
    power = _power(float(per_user.std(ddof=1)) if per_user.size > 1 else math.nan, pref.delta,
                   alpha, arms=1)
    band, users_t, z = new_band(), {"users": []}, float(norm.ppf(1 - alpha / 2))
    for end in ends:  # a normal interval per look: a bootstrap per look would cost seconds
        c = interleave_credit(data, int(end))
        u = user_preference(c["credit_a"].to_numpy(), c["credit_b"].to_numpy())
        half = z * u.std(ddof=1) / math.sqrt(u.size) if u.size > 1 else math.nan
        mean = float(u.mean()) if u.size else math.nan
        push(band, mean, mean - half, mean + half)
        users_t["users"].append(int(u.size))
    decided = pref.sign_p < alpha and (pref.ci_low > 0 or pref.ci_high < 0)
    decision = f"may stop: {names[pref.delta < 0]} preferred" if decided else "keep running"
    lines = [f"**Decision: {decision}** (sign test p < {alpha:g} and the bootstrap CI of the "
             "preference excludes 0; both are fixed-horizon)", "", "## Preference", ""]
    lines += md_table(
        ["exposures", "users", "wins", "ties", "losses", "delta", f"bootstrap {ci}",
         "sign test p", "latency p99 (ms)"],
        [[len(data.exposures), pref.users, pref.wins, pref.ties, pref.losses, fmt(pref.delta),
          fmt_ci(pref.ci_low, pref.ci_high), fmt_p(pref.sign_p), fmt(latency, ".1f")]])
    lines += [f"delta > 0 favours `{names[0]}`, < 0 favours `{names[1]}`; wins are users whose "
              f"credited slots favour `{names[0]}`. Users needed for 80 % power at the "
              f"observed delta: {fmt(power, ',.0f')}.", "", "## Click shares", ""]
    lines += md_table(["arm", "share of credited clicks"],
                      [[f"`{a}`", fmt(100 * share[a], ".1f") + " %"] for a in names])
    figs = [plots.band_over_time(days, {"delta": band}, out_dir / f"{cfg.name}_preference.png",
                                 f"preference for {names[0]} over {names[1]} ({ci})",
                                 "mean per-user preference"),
            plots.users_over_time(days, users_t, out_dir / f"{cfg.name}_users.png",
                                  f"{cfg.name}: users")]
    summary = {"users": pref.users, "exposures": len(data.exposures), "wins": pref.wins,
               "ties": pref.ties, "losses": pref.losses, "delta": pref.delta,
               "ci": [pref.ci_low, pref.ci_high], "sign_p": pref.sign_p, "click_share": share,
               "latency_p99_ms": latency, "users_for_power": power, "decision": decision}
    return lines, summary, figs
