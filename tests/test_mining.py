"""kNN graphs (exact, approximate, sparse, re-ranked), reversible pairs, cross-space
selection, negatives and geometric verification against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from pseudosup.io import PseudosupError
from pseudosup.mining import knn as K
from pseudosup.mining.knn import knn_graph
from pseudosup.mining.pairs import cross_space_pairs, dense_sim, far_negatives, sparse_sim
from pseudosup.mining.reciprocal import pair_stats, reciprocal_pairs, reversible_adjacency


def brute_knn(X, k):
    d = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def clustered(n, d, clusters, seed, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)) * 3
    return (centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, d))).astype(np.float32)


def test_exact_knn_matches_brute_force():
    X = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    _, I = knn_graph(X, 7, batch=64)
    want = brute_knn(X.astype(np.float64), 7)
    assert (I == want).mean() > 0.999  # float32 vs float64 may swap near-ties
    assert not np.any(I == np.arange(300)[:, None])


def test_normalise_dense_unit_rows_in_the_asked_precision_zero_rows_stay_zero():
    """The one row normaliser (cosine kNN, CIE, refinement, sdc_graph, mls3rduh)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 12))
    X[3] = 0
    U = K.normalise_dense(X)
    assert U.dtype == np.float32 and U.flags.c_contiguous
    X32 = X.astype(np.float32)
    np.testing.assert_array_equal(U, X32 / np.maximum(np.linalg.norm(X32, axis=1, keepdims=True), 1e-12))
    assert not U[3].any() and np.allclose(np.linalg.norm(np.delete(U, 3, 0), axis=1), 1, atol=1e-6)
    U64 = K.normalise_dense(X, dtype=np.float64)   # mls3rduh: in float64
    assert U64.dtype == np.float64
    np.testing.assert_array_equal(U64, X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12))
    assert K.normalise_dense(X, dtype=None).dtype == np.float64   # sdc_graph: in the input's own dtype
    np.testing.assert_array_equal(K.normalise_dense(np.asfortranarray(X32)), U)   # made C-contiguous first


def test_reciprocal_pairs_by_definition():
    rng = np.random.default_rng(1)
    nbrs = np.array([rng.choice(np.delete(np.arange(40), i), 5, replace=False) for i in range(40)])
    pairs = reciprocal_pairs(nbrs)
    want = {(i, j) for i in range(40) for j in nbrs[i] if i < j and i in nbrs[j]}
    assert {tuple(p) for p in pairs.tolist()} == want
    assert np.all(pairs[:, 0] < pairs[:, 1])
    A = reversible_adjacency(nbrs)
    assert (A != A.T).nnz == 0 and {tuple(p) for p in np.argwhere(sp.triu(A).toarray())} == want


def test_pair_stats():
    pairs = np.array([[0, 1], [2, 3], [1, 4]])
    labels = np.array([0, 0, 1, 2, 1])
    s = pair_stats(pairs, 6, labels)
    assert s["num_pairs"] == 3 and s["items_in_a_pair"] == 5
    assert s["pair_precision"] == 1 / 3


def test_duplicates_do_not_count_as_their_own_neighbour():
    X = np.zeros((10, 4), np.float32)  # all identical: self may not come first
    _, I = knn_graph(X, 3)
    assert not np.any(I == np.arange(10)[:, None])


# --- exact / approximate with measured recall -----------------------------------------------

