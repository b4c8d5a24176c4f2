"""The two-tower ranker: output shapes of every sparse arch, the export copy's equivalence, and a
block-diagonal oracle it must learn."""

import numpy as np
import pytest
import torch

from recsys.ranking.evaluate import auc
from recsys.ranking.layout import PAD, FeatureLayout, SparseFeature, Table
from recsys.ranking.model import SPARSE_ARCHES, ModelParams, TwoTowerRanker, as_gather_model
from recsys.train.loop import loss_fn

SMALL = dict(tower_dims=[32, 16], dense_dims=[8], interaction_dims=[16])


def toy_layout(n_users: int = 20, n_items: int = 30, history: int = 4, genres: int = 5,
               pair_dense: int = 3) -> FeatureLayout:
    features = (
        SparseFeature("user_id", "user", 1, "user"),
        SparseFeature("user_history", "item", history, "user"),
        SparseFeature("user_genres", "genre", genres, "user"),
        SparseFeature("item_id", "item", 1, "item"),
        SparseFeature("item_genres", "genre", genres, "item"),
        SparseFeature("surface", "surface", 1, "context"),
    )
    tables = (Table("user", n_users, 8), Table("item", n_items, 8), Table("genre", genres, 4),
              Table("surface", 3, 4))
    return FeatureLayout(features, tables, user_dense=2, item_dense=3, pair_dense=pair_dense)


