"""One replica's request path over the live store, without Ray: the ranker's item activity
columns and trending read the store (equal to the trained ones after the backfill, moved by
events), and a play reaches the watched filter through the log and the processor."""

import time
import uuid

import numpy as np
import pytest

from recsys.candidates.types import Context, UserHistory
from recsys.events.ingest import Ingest
from recsys.events.log import open_log
from recsys.events.processor import StreamProcessor
from recsys.events.store import open_store
from recsys.serving.artefacts import ArtefactStore
from recsys.serving.bundle import load_bundle
from recsys.serving.stages import ANONYMOUS, Request
from tests.integration.conftest import compose_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live_path(served_artefacts, tmp_path_factory):
    from serve.build import build_request_path
    from serve.stack import live_events, serve_settings

    folder = tmp_path_factory.mktemp("live")
    cfg = serve_settings(compose_config([f"serve.artefacts_root={served_artefacts}",
                                         "serve.ranker=onnx",
                                         f"serve.events.path={folder}"]).serve)
    version, bundle_dir = ArtefactStore(cfg.artefacts_root).resolve("latest")
    with live_events(cfg, bundle_dir) as (cfg, _):
        path = build_request_path(cfg, version, None)
        event_log, store = open_log(cfg.events), open_store(cfg.events)
        yield path, load_bundle(version, bundle_dir), event_log, store, cfg
        path.catalog_sync.stop()
        path.live_titles.stop()


def post(event_log, store, cfg, events):
    Ingest(event_log, cfg.events, lambda i: True, (0.5, 5.0))(events)
    StreamProcessor(event_log, store, cfg.events).drain()


def test_item_activity_columns_from_the_store_equal_the_trained_ones(live_path):
    path, bundle, *_ = live_path
    np.testing.assert_allclose(path.live.item_tables.item_dense, bundle.item_tables.item_dense,
                               atol=1e-5)


def test_plays_move_trending_and_the_activity_columns(live_path):
    path, bundle, event_log, store, cfg = live_path
    trending = path.bundle.generator.sources["trending"].source
    order = np.argsort(-trending.scores())
    quiet = int(order[len(order) // 2])  # a title in the middle of the trained list
    raw = int(path.live.item_ids[quiet])
    before = path.live.item_tables.item_dense[quiet].copy()
    post(event_log, store, cfg, [
        {"event_id": uuid.uuid4().hex, "type": "play", "user_id": 10**9 + u, "item_id": raw,
         "timestamp": time.time(), "watch_fraction": 1.0} for u in range(30)])
    path.live_titles.refresh()
    assert int(np.argmax(trending.scores())) == quiet
    nobody = UserHistory(None, np.empty(0, np.int64))
    assert trending.candidates(nobody, Context(), 5).items[0] == quiet
    features = path.features(Request(user_id=ANONYMOUS + 1, n=5))
    assert quiet in path.candidates(features).merged.items  # the cold-start path has it
    after = path.live.item_tables.item_dense[quiet]
    assert after[0] > before[0] and after[1] > before[1]  # more events, more engaged


def test_a_play_reaches_the_watched_filter_through_the_log(live_path):
    path, _, event_log, store, cfg = live_path
    user = int(path.bundle.user_ids[0])
    shown = [i.item_id for i in path.recommend_sync(Request(user_id=user, n=10)).items]
    post(event_log, store, cfg, [{"event_id": uuid.uuid4().hex, "type": "play",
                                  "user_id": user, "item_id": shown[0],
                                  "timestamp": time.time(), "watch_fraction": 0.9}])
    again = [i.item_id for i in path.recommend_sync(Request(user_id=user, n=10)).items]
    assert shown[0] not in again