def test_auto_is_exact_below_threshold():
    X = clustered(500, 16, 10, 0)
    g = K.build_knn(X, 5, settings=K.KnnSettings(exact_max=1000))
    assert g.info["index"] == "exact" and g.info["recall_at_k"] == 1.0
    assert np.array_equal(g.indices, knn_graph(X, 5)[1])


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_reaches_target_and_reports_true_recall(kind):
    X = clustered(6000, 24, 60, 1)
    s = K.KnnSettings(index="auto" if kind == "ivf" else kind, exact_max=5000, target_recall=0.95,
                      recall_sample=400, seed=3)
    g = K.build_knn(X, 10, settings=s, threads=2)
    assert g.info["index"] == kind
    # the reported recall is the recall of the returned graph: recompute it by brute force
    rows = K._sample_rows(len(X), 400, 3 + 1)
    Xd = X.astype(np.float64)
    d = ((Xd[rows, None, :] - Xd[None, :, :]) ** 2).sum(-1)
    d[np.arange(len(rows)), rows] = np.inf
    exact = np.argsort(d, axis=1, kind="stable")[:, :10]
    id_recall = np.mean([len(np.intersect1d(g.indices[r], e)) / 10 for r, e in zip(rows, exact)])
    assert g.info["id_recall_at_k"] == pytest.approx(id_recall, abs=1e-4)
    assert g.info["recall_at_k"] >= 0.93 and g.info["tuning"][-1]["recall_at_k"] >= 0.95
    assert not np.any(g.indices == np.arange(len(X))[:, None])
    again = K.build_knn(X, 10, settings=s, threads=2 if kind == "ivf" else 1)
    if kind == "ivf":  # IVF is deterministic given the seed (HNSW insertion with threads is not)
        assert np.array_equal(again.indices, g.indices)


def test_pca_shortlist_then_exact_rerank():
    rng = np.random.default_rng(4)
    latent = clustered(3000, 12, 40, 4)
    X = (latent @ rng.standard_normal((12, 96)) + 0.05 * rng.standard_normal((3000, 96))).astype(np.float32)
    g = K.build_knn(X, 8, settings=K.KnnSettings(index="exact", pca_dim=16, shortlist=4, recall_sample=300))
    assert g.info["pca_dim"] == 16 and g.info["shortlist"] == 32
    _, exact = knn_graph(X, 8)
    assert (g.indices == exact).mean() > 0.97 and g.info["recall_at_k"] > 0.97
    d_true = ((X[:, None, :] - X[g.indices]) ** 2).sum(-1)
    assert np.allclose(g.distances, d_true, rtol=1e-3, atol=1e-3)  # exact distances in the full space


def test_fixed_nprobe_is_used_and_bad_settings_rejected():
    X = clustered(3000, 8, 20, 2)
    g = K.build_knn(X, 5, settings=K.KnnSettings(index="ivf", nlist=32, nprobe=2, recall_sample=200))
    assert g.info["nprobe"] == 2 and g.info["tuning"] == []
    with pytest.raises(PseudosupError, match="mining.index"):
        K.KnnSettings(index="annoy")
    with pytest.raises(PseudosupError, match="mining.k"):
        K.build_knn(X, 0)


# --- sparse (bag-of-words) kNN and re-ranking -------------------------------------------------

def random_bow(n, V, nnz, seed, binary=False):
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), nnz)
    vals = np.ones(n * nnz) if binary else rng.random(n * nnz)
    G = sp.csr_matrix((vals, (rows, rng.integers(0, V, n * nnz))), shape=(n, V))
    G.sum_duplicates()
    norms = np.sqrt(np.asarray(G.multiply(G).sum(1)).ravel())
    return sp.csr_matrix(sp.diags(1 / norms) @ G, dtype=np.float32)


def brute_sparse_knn(G, k):
    S = (G @ G.T).toarray().astype(np.float64)
    np.fill_diagonal(S, -np.inf)
    return np.argsort(-S, axis=1, kind="stable")[:, :k], S


@pytest.mark.parametrize("binary", [False, True])
def test_sparse_knn_matches_brute_force_with_ties(binary):
    G = random_bow(400, 60, 4, 5, binary=binary)  # binary rows on 60 words: many exact ties
    D, I = K.sparse_knn(G, 6, batch=37, threads=2)
    want, S = brute_sparse_knn(G, 6)
    got_s = np.take_along_axis(S, I, 1)
    want_s = np.take_along_axis(S, want, 1)
    assert np.allclose(got_s, want_s, atol=1e-6)     # same scores at every rank
    assert (I == want).mean() > 0.99                  # same items (ties by index, up to float32 noise)
    assert np.allclose(D, 2 - 2 * got_s, atol=1e-5)


def test_sparse_rows_must_be_normalised():
    G = random_bow(20, 30, 3, 0) * 2
    with pytest.raises(PseudosupError, match="not L2-normalised"):
        K.sparse_knn(G, 3)