def random_inputs(layout: FeatureLayout, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Valid ids per slice with ~30% empty slots (every row keeps its id slots filled)."""
    g = torch.Generator().manual_seed(seed)
    ids, weights = [], []
    for feature, start, stop in layout.slices():
        n = layout.table(feature.table).num_embeddings
        sub = torch.randint(0, n, (batch, stop - start), generator=g)
        if stop - start > 1:
            sub[torch.rand(sub.shape, generator=g) < 0.3] = PAD
        ids.append(sub)
        weights.append(torch.rand(sub.shape, generator=g) * (sub != PAD))
    return {"ids": torch.cat(ids, 1), "weights": torch.cat(weights, 1),
            "user_dense": torch.randn(batch, layout.user_dense, generator=g),
            "item_dense": torch.randn(batch, layout.item_dense, generator=g),
            "pair_dense": torch.randn(batch, layout.pair_dense, generator=g)}


@pytest.mark.parametrize("arch", SPARSE_ARCHES)
def test_every_arch_gives_two_logits_per_row(arch):
    layout = toy_layout()
    torch.manual_seed(0)
    model = TwoTowerRanker(layout, ModelParams(**SMALL, sparse_arch=arch))
    inputs = random_inputs(layout, 7)
    logit, dot = model(**inputs)
    assert logit.shape == (7,) and dot.shape == (7,)
    assert torch.isfinite(logit).all() and torch.isfinite(dot).all()
    loss = loss_fn((logit, dot), torch.ones(7), 0.5)
    loss.backward()
    assert all(p.grad is not None for p in model.sparse_arch.parameters())  # reaches the tables
    tables = model.sparse_arch.table_weights()
    assert {name: tuple(w.shape) for name, w in tables.items()} == {
        t.name: (t.num_embeddings, t.dim) for t in layout.tables}


def test_unknown_sparse_arch_is_refused():
    with pytest.raises(ValueError, match="sparse_arch"):
        TwoTowerRanker(toy_layout(), ModelParams(**SMALL, sparse_arch="faiss"))


@pytest.mark.parametrize("arch", ["torchrec", "embedding_bag"])
def test_gather_copy_scores_like_the_original(arch):
    layout = toy_layout()
    torch.manual_seed(1)
    model = TwoTowerRanker(layout, ModelParams(**SMALL, sparse_arch=arch)).eval()
    with torch.no_grad():  # non-trivial weights everywhere, pad row (embedding_bag) included
        for p in model.parameters():
            p.normal_(0, 0.3)
    inputs = random_inputs(layout, 64, seed=2)
    copy = as_gather_model(model)
    assert copy.params.sparse_arch == "gather"
    with torch.no_grad():
        want, want_dot = model(**inputs)
        got, got_dot = copy(**inputs)
    assert want.std() > 0.1  # the comparison means something
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_dot, want_dot, atol=1e-5, rtol=1e-5)


def block_pairs(n_users: int = 60, n_items: int = 40, blocks: int = 4, seed: int = 0):
    """Every (user, item) pair, label 1 inside the user's block; 20% held out at random."""
    user_block, item_block = np.arange(n_users) % blocks, np.arange(n_items) % blocks
    users, items = (a.ravel() for a in np.meshgrid(np.arange(n_users), np.arange(n_items),
                                                   indexing="ij"))
    labels = (user_block[users] == item_block[items]).astype(np.float32)
    test = np.random.default_rng(seed).random(len(users)) < 0.2
    return users, items, labels, test


def oracle_inputs(layout: FeatureLayout, users: np.ndarray, items: np.ndarray):
    n = len(users)
    ids = torch.full((n, layout.slots), PAD, dtype=torch.long)
    ids[:, layout.offset("user_id")] = torch.from_numpy(users)
    ids[:, layout.offset("item_id")] = torch.from_numpy(items)
    ids[:, layout.offset("surface")] = 0
    weights = (ids != PAD).float()
    return {"ids": ids, "weights": weights, "user_dense": torch.zeros(n, layout.user_dense),
            "item_dense": torch.zeros(n, layout.item_dense),
            "pair_dense": torch.zeros(n, layout.pair_dense)}


@pytest.fixture
def one_thread():
    """Tiny matmuls: a second OpenMP thread only spins against the other users of a busy CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_learns_a_block_diagonal_oracle(one_thread):
    """Users of block b engage with items of block b only; ids are the only signal, so the
    model must generalise from other pairs to the held-out (user, item) pairs."""
    layout = toy_layout(n_users=60, n_items=40)
    users, items, labels, test = block_pairs()
    train_x = oracle_inputs(layout, users[~test], items[~test])
    test_x = oracle_inputs(layout, users[test], items[test])
    y = torch.from_numpy(labels[~test])
    torch.manual_seed(0)
    model = TwoTowerRanker(layout, ModelParams(**SMALL, sparse_arch="gather"))
    with torch.no_grad():
        before = model(**test_x)[0].numpy()
    assert auc(before, labels[test]) < 0.8  # untrained: no better than a weak guess
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):  # AUC reaches ~1.0 by step 125
        optimizer.zero_grad()
        loss = loss_fn(model(**train_x), y, 0.5)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logit, dot = model(**test_x)
    assert auc(logit.numpy(), labels[test]) > 0.95
    assert auc(dot.numpy(), labels[test]) > 0.95  # the retrieval score alone, too
    assert loss.item() < 0.1


def test_serving_ranker_scores_each_user_once_and_equals_row_by_row(tmp_path):
    """Requests repeat one user's slots on every candidate row; the served model runs the user
    side once per distinct user row. Scores must equal the row-by-row model, eager and exported
    to ONNX, on a batch that merges three users' requests (as Triton's batcher does)."""
    from recsys.ranking.export import export_onnx, onnx_session
    from recsys.ranking.model import ServingRanker

    layout = toy_layout()
    torch.manual_seed(0)
    model = as_gather_model(TwoTowerRanker(layout, ModelParams(**SMALL, sparse_arch="gather")))
    served = ServingRanker(model).eval()
    assert served.dedupe
    rows = random_inputs(layout, 30, seed=3)
    user = [c for f, a, b in layout.slices() if f.side == "user" for c in range(a, b)]
    owner = torch.arange(30) % 3  # three users, their rows interleaved
    people = random_inputs(layout, 3, seed=4)
    rows["ids"][:, user] = people["ids"][owner][:, user]
    rows["weights"][:, user] = people["weights"][owner][:, user]
    rows["user_dense"] = people["user_dense"][owner]
    with torch.inference_mode():
        want = torch.sigmoid(model(**rows)[0]).unsqueeze(-1)
        got = served(**rows)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    session = onnx_session(export_onnx(served, rows, tmp_path / "m.onnx"))
    out = session.run(None, {k: v.numpy() for k, v in rows.items()})[0]
    np.testing.assert_allclose(out, want.numpy(), rtol=0, atol=1e-6)
    # a user whose rows differ only in a weight or a dense value is a different user
    rows["user_dense"][0, 0] += 1.0
    with torch.inference_mode():
        torch.testing.assert_close(served(**rows), torch.sigmoid(model(**rows)[0]).unsqueeze(-1),
                                   rtol=0, atol=1e-6)


def test_ranker_from_state_rebuilds_the_saved_model():
    """A bundle's ranker_state.pt loads back with its widths read off the weights (no config),
    and scores exactly as the model that was saved; a non-gather state is refused by name."""
    from recsys.ranking.model import ranker_from_state

    layout = toy_layout()
    torch.manual_seed(1)
    params = ModelParams([24, 12], [10, 6], [9, 5], "gather")
    model = as_gather_model(TwoTowerRanker(layout, params))
    loaded = ranker_from_state(layout, model.state_dict())
    assert loaded.params == params
    rows = random_inputs(layout, 16, seed=2)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(**rows)[0], model(**rows)[0], rtol=0, atol=0)
    bags = TwoTowerRanker(layout, ModelParams(**SMALL, sparse_arch="embedding_bag"))
    with pytest.raises(ValueError, match="gather-arch tables"):
        ranker_from_state(layout, bags.state_dict())


def test_export_refuses_a_served_format_it_does_not_export_before_writing(tmp_path):
    from recsys import RecsysError
    from recsys.train.publish import export_ranker
    from recsys.train.settings import ExportFormat, RankerExportConfig

    export = RankerExportConfig(formats=[ExportFormat.torchscript])
    with pytest.raises(RecsysError, match="serve_format=onnx is not in"):
        export_ranker(None, None, None, {"cf": 100}, export, tmp_path / "out")
    assert not (tmp_path / "out").exists()
