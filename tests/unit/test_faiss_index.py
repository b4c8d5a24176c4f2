"""VectorIndex: every index type finds the right items, knobs move recall, state survives save."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from recsys import RecsysError
from recsys.device import hardware
from recsys.index import VectorIndex

FACTORIES = ["Flat", "IVF32,Flat", "HNSW32", "IVF32,PQ8"]
DIM = 32


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    """Tiny indexes: OpenMP barriers cost more than a second core saves (worse on a busy box)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def _items(n: int = 2000, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    pairs = zip(found, truth, strict=True)
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in pairs]))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("factory", FACTORIES)
def test_every_factory_finds_the_exact_neighbour_with_custom_ids(factory: str, metric: str):
    # Random points in 32-d are far apart (distance ~8) compared with the query noise (~0.06),
    # so even PQ's quantisation error cannot swap the nearest item.
    items = _items()
    ids = 1000 + 7 * np.arange(len(items))  # not row numbers: results must carry them
    idx = VectorIndex(factory, metric=metric, nprobe=2, use_gpu=False).build(items, ids)
    rows = np.random.default_rng(1).choice(len(items), 200, replace=False)
    queries = items[rows] + 0.01 * _items(200, seed=2)
    scores, found = idx.search(queries, k=5)
    assert found.shape == scores.shape == (200, 5)
    assert (found[:, 0] == ids[rows]).all()
    assert set(found.ravel()) <= set(ids)


def test_ids_of_any_integer_dtype_round_trip_and_bad_ids_are_refused():
    items = _items(50)
    for dtype in (np.int32, np.uint16, np.int64):
        ids = np.arange(50, dtype=dtype)[::-1] * 3
        found = VectorIndex("HNSW32", use_gpu=False, metric="l2").build(items, ids).search(
            items[:3], 1)[1][:, 0]
        assert found.tolist() == [int(i) for i in ids[:3]]
    bad = {"integers": np.arange(50) + 0.5, "no result": np.arange(50) - 1,
           "duplicates": np.zeros(50, dtype=int), "one id per vector": np.arange(49)}
    for message, ids in bad.items():
        with pytest.raises(RecsysError, match=message):
            VectorIndex("Flat", use_gpu=False).build(items, ids)


def test_cosine_and_inner_product_rank_unnormalised_vectors_differently():
    items = np.array([[1.0, 0.0], [10.0, 10.0], [0.0, 1.0]], dtype=np.float32)
    query = np.array([[1.0, 0.1]], dtype=np.float32)
    ip_scores, ip_ids = VectorIndex("Flat", "ip", use_gpu=False).build(items).search(query, 3)
    cos_scores, cos_ids = VectorIndex("Flat", "cosine", use_gpu=False).build(items).search(
        query, 3)
    assert ip_ids[0, 0] == 1 and cos_ids[0, 0] == 0  # the long vector wins only under ip
    assert ip_scores[0, 0] == pytest.approx(11.0)
    assert cos_scores.max() <= 1.0 + 1e-6 and cos_scores[0, 0] == pytest.approx(0.995, abs=1e-3)
    assert items[1, 0] == 10.0  # cosine normalised a copy, not the caller's array


def test_nprobe_and_ef_search_raise_recall_monotonically():
    items, queries = _items(5000, seed=3), _items(100, seed=4)
    truth = VectorIndex("Flat", "l2", use_gpu=False).build(items).search(queries, 10)[1]
    ivf = VectorIndex("IVF64,Flat", "l2", use_gpu=False).build(items)
    recalls = []
    for nprobe in (1, 4, 16, 64):
        ivf.set_search_params(nprobe=nprobe)
        recalls.append(_recall(ivf.search(queries, 10)[1], truth))
    assert recalls == sorted(recalls) and recalls[0] < 0.9 and recalls[-1] == 1.0
    hnsw = VectorIndex("HNSW32", "l2", use_gpu=False).build(items, np.arange(5000) + 10)
    recalls = []
    for ef in (10, 40, 200):
        hnsw.set_search_params(ef_search=ef)
        assert faiss.downcast_index(hnsw.index.index).hnsw.efSearch == ef  # through IDMap2
        recalls.append(_recall(hnsw.search(queries, 10)[1] - 10, truth))
    assert recalls == sorted(recalls) and recalls[-1] > recalls[0]


def test_nprobe_reaches_an_ivf_behind_a_pretransform_and_is_capped_at_nlist():
    idx = VectorIndex("PCA16,IVF32,Flat", use_gpu=False).build(_items())
    idx.set_search_params(nprobe=7)
    assert faiss.extract_index_ivf(idx.index).nprobe == 7
    idx.set_search_params(nprobe=1000)
    assert faiss.extract_index_ivf(idx.index).nprobe == 32 and idx.nprobe == 1000
    with pytest.raises(RecsysError, match=">= 1"):
        idx.set_search_params(nprobe=0)


