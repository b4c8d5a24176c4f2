"""Training from the logged events: the log's export read as a dataset (the engagement label,
the catalog with the log's added titles, the window), a time split on the last day, and the
two-stage job trained on it end to end."""

from __future__ import annotations

import numpy as np
import pytest

from recsys import RecsysError
from recsys.config import compose_config
from recsys.config.jobs import two_stage_job
from recsys.data import load_dataset
from recsys.data.movielens import load_movielens
from recsys.data.splits import split_interactions
from recsys.events.export import DAY_MS, export
from recsys.serving.artefacts import ArtefactStore
from recsys.train.two_stage import train_ranker

pytestmark = pytest.mark.integration
START = 1_790_000_000_000 // DAY_MS * DAY_MS


def logged(days: int = 8, users: int = 120, per_day: int = 6, seed: int = 0) -> list[dict]:
    """Plays and ratings of ml-latest-small titles, users with a taste (a genre each)."""
    items = load_movielens("ml-latest-small").items
    rng = np.random.default_rng(seed)
    by_genre = items.explode("genres").groupby("genres")["item_id"].apply(list)
    genres = [g for g in by_genre.index if len(by_genre[g]) > 200][:6]
    out = []
    for u in range(users):
        liked = by_genre[genres[u % len(genres)]]
        for d in range(days):
            for k in range(per_day):
                ts = START + d * DAY_MS + k * 60_000 + u
                item = int(liked[rng.integers(len(liked))] if rng.random() < 0.8
                           else items["item_id"].iloc[rng.integers(len(items))])
                base = {"event_id": f"{u}-{d}-{k}", "user_id": 10_000 + u, "item_id": item,
                        "ts_ms": ts, "ingest_ms": ts, "origin": "api"}
                if k % 3:
                    out.append({**base, "type": "play",
                                "watch_fraction": float(rng.choice([0.2, 0.9, 1.0]))})
                else:
                    out.append({**base, "type": "rating", "value": float(rng.choice([2, 4, 5]))})
                if k == 0 and d == 0 and u == 0:
                    out.append({**base, "event_id": "c", "type": "click"})
    out.append({"event_id": "title:999999", "type": "title_added", "item_id": 999999,
                "ts_ms": START, "ingest_ms": START, "origin": "api",
                "title": {"item_id": 999999, "title": "Logged Title", "genres": ["Drama"]}})
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    export(logged(), folder)
    return folder


def test_the_export_reads_as_a_dataset_with_the_engagement_label(exported):
    data = load_dataset("events", path=str(exported))
    inter = data.interactions
    plays = inter[inter["event_type"] == "play"]
    assert set(inter["event_type"].astype(str)) == {"play", "rating"}  # clicks left out
    assert (plays.loc[plays["watch_fraction"] >= 0.7, "rating"] == 5.0).all()
    assert plays.loc[plays["watch_fraction"] < 0.7, "rating"].isna().all()
    assert 999999 in set(data.items["item_id"]) and data.n_users == 120
    week = load_dataset("events", path=str(exported), days=2)
    assert week.interactions["timestamp"].min() * 1000 >= START + 6 * DAY_MS
    split = split_interactions(data.interactions, "last_days", days=1)
    assert split.test["timestamp"].min() * 1000 >= START + 7 * DAY_MS
    assert split.train["timestamp"].max() * 1000 < START + 7 * DAY_MS
    with pytest.raises(RecsysError, match="export"):
        load_dataset("events", path=str(exported / "nothing"))
    with pytest.raises(RecsysError, match="every event"):
        split_interactions(week.interactions, "last_days", days=2)


def test_the_two_stage_job_trains_on_the_logged_events(exported, tmp_path):
    cfg = compose_config(["experiment=two_tower_small", "data=events",
                          f"data.path={exported}", "split=last_days", "trainer.epochs=1",
                          "trainer.progress=false", "logger=none",
                          "ranker.export.check_on_triton=false",
                          f"ranker.export.artefacts_root={tmp_path / 'artefacts'}"])
    metrics = train_ranker(two_stage_job(cfg), tmp_path / "run")
    assert {"two_tower", "ease"} <= set(metrics)
    assert all(0.0 <= m["ndcg@10"] <= 1.0 for m in metrics.values() if "ndcg@10" in m)
    version, path = ArtefactStore(tmp_path / "artefacts").resolve("latest")
    assert (path / "manifest.json").is_file()
