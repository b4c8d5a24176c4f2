"""serve.topology=fused: the router replica runs the pipeline itself (one Ray Serve hop less),
on the real Ray Serve; same API, same answers as the split stack."""


import httpx
import pytest

from recsys import RecsysError
from tests.integration.conftest import compose_config

pytestmark = pytest.mark.integration


def test_fused_stack_serves_the_same_api_from_one_deployment(served_artefacts):
    from ray import serve

    from serve.stack import running_stack

    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.port=0",
                          "serve.ranker=none", "serve.topology=fused"])
    with running_stack(cfg.serve) as running, httpx.Client(base_url=running.url,
                                                           timeout=30) as client:
        deployments = serve.status().applications["recsys"].deployments
        assert list(deployments) == ["Router"]
        home = client.get("/v1/recommendations", params={"user_id": 1, "n": 5})
        assert home.status_code == 200, home.text
        body = home.json()
        assert len(body["items"]) == 5 and all(i["reason"] for i in body["items"])
        assert body["version"] == running.version and body["degraded"] == ["rank"]
        bad = client.get("/v1/recommendations", params={"user_id": 1, "surface": "search"})
        assert bad.status_code == 422 and "query" in bad.text
        assert client.get("/v1/items/1/similar", params={"n": 3}).status_code == 200
        assert client.get("/readyz").status_code == 503  # no ranker configured: not live
        assert 'recsys_stage_seconds_count{stage="candidates"}' in client.get("/metrics").text


def test_an_unknown_topology_is_refused_with_a_sentence(served_artefacts):
    from serve.stack import running_stack

    cfg = compose_config([f"serve.artefacts_root={served_artefacts}", "serve.topology=star"])
    with pytest.raises(RecsysError, match="serve.topology must be one of split, fused"), \
            running_stack(cfg.serve):
        pass