def test_rerank_all_candidates_equals_exact():
    X = np.random.default_rng(6).standard_normal((200, 5)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    cand = np.tile(np.arange(200), (200, 1))
    cand = np.hstack([cand, np.full((200, 1), 7)])  # a duplicate candidate is ignored
    D, I = K.rerank_knn(cand, 8, lambda r, c: (X[r] * X[c]).sum(1), batch=64)
    _, want = knn_graph(X, 8)
    assert (I == want).mean() > 0.999
    short = K.rerank_knn(np.array([[1, -1, 0], [0, 0, 1]]), 3, lambda r, c: np.ones(len(r)))[1]
    assert short.tolist() == [[1, -1, -1], [0, -1, -1]]  # -1, self and duplicates dropped, padded


# --- cross-space pairs -----------------------------------------------------------------------

def test_cross_space_modes_by_definition():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((150, 6)).astype(np.float32)
    B = A + 0.8 * rng.standard_normal((150, 6)).astype(np.float32)  # a correlated second view
    _, ia = knn_graph(A, 20, "cosine")
    _, ib = knn_graph(B, 20, "cosine")
    k = 5
    src = {(i, j) for i in range(150) for j in ia[i, :k] if i < j and i in ia[j, :k]}
    def in_b(i, j):
        return j in ib[i, :k]
    m = cross_space_pairs(ia, ib, dense_sim(A), dense_sim(B), "source", k=k)
    assert {tuple(p) for p in m.pairs.tolist()} == src
    agree = cross_space_pairs(ia, ib, dense_sim(A), dense_sim(B), "agree", k=k)
    assert {tuple(p) for p in agree.pairs.tolist()} == {p for p in src if in_b(*p) and in_b(p[1], p[0])}
    comp = cross_space_pairs(ia, ib, dense_sim(A), dense_sim(B), "complement", k=k)
    assert {tuple(p) for p in comp.pairs.tolist()} == {p for p in src if not in_b(*p) and not in_b(p[1], p[0])}
    # scores: cosine in B and the rank (1-based, K+1 beyond the 20-long lists)
    i, j = m.pairs[0]
    Bn = B / np.linalg.norm(B, axis=1, keepdims=True)
    assert m.target_sim[0] == pytest.approx(float(Bn[i] @ Bn[j]), abs=1e-5)
    def r(a, b):
        return list(ib[a]).index(b) + 1 if b in ib[a] else 21
    assert m.target_rank[0] == max(r(i, j), r(j, i))


def test_no_reversible_pairs_and_mismatched_lengths_are_errors():
    cyc = (np.arange(30)[:, None] + 1) % 30  # i -> i+1: never mutual
    with pytest.raises(PseudosupError, match="no reversible pairs.*increase mining.k"):
        cross_space_pairs(cyc, cyc, None, None, k=1)
    with pytest.raises(PseudosupError, match="30 and 29 items"):
        cross_space_pairs(cyc, cyc[:29], None, None)


def test_sparse_sim_is_cosine():
    G = random_bow(50, 40, 5, 8)
    i, j = np.arange(10), np.arange(10, 20)
    assert np.allclose(sparse_sim(G)(i, j), (G[i].toarray() * G[j].toarray()).sum(1), atol=1e-6)


def test_far_negatives():
    rng = np.random.default_rng(9)
    nbrs = np.array([rng.permutation(np.delete(np.arange(60), i))[:30] for i in range(60)])
    anchors = np.arange(60)
    positives = np.array([[0, 59], [1, 58]])
    neg = far_negatives(nbrs, anchors, 60, 5, 20, seed=0, exclude=positives)
    assert neg.shape == (60, 5)
    assert not (neg == anchors[:, None]).any()
    assert not any(set(neg[a]) & set(nbrs[a, :20]) for a in anchors)
    assert 59 not in neg[0] and 58 not in neg[1]
    assert np.array_equal(neg, far_negatives(nbrs, anchors, 60, 5, 20, seed=0, exclude=positives))
    with pytest.raises(PseudosupError, match="lists hold 30"):
        far_negatives(nbrs, anchors, 60, 5, 40, seed=0)


# --- geometric verification -------------------------------------------------------------------

def test_geometric_verification_separates_copies_from_other_images():
    import cv2
    from skimage import data

    from pseudosup.mining.geometric import VerifySettings, verify_pairs

    a = data.astronaut()
    h, w = a.shape[:2]
    M = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 0.8)
    rotated = cv2.warpAffine(a, M, (w, h))
    images = [a, rotated[40:460, 30:480], data.coffee(), data.rocket()]
    inl = verify_pairs(images, np.array([[0, 1], [0, 2], [1, 3], [2, 3]]), VerifySettings(max_side=400))
    assert inl[0] >= 50 and max(inl[1:]) < 15
    assert inl.tolist() == verify_pairs(images, np.array([[0, 1], [0, 2], [1, 3], [2, 3]]),
                                        VerifySettings(max_side=400), threads=2).tolist()
    with pytest.raises(PseudosupError, match="outside the 4 images"):
        verify_pairs(images, np.array([[0, 4]]))


