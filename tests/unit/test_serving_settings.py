"""One definition per serving knob: the serving layer's dataclasses are the Hydra schema, the
composed config converts to them once, and a misspelled choice fails at composition."""

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from recsys.config import compose_config
from recsys.serving.settings import (
    Ingress,
    RankerKind,
    RerankConfig,
    ServeConfig,
    Topology,
)
from serve.stack import serve_settings

REPO = Path(__file__).resolve().parents[2]


def test_the_composed_serve_node_converts_once_to_the_dataclass_and_pickles():
    cfg = compose_config(["serve=fast", "serve.rerank.fresh_share=0.25",
                          "+serve.rerank.boost={318: 0.5}"])
    settings = serve_settings(cfg.serve)
    assert isinstance(settings, ServeConfig) and isinstance(settings.rerank, RerankConfig)
    assert settings.topology is Topology.fused and settings.ingress is Ingress.haproxy
    assert settings.ranker is RankerKind.triton and settings.rerank.fresh_share == 0.25
    assert settings.rerank.boost == {318: 0.5}
    assert serve_settings(settings) is settings  # already converted: used as is
    assert pickle.loads(pickle.dumps(settings)) == settings  # what the deployments receive


def test_defaults_are_the_schemas_with_no_other_copy():
    composed = OmegaConf.to_object(compose_config([]).serve)
    assert composed == ServeConfig()  # configs/serve/default.yaml sets nothing of its own
    assert ServeConfig().rerank.fresh_share == RerankConfig().fresh_share == 0.1
    assert Topology.split == "split" and f"{RankerKind.none}" == "none"


@pytest.mark.parametrize(("override", "valid"), [
    ("serve.topology=fuzed", "[split, fused]"),
    ("serve.ingress=nginx", "[proxy, haproxy]"),
    ("serve.ranker=tensorrt", "[triton, onnx, none]"),
])
def test_a_misspelled_choice_fails_at_composition_naming_the_valid_values(override, valid):
    with pytest.raises(Exception) as err:
        compose_config([override])
    text = f"{err.value} {err.value.__cause__}"
    assert f"expected one of {valid}" in text, text


def test_the_serving_layer_imports_no_hydra():
    code = ("import sys; import recsys.serving.settings, recsys.serving.request_path; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('hydra', 'omegaconf')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"
