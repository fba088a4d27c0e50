"""MLS3RDUH on frozen features: the mined similarity matrix equals a brute-force reading
of its definition (duplicates, an isolated item, disconnected parts, negative cosines);
a known answer for the mining and for the codes; the batch targets and the log-cosh
loss; bit balance and group separation when centred; settings named (determinism, model file,
loss decrease, labels and bad input: the shared tests of test_head_hashers.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pseudosup import codes as C
from pseudosup.io import PseudosupError
from pseudosup.methods import registry
from pseudosup.methods.hashing.mls3rduh import log_cosh, mine_similarity, neighbour_counts

from .test_head_hashers import clusters

FAST = {"epochs": 6, "batch_size": 32, "lr": 1e-3}


@pytest.fixture(autouse=True)
def one_thread():
    import torch
    torch.set_num_threads(1)


def naive_similarity(X, k1, k2, alpha):
    """The definition, item by item, in float64 (module docstring): the dense S, with 0
    where the target is the cosine."""
    n = len(X)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = U @ U.T
    knn = [[j for j in np.argsort(-cos[i], kind="stable") if j != i][:k1] for i in range(n)]
    W = np.zeros((n, n))
    for i in range(n):
        for j in knn[i]:
            if i in knn[j] and cos[i, j] > 1e-4:
                W[i, j] = cos[i, j]
    isolated = W.sum(1) == 0
    d = W.sum(1)
    Dm = np.diag([1 / math.sqrt(v) if v > 0 else 0.0 for v in d])
    F = np.linalg.inv(np.eye(n) - alpha * Dm @ W @ Dm)
    F = np.round(F / F.max(axis=1, keepdims=True), 12)
    P = np.zeros((n, n), dtype=int)   # per direction: +1 similar, -1 dissimilar
    for i in range(n):
        if isolated[i]:
            continue
        cand = [j for j in range(n) if j != i and not isolated[j] and F[i, j] > 0]
        manifold = sorted(cand, key=lambda j: (-F[i, j], j))[:k2]
        for j in knn[i]:
            if not isolated[j]:
                P[i, j] = 1 if j in manifold else -1
    S = np.zeros((n, n), dtype=int)
    for i in range(n):
        for j in range(n):
            if P[i, j] == 1 or P[j, i] == 1:
                S[i, j] = 1
            elif P[i, j] == -1 or P[j, i] == -1:
                S[i, j] = -1
    return S, isolated


def awkward_case(seed=0):
    """Two groups around opposite directions (negative cosines across, no graph edge
    between them: manifold scores 0 across), exact duplicates (ties in both rankings),
    and an item orthogonal to all others (cosine 0: isolated). Every other item has
    more than k1 positive cosines, so no cosine-kNN list reaches the exact cosine-0
    ties (faiss ranks float32 distances: those would rank by rounding, not index)."""
    rng = np.random.default_rng(seed)
    X = np.zeros((61, 10))
    X[:35, :9] = 0.6 * rng.standard_normal((35, 9)) + 1
    X[35:60, :9] = 0.6 * rng.standard_normal((25, 9)) - 1
    X[[7, 19, 28]] = X[3]
    X[44] = X[40]
    X[60, 9] = 1.0
    return X.astype(np.float32)


# (7, 5): equal manifold scores straddle the k2-th place and come out unequal in floating
# point (without the 12-digit rounding 26 entries differ); (6, 30): lists shorter than k2
@pytest.mark.parametrize("k1, k2", [(4, 6), (7, 5), (6, 30), (12, 9)])
def test_mined_similarity_equals_the_brute_force_definition(k1, k2):
    X = awkward_case()
    L, info = mine_similarity(X, k1, k2, 0.99)
    S, isolated = naive_similarity(X.astype(np.float64), k1, k2, 0.99)
    assert isolated[60] and info["isolated_items"] == isolated.sum()
    got = L.toarray()
    assert got.dtype == np.int8 and np.array_equal(got, got.T)
    assert np.array_equal(got, S), np.argwhere(got != S)[:10]
    assert info["similar_pairs"] == (S == 1).sum() // 2 and info["dissimilar_pairs"] == (S == -1).sum() // 2
    assert (S == 1).any() and (S == -1).any()
    assert not S[:35, 35:].any()   # the groups never meet
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert (U[:35] @ U[35:60].T).max() < 0 < (U[:35] @ U[:35].T).min()


def test_mined_similarity_on_random_data_equals_the_definition():
    X = np.random.default_rng(1).standard_normal((90, 7)).astype(np.float32)
    k1, k2 = neighbour_counts(90, 0.06, 0.09)
    assert (k1, k2) == (5, 8)
    L, _ = mine_similarity(X, k1, k2, 0.99)
    assert np.array_equal(L.toarray(), naive_similarity(X.astype(np.float64), k1, k2, 0.99)[0])


def test_neighbour_counts_floor_and_clip():
    assert neighbour_counts(5000, 0.06, 0.09) == (300, 450)  # the authors' int(0.06 n), int(0.06 * 1.5 n)
    assert neighbour_counts(10, 0.01, 0.99) == (1, 9)


def two_arcs(n_per=40):
    """Two arcs of directions on the sphere, far apart in angle: the cosine kNN of an
    arc's end reaches along its own arc only, and so does the manifold."""
    t = np.linspace(0, 0.6, n_per)
    a = np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], 1)
    b = np.stack([np.zeros_like(t), np.cos(t), np.sin(t) + 2.0], 1)
    return np.concatenate([a, b]).astype(np.float32), np.repeat([0, 1], n_per)


