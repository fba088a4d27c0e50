"""Collaborative index embedding: the update rules by their definitions, the re-ranked
graphs against the exhaustive ones, the effect on a constructed two-view problem,
and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pseudosup.evaluation.protocols import class_map, rank_by_scores
from pseudosup.io import PseudosupError
from pseudosup.methods import cie
from pseudosup.mining.knn import KnnSettings, normalise_dense

from .test_mining import random_bow


def test_sparse_update_by_definition():
    G = random_bow(30, 25, 4, 0)
    rng = np.random.default_rng(1)
    A = sp.random(30, 30, density=0.1, random_state=2, format="csr", dtype=np.float32)
    A = (A + A.T).tocsr()
    A.setdiag(0)
    A.eliminate_zeros()
    beta = 0.3
    got = cie.sparse_update(G, A, beta).toarray()
    g, a = G.toarray().astype(np.float64), A.toarray()
    want = g.copy()
    for i in range(30):
        for w in range(25):
            if g[i, w] == 0:  # only words image i lacks; its own words stay
                want[i, w] += beta * sum(a[i, l] * g[l, w] for l in range(30))
        want[i] /= np.linalg.norm(want[i]) or 1
    assert np.allclose(got, want, atol=1e-6)
    assert rng is not None


def test_dense_update_by_definition():
    rng = np.random.default_rng(3)
    X = normalise_dense(rng.standard_normal((12, 5)))
    A = sp.csr_matrix(np.triu(rng.random((12, 12)) < 0.3, 1).astype(np.float32))
    A = (A + A.T).tocsr()
    got = cie.dense_update(X, A, 0.7)
    want = np.array([X[i] + 0.7 * sum(A[i, j] * X[j] for j in range(12)) for i in range(12)])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.allclose(got, want, atol=1e-6)


def test_sparse_pair_sim_is_cosine():
    G = random_bow(80, 50, 6, 4)
    G = sp.vstack([G, sp.csr_matrix((2, 50), dtype=np.float32)]).tocsr()  # two images without words
    rng = np.random.default_rng(5)
    i, j = rng.integers(0, 82, 500), rng.integers(0, 82, 500)
    i[:3], j[:3] = 80, 81
    dense = G.toarray()
    assert np.allclose(cie.sparse_pair_sim(G)(i, j), (dense[i] * dense[j]).sum(1), atol=1e-6)


def two_view_problem(n_groups=30, per=6, seed=0):
    """Items in groups; each view sees the group only for some items (the others are
    noise in that view), and the two views fail on different items."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per)
    n = len(groups)
    centres = rng.standard_normal((n_groups, 32))
    cnn_bad = rng.random(n) < 0.35
    X = centres[groups] + np.where(cnn_bad[:, None], 3.0, 0.6) * rng.standard_normal((n, 32))
    words = []
    for i, g in enumerate(groups):
        own = rng.choice(np.arange(g * 20, g * 20 + 20), 12, replace=False)
        noise = rng.integers(n_groups * 20, n_groups * 20 + 400, 25)
        keep = own[:2] if (not cnn_bad[i] and rng.random() < 0.6) else own  # SIFT fails elsewhere
        words.append(np.concatenate([keep, noise]))
    rows = np.repeat(np.arange(n), [len(w) for w in words])
    G = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(words))), shape=(n, n_groups * 20 + 400))
    G.sum_duplicates()
    return cie.normalise_rows(G), X.astype(np.float32), groups


def _map_dense(X, groups):
    S = X @ X.T
    return class_map(rank_by_scores(S, np.arange(len(X))), groups, groups, np.arange(len(X)))[0]


def test_cie_improves_the_cnn_index_on_complementary_views():
    G, X, groups = two_view_problem()
    base = _map_dense(normalise_dense(X), groups)
    res = cie.embed(G, X, cie.CIESettings(k=5, iterations=2, alpha=1.0, beta=0.5))
    after = _map_dense(res.X, groups)
    assert after > base + 0.05, (base, after)
    assert len(res.history) == 3 and res.history[1]["sift_pairs"] > 0
    assert res.history[2]["nnz_per_image"] > res.history[0]["nnz_per_image"]  # words were added
    np.testing.assert_allclose(np.linalg.norm(res.X, axis=1), 1, atol=1e-5)


def test_zero_iterations_is_identity_and_deterministic():
    G, X, _ = two_view_problem(10, 4, 1)
    res = cie.embed(G, X, cie.CIESettings(iterations=0))
    assert np.allclose(res.X, normalise_dense(X)) and (res.G != G).nnz == 0
    a = cie.embed(G, X, cie.CIESettings(k=4, iterations=2)).X
    b = cie.embed(G, X, cie.CIESettings(k=4, iterations=2)).X
    assert np.array_equal(a, b)


def test_candidate_reranking_with_all_items_equals_exhaustive():
    G, X, _ = two_view_problem(12, 5, 2)
    n = len(X)
    ex = cie.embed(G, X, cie.CIESettings(k=4, iterations=3))
    rr = cie.embed(G, X, cie.CIESettings(k=4, iterations=3, candidates=n - 1))
    assert np.allclose(ex.X, rr.X, atol=1e-5)
    assert [h.get("sift_pairs") for h in ex.history] == [h.get("sift_pairs") for h in rr.history]


def test_callback_sees_every_iteration():
    G, X, groups = two_view_problem(8, 4, 3)
    seen = []
    cie.embed(G, X, cie.CIESettings(k=3, iterations=2), callback=lambda t, Xt, Gt: seen.append(t) or {"map": _map_dense(Xt, groups)})
    assert seen == [0, 1, 2]


def test_bad_inputs_fail_before_work():
    G, X, _ = two_view_problem(8, 4, 4)
    with pytest.raises(PseudosupError, match="32 rows and the CNN features 31"):
        cie.embed(G, X[:31], cie.CIESettings())
    with pytest.raises(PseudosupError, match="not L2-normalised"):
        cie.embed(G * 3, X, cie.CIESettings())
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(PseudosupError, match="NaN"):
        cie.embed(G, Xn, cie.CIESettings())
    with pytest.raises(PseudosupError, match="cie.weighting"):
        cie.CIESettings(weighting="softmax")
    with pytest.raises(PseudosupError, match="cie.candidates"):
        cie.CIESettings(k=10, candidates=5)
    with pytest.raises(PseudosupError, match="sparse"):
        cie.embed(G.toarray(), X, cie.CIESettings())


def test_cap_row_nnz_keeps_the_largest_weights():
    G = random_bow(40, 30, 12, 9)
    capped = cie.cap_row_nnz(G, 5)
    assert np.diff(capped.indptr).max() <= 5
    d, c = G.toarray(), capped.toarray()
    for i in range(40):
        top = np.lexsort((np.arange(30), -d[i]))[:min(5, (d[i] > 0).sum())]
        assert set(np.flatnonzero(c[i])) == set(top)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1, atol=1e-6)
    assert cie.cap_row_nnz(G, 0) is not None and (cie.cap_row_nnz(G, 0) != G).nnz == 0


def test_bytes_per_image():
    assert cie.bytes_per_image("dense", 10, dim=1280) == 5120
    assert cie.bytes_per_image("sparse", 4, nnz=100) == 200
    assert KnnSettings().index == "auto"
