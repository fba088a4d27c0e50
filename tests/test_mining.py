"""kNN graphs and reversible pairs equal their brute-force definitions."""

from __future__ import annotations

import numpy as np

from pseudosup.mining.knn import knn_graph
from pseudosup.mining.reciprocal import pair_stats, reciprocal_pairs


def brute_knn(X, k):
    d = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def test_exact_knn_matches_brute_force():
    X = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    _, I = knn_graph(X, 7, batch=64)
    want = brute_knn(X.astype(np.float64), 7)
    assert (I == want).mean() > 0.999  # float32 vs float64 may swap near-ties
    assert not np.any(I == np.arange(300)[:, None])


def test_reciprocal_pairs_by_definition():
    rng = np.random.default_rng(1)
    nbrs = np.array([rng.choice(np.delete(np.arange(40), i), 5, replace=False) for i in range(40)])
    pairs = reciprocal_pairs(nbrs)
    want = {(i, j) for i in range(40) for j in nbrs[i] if i < j and i in nbrs[j]}
    assert {tuple(p) for p in pairs.tolist()} == want
    assert np.all(pairs[:, 0] < pairs[:, 1])


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