def test_known_answer_similar_pairs_stay_on_their_arc_and_follow_it():
    X, arc = two_arcs()
    L, info = mine_similarity(X, 6, 12, 0.99)
    L = L.tocoo()
    assert info["isolated_items"] == 0 and len(L.data)
    assert (arc[L.row] == arc[L.col]).all()
    # similar pairs are near along the arc: within the 12 neighbours either side
    pos = L.data > 0
    assert (np.abs(L.row[pos] - L.col[pos]) <= 12).all()


def test_batch_targets_and_the_loss_are_their_definitions():
    import torch

    X, _ = clusters(n_per=30)
    model = registry.get("mls3rduh")(8, FAST, seed=0)
    model._prepare(X, np.random.default_rng(0))
    rows = np.array([5, 0, 77, 31, 100, 6])
    T = model.targets(rows).numpy()
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    dense = model.similarity.toarray()
    for a, i in enumerate(rows):
        for b, j in enumerate(rows):
            want = dense[i, j] if dense[i, j] else 2 * max(U[i] @ U[j], 0) - 1
            assert T[a, b] == pytest.approx(want, abs=1e-5)
    h = torch.tanh(torch.randn(6, 8))
    loss, _ = model._loss(None, h, rows, None, None)
    naive = np.mean([math.log(math.cosh(float(h[a] @ h[b]) / 8 - T[a, b])) for a in range(6) for b in range(6)])
    assert float(loss) == pytest.approx(naive, rel=1e-5)
    x = torch.tensor([-30.0, -1.0, 0.0, 0.5, 30.0])
    assert torch.allclose(log_cosh(x), torch.log(torch.cosh(x.double())).float(), atol=1e-6)


def test_the_mining_summary_is_in_the_history():
    # determinism, the model file, loss decrease and retrieval of the groups: the shared
    # tests of tests/test_head_hashers.py (HEADS)
    X, _ = clusters()
    mined = registry.get("mls3rduh")(16, {**FAST, "epochs": 1}, seed=3).fit(X).history[0]
    assert (mined["k1"], mined["k2"], mined["items"]) == (14, 21, 240) and mined["similar_pairs"] > 0


def test_centred_codes_are_balanced_and_separate_the_groups():
    X, groups = clusters()
    model = registry.get("mls3rduh")(16, {**FAST, "epochs": 40, "center": True}, seed=0).fit(X)
    bits = C.unpack(model.encode(X), 16)
    assert np.mean(np.abs(bits.mean(0) - 0.5) < 0.4) >= 0.75
    b = bits.astype(np.int8)
    dist = (b[:, None, :] != b[None, :, :]).sum(-1).astype(float)
    same = groups[:, None] == groups[None, :]
    off = ~np.eye(len(X), dtype=bool)
    assert dist[same & off].mean() + 4 < dist[~same].mean()


def test_train_size_mines_and_trains_on_a_seeded_sample():
    X, _ = clusters()
    cls = registry.get("mls3rduh")
    a = cls(8, {**FAST, "epochs": 2, "train_size": 100}, seed=1).fit(X)
    assert a.history[0] == {"epoch": 0, "train_sample": 100, "of_items": 240}
    assert a.history[1]["items"] == 100
    b = cls(8, {**FAST, "epochs": 2, "train_size": 100}, seed=1).fit(X)
    assert np.array_equal(a.encode(X), b.encode(X))


def test_nan_checked_before_sampling_and_settings_named():
    X, _ = clusters()
    cls = registry.get("mls3rduh")
    assert not registry.entry("mls3rduh").supervised and registry.entry("mls3rduh").torch
    # labels, NaN, a batch larger than the data, encode before fit: the shared
    # test_labels_are_refused_and_bad_input_is_a_clear_error (HEADS); here NaN is
    # checked before train_size samples the items
    bad = X.copy()
    bad[3, 5] = np.nan
    with pytest.raises(PseudosupError, match=r"columns \[5\]"):
        cls(16, {**FAST, "train_size": 50}).fit(bad)
    for key, value in (("alpha", 1.0), ("alpha", "0.9"), ("cosine_fraction", 0), ("manifold_fraction", 1.5),
                       ("cosine_fraction", float("nan")), ("train_size", 1), ("train_size", 2.5),
                       ("train_size", True)):
        with pytest.raises(PseudosupError, match=rf"{key} .*methods\.<name>\.{key}"):
            cls(16, {key: value})


def test_the_params_schema_accepts_the_defaults_and_names_a_bad_key():
    from pseudosup import params as P

    from .conftest import ROOT

    params = P.load_yaml(ROOT / "params.yaml")
    params["methods"]["mls3rduh"] = {"hasher": "mls3rduh", "center": True, "lr": 0.001}
    P.validate(params, ROOT / "params.yaml")
    params["methods"]["mls3rduh"]["alpha"] = 1.0
    with pytest.raises(PseudosupError, match="methods.mls3rduh.alpha"):
        P.validate(params, ROOT / "params.yaml")