@pytest.mark.parametrize("factory", ["Flat", "IVF32,Flat", "HNSW32"])
def test_items_added_after_build_are_found(factory: str):
    items = _items(1500)
    idx = VectorIndex(factory, "l2", use_gpu=False).build(items[:1000], np.arange(1000) * 2)
    idx.add(items[1000:1200], np.arange(1200, 1400) * 2 + 1)  # odd ids: the new titles
    idx.add(items[1200:])  # default ids continue after the largest id so far
    assert len(idx) == 1500
    found = idx.search(items[1000:], 1)[1][:, 0]
    assert found[:200].tolist() == (np.arange(1200, 1400) * 2 + 1).tolist()
    assert found[200:].tolist() == list(range(2800, 3100))


@pytest.mark.parametrize("factory", ["HNSW32", "IVF32,Flat", "IVF32,PQ8"])
def test_save_load_gives_identical_results_and_keeps_knobs(factory: str, tmp_path: Path):
    items, queries = _items(), _items(50, seed=5)
    idx = VectorIndex(factory, "cosine", use_gpu=False).build(items, np.arange(2000) + 5)
    idx.set_search_params(nprobe=3, ef_search=20)
    before = idx.search(queries, 20)
    idx.save(tmp_path / "ix")
    loaded = VectorIndex.load(tmp_path / "ix", use_gpu=False)
    assert (loaded.factory, loaded.metric, loaded.nprobe, loaded.ef_search, loaded.dim) == (
        factory, "cosine", 3, 20, DIM)
    after = loaded.search(queries, 20)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0], rtol=1e-6)
    loaded.add(items[:1])
    assert loaded.search(items[:1], 2)[1][0].tolist() in ([2005, 5], [5, 2005])  # no id clash


def test_empty_index_and_k_beyond_size_pad_with_minus_one():
    empty = VectorIndex("Flat", use_gpu=False).build(np.zeros((0, 4), np.float32))
    scores, ids = empty.search(np.ones(4, np.float32), 3)
    assert ids.tolist() == [[-1, -1, -1]] and np.isneginf(scores).all()
    small = VectorIndex("HNSW32", "l2", use_gpu=False).build(np.eye(4, dtype=np.float32))
    scores, ids = small.search(np.eye(4, dtype=np.float32)[:2], 6)
    assert ids.shape == (2, 6) and (ids[:, 4:] == -1).all() and np.isposinf(scores[:, 4:]).all()
    assert sorted(ids[0, :4].tolist()) == [0, 1, 2, 3]
    assert small.search(np.eye(4, dtype=np.float32), 0)[1].shape == (4, 0)


def test_user_mistakes_raise_recsys_error_with_a_sentence(tmp_path: Path):
    items = _items(300)
    cases = [
        (lambda: VectorIndex("IVF9x,Flat").build(items), "bad FAISS index factory string"),
        (lambda: VectorIndex("IVF64,PQ5").build(items), "multiple of the number of subq"),
        (lambda: VectorIndex("IVF1024,Flat").build(items), "needs at least 1024 training"),
        (lambda: VectorIndex("Flat", metric="dot"), "unknown metric"),
        (lambda: VectorIndex("Flat").search(items, 1), "before build"),
        (lambda: VectorIndex("Flat").build(items).search(items[:, :8], 1), r"\(n, 32\)"),
        (lambda: VectorIndex("Flat").build(items).add(items[:, :8]), r"\(n, 32\)"),
        (lambda: VectorIndex("Flat").build(items).search(items, -1), "non-negative"),
        (lambda: VectorIndex("Flat").build(items * np.nan), "NaN"),
        (lambda: VectorIndex.load(tmp_path), "no saved VectorIndex"),
    ]
    for call, message in cases:
        with pytest.raises(RecsysError, match=message) as err:
            call()
        assert "\n" not in str(err.value) and "Error in" not in str(err.value)


def test_a_failed_rebuild_keeps_the_previous_index():
    items = _items(300)
    idx = VectorIndex("IVF8,Flat", "l2", use_gpu=False).build(items)
    with pytest.raises(RecsysError, match="duplicates"):
        idx.build(items[:, :16], np.zeros(300, dtype=int))
    with pytest.raises(RecsysError, match="needs at least 8"):
        idx.build(items[:5])
    assert len(idx) == 300 and idx.dim == DIM
    assert idx.search(items[:3], 1)[1][:, 0].tolist() == [0, 1, 2]


@pytest.mark.gpu
@pytest.mark.skipif(hardware().faiss_gpus == 0, reason="needs faiss-gpu and a CUDA device")
def test_gpu_and_cpu_search_agree():
    items, queries = _items(5000, seed=6), _items(100, seed=7)
    for factory in ("Flat", "IVF64,Flat"):
        cpu = VectorIndex(factory, "cosine", nprobe=64, use_gpu=False).build(items)
        gpu = VectorIndex(factory, "cosine", nprobe=64, use_gpu=True).build(items)
        (cs, ci), (gs, gi) = cpu.search(queries, 10), gpu.search(queries, 10)
        assert gpu._gpu_index is not None  # it really ran on the GPU
        assert _recall(gi, ci) > 0.99  # float ties may swap order, not membership
        np.testing.assert_allclose(np.sort(gs, axis=1), np.sort(cs, axis=1), atol=1e-4)
