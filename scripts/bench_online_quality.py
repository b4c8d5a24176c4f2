"""Online replay: the serving request path's quality on the held-out split, against the same
path with the train/serve skew the positives view removed.

    python scripts/bench_online_quality.py [--artefacts outputs/artefacts] [--users N]

The ranker job's offline figures score candidate lists built in batch; this replays held-out
users through ``RequestPath.recommend_sync`` (home surface, ranker in-process, filters on,
rerank rules neutral so the ranking itself is measured) and scores its top 10 against each
user's held-out positives, as the protocol does (rating >= the bundle's threshold, titles
already seen excluded). Two rows, same run, same users:

* ``positives_view``: sources fitted on positives score from the titles the user rated at or
  above the threshold (what their training lists did: ``CandidateGenerator.view``);
* ``whole_history`` (baseline): every event, as serving did before, so co-watch and content
  answered lists the ranker never trained on.

``--fresh-shares 0.0 0.1`` adds one row per value with the served rerank (``serve.rerank``'s
genre quota and freshness rules, positives view), so the freshness share's cost in accuracy is
measured on the same users.

The artefacts must come from ``python train.py experiment=two_tower_small`` (the split is
rebuilt from the run's data, split and seed). Writes ``benchmarks/online_quality.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def replay(pipeline, users: np.ndarray, data, k: int) -> dict[str, float]:
    from recsys.eval.metrics import ranking_metrics
    from recsys.serving.request_path import Request

    top = np.full((len(users), k), -1, np.int64)
    for row, user in enumerate(users):
        result = pipeline.recommend_sync(Request(user_id=int(pipeline.bundle.user_ids[user]),
                                                 n=k))
        idx = [pipeline.item_index[r.item_id] for r in result.items]
        top[row, :len(idx)] = idx
    metrics = ranking_metrics(top, data.test[users], [k], data.item_popularity())
    keep = ("ndcg", "recall", "hitrate", "coverage", "novelty")
    return {name: float(np.mean(value)) for name, value in metrics.items()
            if name.split("@")[0] in keep}


def trained_bundle(experiment: str, overrides: list[str], artefacts: Path):
    """The experiment's config, its split (rebuilt from its data, split and seed) and the
    latest bundle under ``artefacts``, which must have been trained on that data:
    (cfg, split, data, bundle)."""
    from omegaconf import OmegaConf

    from recsys.config import compose_config
    from recsys.data import load_dataset
    from recsys.eval.protocol import prepare
    from recsys.serving.artefacts import ArtefactStore
    from recsys.serving.bundle import load_bundle

    cfg = compose_config([f"experiment={experiment}", *overrides])
    dataset = load_dataset(**OmegaConf.to_container(cfg.data, resolve=True))
    split, data = prepare(dataset, cfg.split.kind, cfg.split.fraction, cfg.split.seed,
                          cfg.eval.positive_threshold)
    bundle = load_bundle(*ArtefactStore(artefacts).resolve("latest"))
    if len(bundle.user_ids) != dataset.n_users or len(bundle.item_ids) != dataset.n_items:
        sys.exit(f"{artefacts} was not trained on experiment={experiment}'s data")
    return cfg, split, data, bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artefacts", type=Path, default=REPO / "outputs" / "artefacts")
    parser.add_argument("--experiment", default="two_tower_small")
    parser.add_argument("--users", type=int, default=0,
                        help="held-out users replayed (0 = every one)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks")
    parser.add_argument("--fresh-shares", type=float, nargs="*", default=[],
                        help="also replay with the served rerank at these freshness shares")
    args = parser.parse_args()
    from dataclasses import replace

    from omegaconf import OmegaConf

    from recsys.serving.rankers import OnnxRanker
    from recsys.serving.request_path import RequestPath
    from recsys.serving.settings import RerankConfig, ServeConfig
    from recsys.serving.state import InMemoryUserStore

    cfg, _, data, bundle = trained_bundle(args.experiment, [], args.artefacts)
    users = np.random.default_rng(0).permutation(data.users)[: args.users or None]
    threshold = cfg.eval.positive_threshold
    served = OmegaConf.to_object(cfg.serve)
    neutral = replace(served, rerank=RerankConfig(max_genre_share=1.0, fresh_share=0.0))
    ranker = OnnxRanker(bundle.ranker_dir / "model.onnx")
    report = {"artefact_version": bundle.version, "experiment": args.experiment,
              "users": int(len(users)), "positive_threshold": threshold, "rows": {}}
    runs: list[tuple[str, float | None, ServeConfig]] = [
        ("positives_view", threshold, neutral), ("whole_history", None, neutral),
        *((f"served rerank, fresh_share={share}", threshold,
           replace(served, rerank=replace(served.rerank, fresh_share=share)))
          for share in args.fresh_shares)]
    store = InMemoryUserStore.from_events(bundle.events, bundle.items)
    for name, view_threshold, settings in runs:
        bundle.generator.positive_threshold = view_threshold
        pipeline = RequestPath(bundle, store, ranker, settings)
        report["rows"][name] = replay(pipeline, users, data, 10)
        print(name, report["rows"][name], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "online_quality.json").write_text(json.dumps(report, indent=2))
    lines = ["# Online replay quality", "",
             f"Artefact version {report['artefact_version']} ({args.experiment}); "
             f"{report['users']} held-out users through the serving request path (home, ranker "
             "in-process, filters on, rerank neutral), top 10 against held-out positives "
             f"(rating >= {threshold}). Produced by `python scripts/bench_online_quality.py`.",
             "", "| sources score from | " + " | ".join(
                 next(iter(report["rows"].values()))) + " |",
             "|---|" + "---|" * len(next(iter(report["rows"].values())))]
    for name, metrics in report["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in metrics.values()) + " |")
    (args.out / "online_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