def naive_ratio_matches(da, db, ratio):
    """The definition: a's nearest in b (lowest index among equals) passes the ratio test
    against the second nearest and has a as its own nearest (mutual)."""
    d = np.sqrt(((da[:, None, :] - db[None, :, :]) ** 2).sum(-1))
    out = []
    for i in range(len(da)):
        order = np.argsort(d[i], kind="stable")
        j = order[0]
        if d[i, j] < ratio * d[i, order[1]] and np.argmin(d[:, j]) == i:
            out.append((i, j))
    return np.array(out, np.int64).reshape(-1, 2)


@pytest.mark.parametrize("seed", range(4))
def test_ratio_matches_equal_the_definition(seed):
    from pseudosup.mining.geometric import ratio_matches

    rng = np.random.default_rng(seed)
    db = rng.random((60, 16)).astype(np.float32)
    # half of a's descriptors are noisy copies of b's: both clear matches and rejects
    da = np.vstack([db[rng.permutation(60)[:30]] + 0.02 * rng.standard_normal((30, 16)), rng.random((25, 16))])
    da = da.astype(np.float32)
    got = ratio_matches(da, db, 0.8)
    want = naive_ratio_matches(da.astype(np.float64), db.astype(np.float64), 0.8)
    assert 10 <= len(want) and np.array_equal(got, want)


def test_ratio_matches_tie_rule():
    """Two equal nearest candidates: the ratio test rejects the match (0.8 d < d fails)."""
    from pseudosup.mining.geometric import ratio_matches

    db = np.array([[0, 0], [0, 0], [5, 5], [9, 0]], np.float32)
    da = np.array([[0, 0.1], [5, 5.1], [9, 0.2]], np.float32)
    assert ratio_matches(da, db, 0.8).tolist() == [[1, 2], [2, 3]]
    assert ratio_matches(da, db[[0, 2, 3]], 0.8).tolist() == [[0, 0], [1, 1], [2, 2]]


def test_verification_order_computes_each_image_once_and_threads_agree(monkeypatch):
    """Pairs inside groups of 4 whose members are scattered over 400 images: in the
    locality order each image's keypoints are computed once although the cache holds
    only 8 images, and 1 or 2 threads give the same counts."""
    from pseudosup.mining import geometric

    rng = np.random.default_rng(0)
    items = rng.permutation(400).reshape(100, 4)
    pairs = np.array([(g[i], g[j]) for g in items for i in range(4) for j in range(i + 1, 4)])
    pairs = pairs[rng.permutation(len(pairs))]
    calls = []

    def fake_keypoints(image, s):  # keypoints that depend only on the image id
        calls.append(int(image))
        r = np.random.default_rng(int(image))
        return r.random((6, 2)).astype(np.float32), r.random((6, 8)).astype(np.float32)

    monkeypatch.setattr(geometric, "rootsift_keypoints", fake_keypoints)
    monkeypatch.setattr(geometric, "count_inliers", lambda pa, pb, s: len(pa))
    s = geometric.VerifySettings(cache=8)
    one = geometric.verify_pairs(np.arange(400), pairs, s)
    assert sorted(calls) == list(range(400))
    calls.clear()
    assert geometric.verify_pairs(np.arange(400), pairs, s, threads=2).tolist() == one.tolist()
    want = [len(geometric.ratio_matches(fake_keypoints(a, s)[1], fake_keypoints(b, s)[1], s.ratio)) for a, b in pairs]
    assert one.tolist() == want
    order = geometric.locality_order(pairs, 400)
    assert sorted(order.tolist()) == list(range(len(pairs)))
