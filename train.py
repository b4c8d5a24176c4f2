"""Train and evaluate one model: ``python train.py data=ml-latest-small model=ease``.

With a ranker configured (``experiment=two_tower_ml1m``, or ``candidates=default
ranker=two_tower``) the job is the two-stage pipeline instead: see ``recsys.train.two_stage``;
``trainer=ray trainer.num_workers=2`` trains it on Ray Train.

Loads the dataset, splits it, fits the model, evaluates it (with MostPopular as the floor in the
same run), writes the model, id indices and metrics.json into the Hydra run directory, logs to
wandb (offline by default) and prints the metrics and a sample user's top-N. Sweeps:
``python train.py -m model=ease,popular data=ml-latest-small,ml-100k``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from recsys import RecsysError
from recsys.candidates.base import training_matrix
from recsys.candidates.popular import MostPopular
from recsys.config import register_configs
from recsys.config.overrides import check_overrides
from recsys.data import load_dataset
from recsys.eval.protocol import evaluate, prepare
from recsys.eval.report import metrics_table, sample_recommendations
from recsys.runtime.quiet import quiet_libraries
from recsys.tracking import start_tracker

log = logging.getLogger("train")
CONFIG_DIR = str(Path(__file__).parent / "configs")


def train(cfg: DictConfig, run_dir: Path) -> dict[str, dict[str, float]]:
    """The whole offline job; returns {model name: metrics}. Tests call this directly."""
    data_params = OmegaConf.to_container(cfg.data, resolve=True)
    dataset = load_dataset(**data_params)
    split, data = prepare(dataset, cfg.split.kind, cfg.split.fraction, cfg.split.seed,
                          cfg.eval.positive_threshold, cfg.split.days)

    log.info("fitting %s", cfg.model._target_)
    model = instantiate(cfg.model)
    model = model.fit(training_matrix(model, data.train, data.seen), events=split.train,
                      items=dataset.items_by_index())
    evaluate_kw = dict(ks=list(cfg.eval.ks), batch_size=cfg.trainer.eval_batch_size,
                       progress=cfg.trainer.progress)
    results = {model.name: evaluate(model, data, **evaluate_kw)}
    if cfg.eval.compare_popular and model.name != MostPopular.name:
        results[MostPopular.name] = evaluate(MostPopular().fit(data.train), data, **evaluate_kw)

    model_dir = run_dir / "model"
    model.save(model_dir)
    dataset.save_indices(model_dir)
    (run_dir / "metrics.json").write_text(json.dumps(results, indent=2))

    tracker = start_tracker(cfg.logger.enabled, cfg.logger.mode, cfg.logger.project,
                            OmegaConf.to_container(cfg, resolve=True), run_dir,
                            name=f"{model.name}-{dataset.name}", tags=list(cfg.logger.tags))
    tracker.log_metrics({f"{name}/{k}": v for name, m in results.items() for k, v in m.items()})
    tracker.log_artifact(model_dir, name=f"{model.name}-{dataset.name}", kind="model")
    tracker.finish()

    print(f"\n{dataset.summary()}\n{split.summary()}\n")
    print(metrics_table(results))
    print("\n" + sample_recommendations(model, dataset, data, cfg.output.sample_user,
                                        cfg.output.top_n))
    print(f"\nartefacts: {run_dir}")
    return results


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    quiet_libraries(verbose=bool(hydra_cfg.verbose))  # after Hydra has set up logging
    try:
        run_dir = Path(hydra_cfg.runtime.output_dir)
        if cfg.ranker is not None:
            from recsys.config.jobs import two_stage_job
            from recsys.train.two_stage import train_ranker

            train_ranker(two_stage_job(cfg, verbose=bool(hydra_cfg.verbose)), run_dir)
        else:
            train(cfg, run_dir)
    except RecsysError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    register_configs()
    check_overrides(CONFIG_DIR, "config", sys.argv[1:])
    hydra_main()
