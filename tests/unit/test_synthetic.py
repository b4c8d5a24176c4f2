"""The synthetic generator: canonical schema, determinism, and the statistics it promises."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from recsys import RecsysError
from recsys.data.schema import INTERACTION_DTYPES, INTERACTIONS_ARROW, ITEMS_ARROW
from recsys.data.synthetic import GuideTable, SyntheticConfig, generate, load_synthetic

ROOT = Path(__file__).resolve().parents[2]
SMALL = SyntheticConfig(n_users=2_000, n_items=500, n_events=50_000, seed=7, chunk_users=500,
                        batch_events=4_000)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    return generate(SMALL, tmp_path_factory.mktemp("synthetic"), progress=False)


@pytest.fixture(scope="module")
def small(small_dir):
    return load_synthetic(small_dir)


@pytest.fixture(scope="module")
def events(small) -> pd.DataFrame:
    """Interactions plus whether the title carries the user's (latent) favourite genre."""
    top = small.users.set_index("user_id")["latent_top_genre"]
    genres = small.items.set_index("item_id")["genres"]
    frame = small.interactions
    favourite = top.loc[frame["user_id"]].to_numpy()
    titles_genres = genres.loc[frame["item_id"]].to_numpy()
    matches = np.fromiter((f in g for f, g in zip(favourite, titles_genres, strict=True)), bool,
                          len(frame))
    return frame.assign(matches=matches)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_tables_are_canonical(small_dir, small):
    it = small.interactions
    for col, dtype in INTERACTION_DTYPES.items():
        assert str(it[col].dtype) == str(dtype), col
    assert pq.read_schema(small_dir / "interactions" / "part-00000.parquet").equals(
        INTERACTIONS_ARROW)
    # Parquet stores timestamp[s] as ms and names list elements "element": same data, so check
    # that the file casts to the canonical schema.
    assert pq.read_table(small_dir / "items.parquet").cast(ITEMS_ARROW).schema.equals(ITEMS_ARROW)
    assert len(it) == SMALL.n_events and small.n_users == SMALL.n_users
    assert small.n_items == SMALL.n_items
    assert set(it["event_type"].unique()) == {"play", "click", "rating", "search"}
    assert it["timestamp"].notna().all()
    assert it["timestamp"].min() >= SMALL.start_timestamp
    plays, rated = it["event_type"] == "play", it["event_type"] == "rating"
    assert it.loc[~plays, "watch_fraction"].isna().all()
    assert it.loc[plays, "watch_fraction"].notna().all()
    assert it.loc[~rated, "rating"].isna().all()
    assert set(it.loc[rated, "rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    items = small.items
    assert items["genres"].map(len).between(1, 2).all() and items["regions"].map(len).ge(1).all()
    assert isinstance(items["genres"].iloc[0], list)
    assert items["title"].iloc[0] == "Synthetic Title 1"
    assert set(items["maturity_rating"]) <= {"G", "PG", "PG-13", "R"}
    meta = json.loads((small_dir / "meta.json").read_text())
    assert meta["counts"]["events"] == SMALL.n_events
    shares = pd.Series(meta["counts"]["events_by_type"]) / SMALL.n_events
    assert shares["play"] == pytest.approx(SMALL.play_share, abs=0.03)


def test_same_seed_same_files_other_seed_differs(tmp_path, small_dir):
    again = generate(SMALL, tmp_path / "again", progress=False)
    assert _files(again) == _files(small_dir)
    other_seed = dataclasses.replace(SMALL, seed=SMALL.seed + 1)
    other = generate(other_seed, tmp_path / "other", progress=False)
    part = "interactions/part-00000.parquet"
    assert _files(other)[part] != _files(small_dir)[part]


def test_popularity_is_heavy_tailed(small):
    counts = np.sort(small.interactions["item_id"].value_counts().to_numpy())[::-1]
    top_decile = counts[: SMALL.n_items // 10].sum() / counts.sum()
    assert top_decile > 0.45  # uniform popularity would give ~0.1
    ranks = np.arange(1, 51)
    slope = np.polyfit(np.log(ranks), np.log(counts[:50]), 1)[0]
    assert -1.5 < slope < -0.5  # exponent 1.0, loosely (genre mixing bends the curve)


def test_users_concentrate_on_their_top_genre(events):
    # A title carries a given genre ~1.3/20 of the time; users' events do so far more often.
    share = events.groupby("user_id")["matches"].mean()
    assert share.median() > 4 / SMALL.n_genres


def test_sessions_cluster_events_in_time(small):
    it = small.interactions.sort_values(["user_id", "timestamp"])
    same_user = it["user_id"].diff().to_numpy() == 0
    gaps = it["timestamp"].diff().to_numpy(dtype=float, na_value=np.nan)[same_user]
    within = gaps < 1_800  # a 30-minute inactivity rule recovers the sessions
    assert within.mean() > 0.7  # mean session length 8: ~7 of 8 gaps fall inside a session
    assert np.median(gaps[within]) < 300
    assert np.median(gaps[~within]) > 86_400  # sessions lie days apart


def test_watch_fraction_tracks_affinity(events):
    plays = events[events["event_type"] == "play"]
    watched = plays["watch_fraction"].to_numpy()
    assert ((watched >= 0) & (watched <= 1)).all()
    engaged = watched > 0.7
    assert 0.1 < engaged.mean() < 0.9
    matches = plays["matches"].to_numpy()
    assert engaged[matches].mean() > engaged[~matches].mean() + 0.15
    rated = events[events["event_type"] == "rating"]
    by_match = rated.groupby("matches")["rating"].mean()
    assert by_match[True] > by_match[False] + 0.5


def test_chunks_write_parts_and_keep_totals(tmp_path, small_dir, small):
    assert len(list((small_dir / "interactions").glob("part-*.parquet"))) == 4
    assert len(list((small_dir / "users").glob("part-*.parquet"))) == 4
    assert pq.ParquetFile(small_dir / "interactions" / "part-00000.parquet").num_row_groups > 1
    one_chunk = dataclasses.replace(SMALL, chunk_users=10_000, batch_events=1_000_000)
    whole = load_synthetic(generate(one_chunk, tmp_path / "whole", progress=False))
    assert len(list((tmp_path / "whole" / "interactions").glob("*.parquet"))) == 1
    assert len(whole.interactions) == len(small.interactions) == SMALL.n_events
    assert whole.n_users == small.n_users and whole.n_items == small.n_items
    pd.testing.assert_frame_equal(whole.items, small.items)  # the catalog ignores chunking


def test_chunks_without_events_still_get_parts(tmp_path):
    sparse = dataclasses.replace(SMALL, n_users=100, n_events=3, chunk_users=10)
    data = load_synthetic(generate(sparse, tmp_path, progress=False))
    assert len(data.interactions) == 3 and data.n_users == 100
    assert len(list((tmp_path / "interactions").glob("*.parquet"))) == 10


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.5])
def test_guide_table_matches_searchsorted(exponent):
    rng = np.random.default_rng(0)
    weights = rng.permutation(np.arange(1, 20_001) ** -exponent)
    weights[rng.integers(0, len(weights), 50)] = 0.0  # ties in the running sum
    cum = np.cumsum(weights)
    x = np.concatenate([rng.random(100_000) * cum[-1], cum[:100], [0.0, cum[-1]]])
    expected = np.searchsorted(cum, x, side="right")
    np.testing.assert_array_equal(GuideTable(cum).searchsorted(x), expected)


def test_existing_dataset_needs_overwrite(tmp_path):
    config = dataclasses.replace(SMALL, n_users=200, n_events=2_000, chunk_users=50)
    generate(config, tmp_path, progress=False)
    with pytest.raises(RecsysError, match="overwrite"):
        generate(config, tmp_path, progress=False)
    fewer = dataclasses.replace(config, chunk_users=100)  # 2 parts where there were 4
    reloaded = load_synthetic(generate(fewer, tmp_path, progress=False, overwrite=True))
    assert len(reloaded.interactions) == 2_000
    assert len(list((tmp_path / "interactions").glob("*.parquet"))) == 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n_users": 0}, "n_users must be a positive integer"),
        ({"n_events": -5}, "n_events must be a positive integer"),
        ({"n_items": 2.5}, "n_items must be a positive integer"),
        ({"play_share": 0.9}, "sum to 1"),
        ({"click_share": -0.25, "play_share": 1.1}, "sum to 1"),
        ({"genre_concentration": 0.0}, "genre_concentration must be > 0"),
        ({"popularity_exponent": float("nan")}, "popularity_exponent must be a finite number"),
        ({"mean_session_length": 0.5}, "mean_session_length must be >= 1"),
        ({"n_genres": 600}, "cannot exceed n_items"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_config_raises(tmp_path, change, message):
    with pytest.raises(RecsysError, match=message):
        generate(dataclasses.replace(SMALL, **change), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())  # rejected before touching the folder


def test_load_needs_a_finished_dataset(tmp_path, small_dir):
    with pytest.raises(RecsysError, match="not found"):
        load_synthetic(tmp_path / "absent")
    with pytest.raises(RecsysError, match="no meta.json"):
        load_synthetic(tmp_path)
    with pytest.raises(RecsysError, match="max_events"):
        load_synthetic(small_dir, max_events=1_000)


def _cli(*args: str) -> subprocess.CompletedProcess:
    script = ROOT / "scripts" / "generate_synthetic.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=60)


def test_cli_writes_and_rejects_bad_args(tmp_path):
    done = _cli("--users", "100", "--items", "50", "--events", "1000", "--out",
                str(tmp_path / "ok"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert len(load_synthetic(tmp_path / "ok").interactions) == 1_000
    bad = _cli("--users", "0", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: invalid synthetic config: n_users must be")
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
