"""Every config option composes and instantiates; bad command lines fail in one line."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recsys.config import compose_config
from recsys.config.builders import build_sources
from recsys.config.jobs import two_stage_job
from recsys.config.overrides import expand_sweeps, user_overrides

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
GROUPS = sorted(p.name for p in CONFIGS.iterdir() if p.is_dir())
# groups whose node becomes the library's own settings object (one definition per knob)
TYPED = {"data": "DataConfig", "split": "SplitConfig", "trainer": "TrainerConfig",
         "logger": "LoggerConfig", "serve": "ServeConfig", "ranker": "RankerConfig"}


def _compose(overrides):
    return compose_config(overrides)


@pytest.mark.parametrize(
    "group,option",
    [(g, p.stem) for g in GROUPS for p in sorted((CONFIGS / g).glob("*.yaml"))],
)
def test_every_option_composes(group, option):
    """Composes, resolves and instantiates: typed groups become their dataclass, models and
    indexes their object, candidates their sources, and a config with a ranker the typed
    two-stage job."""
    cfg = _compose([f"{group}={option}"])
    OmegaConf.to_container(cfg, resolve=True)
    for name, schema in TYPED.items():
        if cfg.get(name) is not None:
            assert type(OmegaConf.to_object(cfg[name])).__name__.endswith(schema), name
    model = instantiate(cfg.model)
    assert hasattr(model, "fit") and hasattr(model, "score")
    assert instantiate(cfg.index).factory == cfg.index.factory
    if cfg.candidates is not None:
        sources = build_sources(cfg)
        assert sources and all(hasattr(s, "candidates") and q > 0 for s, q in sources.values())
    if cfg.ranker is not None and cfg.candidates is not None:
        job = two_stage_job(cfg)
        assert job.quotas and job.ranker.stacking.overfetch == cfg.candidates.overfetch


def test_the_readme_lists_every_config_group():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| group | options |"):]
    table = table[:table.index("\n\n")]
    listed = {line.split("|")[1].strip(" `") for line in table.splitlines()[2:]}
    assert listed == set(GROUPS)
    for group in GROUPS:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{group}`"))
        assert all(f"`{p.stem}`" in row for p in (CONFIGS / group).glob("*.yaml")), group


@pytest.mark.parametrize("override,valid", [
    ("trainer.kind=rey", "local, ray"),
    ("split.kind=randm", "random, temporal, leave_last, last_days"),
    ("ranker.export.instance_kind=tpu", "cpu, gpu"), ("model=als", None),
    ("ranker.embedding_optimizer=adamw", "adagrad, rowwise_adagrad, sgd, adam"),
    ("index.metric=cos", "cosine, ip, l2"), ("logger.mode=offlin", "offline, online, disabled"),
])
def test_a_mistyped_choice_fails_at_composition_listing_the_valid_values(override, valid):
    base = ["candidates=default", "ranker=two_tower"]
    if valid is None:  # a model config with a choice of its own
        with pytest.raises(Exception) as err:
            _compose([*base, override, "model.backend=cuda"])
        assert "expected one of [implicit, torch]" in str(err.value.__cause__)
        return
    with pytest.raises(Exception) as err:
        _compose([*base, override])
    message = f"{err.value} {err.value.__cause__}"  # Hydra wraps OmegaConf's error
    assert f"expected one of [{valid}]" in message, message


def test_benchmark_experiment_fixes_the_protocol():
    cfg = _compose(["experiment=ml1m_benchmark"])
    assert (cfg.data.name, cfg.model.l2, cfg.split.kind, cfg.split.fraction, cfg.split.seed,
            cfg.eval.positive_threshold) == ("ml-1m", 500.0, "random", 0.2, 42, 4.0)


def test_schema_rejects_unknown_keys_and_bad_types():
    with pytest.raises(Exception, match="nope"):
        _compose(["data.nope=1"])
    with pytest.raises(Exception, match="abc"):
        _compose(["model.l2=abc"])


def test_user_overrides_and_sweep_expansion():
    argv = ["-m", "model=ease,popular", "hydra.verbose=true", "--cfg", "job", "data=ml-100k"]
    assert user_overrides(argv) == ["model=ease,popular", "data=ml-100k"]
    assert user_overrides(["--help"]) is None
    assert expand_sweeps(["model=ease,popular", "data=a"]) == [
        ["model=ease", "data=a"], ["model=popular", "data=a"]]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["data=nope"],
         "unknown data 'nope' (choose one of: events, ml-100k, ml-1m, ml-latest-small"),
        (["data.nope=1"], "unknown config key 'data.nope' (valid keys in data: name, root)"),
        (["-m", "model=ease,nope"], "unknown model 'nope' (choose one of: als, content,"),
        (["trainr.device=cpu"], "unknown config key 'trainr.device' (valid keys: data, model"),
        (["model.l2=abc"], "could not be converted to Float"),
        (["data=ml-100k", "data.root=/does/not/exist"], "dataset folder not found"),
        (["data=ml-1m", "data.root=null"], "only ml-latest-small is bundled"),
    ],
)
def test_bad_command_lines_fail_with_one_line(args, expected):
    proc = subprocess.run([sys.executable, "train.py", *args, "logger=none"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_config_becomes_ray_serve_deployment_options():
    """What a platform team sets in configs/serve reaches Ray Serve: replicas or autoscaling,
    queue bounds, CPUs, and the per-request access log (on for the router, off for the
    internal pipeline hop by default)."""
    from serve.app import deployment_options

    cfg = _compose(["serve.pipeline.autoscaling.enabled=true",
                    "serve.pipeline.autoscaling.max_replicas=4",
                    "serve.router.max_queued_requests=7"]).serve
    router, pipeline = deployment_options(cfg.router), deployment_options(cfg.pipeline)
    assert router["num_replicas"] == 1 and router["max_queued_requests"] == 7
    assert router["logging_config"] == {"enable_access_log": True}
    assert pipeline["logging_config"] == {"enable_access_log": False}
    assert "num_replicas" not in pipeline
    assert pipeline["autoscaling_config"]["max_replicas"] == 4
    assert pipeline["ray_actor_options"] == {"num_cpus": 1.0}
    assert cfg.topology == "split" and cfg.throughput_optimized is True


def test_fast_serve_preset_is_the_default_plus_its_shape():
    fast, default = _compose(["serve=fast"]).serve, _compose([]).serve
    assert (fast.topology, fast.ingress) == ("fused", "haproxy")
    assert fast.pipeline.num_replicas == 2 and fast.pipeline.num_cpus == 0.5
    assert fast.rerank == default.rerank and fast.rank_deadline_ms == default.rank_deadline_ms
    assert (default.topology, default.ingress) == ("split", "proxy")


@pytest.mark.parametrize("experiment", ["two_tower_small", "two_tower_ml1m"])
def test_shipped_ranker_export_lets_triton_merge_requests(experiment):
    """Triton merges requests only while their rows fit max_batch_size together: at the former
    1024, two requests of the default ~800 candidates never merged (benchmarks/serving.md
    showed 700 rows per execution at every load)."""
    from recsys.train.publish import check_export, request_rows_bound

    job = two_stage_job(_compose([f"experiment={experiment}"]))
    check_export(job.quotas, job.ranker.export)
    rows = request_rows_bound(job.quotas, job.ranker.export)
    assert rows >= 500  # the bound counts every source, two-tower retrieval included
    assert job.ranker.export.max_batch_size >= 4 * rows
    assert all(size >= rows for size in job.ranker.export.preferred_batch_sizes)


def test_ranker_job_refuses_a_triton_batch_below_one_request_before_any_work():
    from recsys import RecsysError
    from recsys.train.two_stage import train_ranker

    cfg = _compose(["experiment=two_tower_small", "ranker.export.max_batch_size=256",
                    "data.root=/nonexistent"])  # reading data first would fail differently
    with pytest.raises(RecsysError, match=r"max_batch_size=256 is below the 800 rows one "
                                          r"request can carry .* at least 800"):
        train_ranker(two_stage_job(cfg), Path("/nonexistent/run"))


def test_triton_warmup_batches_are_whole_requests_capped_at_the_batch_limit():
    from recsys import RecsysError
    from recsys.train.publish import check_export, warmup_batch_sizes

    def sizes(*overrides):
        job = two_stage_job(_compose(["experiment=two_tower_small", *overrides]))
        return warmup_batch_sizes(job.quotas, job.ranker.export)

    assert sizes() == [800, 3200]  # [1, 4] requests of 800 rows
    assert sizes("ranker.export.warmup_requests=[2,100]") == [1600, 8192]
    assert sizes("ranker.export.warmup_requests=[]") == []
    job = two_stage_job(_compose(["experiment=two_tower_small",
                                  "ranker.export.warmup_requests=[0]"]))
    with pytest.raises(RecsysError, match=r"warmup_requests=\[0\]: each entry"):
        check_export(job.quotas, job.ranker.export)


def test_serve_cli_refuses_a_mistyped_choice_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "serve", "serve.topology=star"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: Error merging override serve.topology=star Invalid value 'star', expected one "
        "of [split, fused]"]
