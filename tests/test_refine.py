"""Retrieval refinements (methods/refine.py): each fast function against a naive dense
reference written here from the definitions, identities, constructed cases with a
known answer (a manifold for diffusion, a non-reciprocal hub for k-reciprocal
re-ranking), bad settings and input, and the memory of the sparse k-reciprocal path.

Ties: alpha-QE and DBA are checked on data with exact duplicates, where any order of
the tied items gives the same sum. Diffusion and k-reciprocal re-ranking are checked
on data whose neighbour lists are tie-free at the k boundaries (asserted, by a
margin): there a tie decides which item is in a list, both choices satisfy the
definition, and the reference's order of equal distances need not be faiss's.
"""

from __future__ import annotations

import re
import time
import tracemalloc

import numpy as np
import pytest

from pseudosup.evaluation.protocols import class_map, rank_by_scores
from pseudosup.io import PseudosupError
from pseudosup.methods import refine
from pseudosup.methods.refine import (
    RefineSettings,
    alpha_qe,
    dba,
    diffusion_scores,
    k_reciprocal_scores,
    truncated_diffusion_rows,
    truncated_diffusion_scores,
)
from pseudosup.mining.knn import normalise_dense


def unit(A) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def random_unit(n, d, seed) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, d))).astype(np.float32)


def with_duplicates(seed=0, n=40, nq=6, d=8):
    """Database with exact duplicate rows (a triple and a pair) and queries equal to
    database rows: deliberate ties at every k boundary."""
    X = random_unit(n, d, seed)
    X[[5, 17]] = X[3]
    X[30] = X[11]
    Q = random_unit(nq, d, seed + 1)
    Q[0], Q[1] = X[3], X[11]
    return Q, X


def top_gap_ok(sims: np.ndarray, positions, margin=1e-5) -> bool:
    """Every row's sorted values (descending) differ by > margin across each boundary
    (between position p - 1 and p): a tie-free k boundary."""
    srt = -np.sort(-sims, axis=1)
    return all((srt[:, p - 1] - srt[:, p] > margin).all() for p in positions if 0 < p < srt.shape[1])


# --- naive references -------------------------------------------------------------------

def naive_qe(Q, X, k, alpha):
    Q, X = unit(Q), unit(X)
    out = []
    for q in Q:
        s = X @ q
        top = np.argsort(-s, kind="stable")[:k]
        out.append(q + sum(max(s[i], 0) ** alpha * X[i] for i in top))
    return unit(out)


def naive_dba(X, k, alpha):
    X = unit(X)
    out = []
    for i, x in enumerate(X):
        s = X @ x
        s[i] = -np.inf  # the item itself; its duplicates stay
        top = np.argsort(-s, kind="stable")[:k]
        out.append(x + sum(max(s[j], 0) ** alpha * X[j] for j in top))
    return unit(out)


def naive_diffusion(Q, X, s: RefineSettings, pairs=()) -> np.ndarray:
    """Dense solve of the definition; `pairs` (database positions) are edges too
    (collaborative diffusion), at the weight max(cos, 0)^gamma."""
    Q, X = unit(Q), unit(X)
    n = len(X)
    K = X @ X.T
    np.fill_diagonal(K, -np.inf)
    k = min(s.diffusion_k, n - 1)
    edge = np.zeros((n, n), bool)
    for i in range(n):
        edge[i, np.argsort(-K[i], kind="stable")[:k]] = True
    edge &= edge.T
    for i, j in pairs:
        if i != j:
            edge[i, j] = edge[j, i] = True
    np.fill_diagonal(K, 0)
    W = np.where(edge, np.maximum(K, 0) ** s.diffusion_gamma, 0)
    deg = W.sum(1)
    dm = np.array([1 / np.sqrt(v) if v > 0 else 0.0 for v in deg])
    S = dm[:, None] * W * dm[None, :]
    Y = np.zeros((n, len(Q)))
    for j, q in enumerate(Q):
        sq = X @ q
        top = np.argsort(-sq, kind="stable")[:s.diffusion_query_k]
        Y[top, j] = np.maximum(sq[top], 0) ** s.diffusion_gamma
    return np.linalg.solve(np.eye(n) - s.diffusion_alpha * S, Y).T


def naive_graph(X, k, gamma) -> np.ndarray:
    """S = D^-1/2 W D^-1/2 of the mutual kNN graph, dense (as in naive_diffusion)."""
    X = unit(X)
    K = X @ X.T
    np.fill_diagonal(K, -np.inf)
    knn = np.zeros(K.shape, bool)
    for i in range(len(X)):
        knn[i, np.argsort(-K[i], kind="stable")[:min(k, len(X) - 1)]] = True
    np.fill_diagonal(K, 0)
    W = np.where(knn & knn.T, np.maximum(K, 0) ** gamma, 0)
    dm = np.array([1 / np.sqrt(v) if v > 0 else 0.0 for v in W.sum(1)])
    return dm[:, None] * W * dm[None, :]


def naive_truncated_rows(X, s: RefineSettings) -> np.ndarray:
    """Yang et al.'s offline rows by a dense solve per item on [i, its t - 1 nearest]."""
    X = unit(X)
    n, t = len(X), min(s.diffusion_truncation, len(X))
    S, K = naive_graph(X, s.diffusion_k, s.diffusion_gamma), X @ X.T
    L = np.zeros((n, n))
    for i in range(n):
        others = [j for j in np.argsort(-K[i], kind="stable") if j != i][:t - 1]
        T = [i] + others
        e = np.zeros(t)
        e[0] = 1
        L[i, T] = np.linalg.solve(np.eye(t) - s.diffusion_alpha * S[np.ix_(T, T)], e)
    return L


def naive_k_reciprocal(Q, X, k1, k2, lam) -> np.ndarray:
    """Zhong et al. 2017 on the dense (N, N) distance matrix of P = [Q; X], with Python
    sets, following the structure of the paper's reference code."""
    P = unit(np.vstack([Q, X]))
    N, nq = len(P), len(Q)
    dist = 2 - 2 * P @ P.T
    ranks = [[i] + [j for j in np.argsort(dist[i], kind="stable") if j != i] for i in range(N)]

    def reciprocal(i, k):
        return {j for j in ranks[i][:k + 1] if i in ranks[j][:k + 1]}

    V = np.zeros((N, N))
    for i in range(N):
        Ri = reciprocal(i, k1)
        expanded = set(Ri)
        for c in Ri:
            Rc = reciprocal(c, int(np.around(k1 / 2.0)))
            if len(Rc & Ri) > 2.0 / 3 * len(Rc):
                expanded |= Rc
        idx = sorted(expanded)
        w = np.exp(-dist[i, idx])
        V[i, idx] = w / w.sum()
    if k2 > 1:
        V = np.array([V[ranks[i][:k2]].mean(0) for i in range(N)])
    mins = np.minimum(V[:nq, None, :], V[None, :, :]).sum(-1)
    maxs = np.maximum(V[:nq, None, :], V[None, :, :]).sum(-1)
    final = (1 - lam) * (1 - mins / maxs) + lam * dist[:nq]
    return -final[:, nq:]


# --- against the references -------------------------------------------------------------

@pytest.mark.parametrize("k,alpha", [(1, 3.0), (4, 3.0), (7, 0.0), (12, 1.5), (500, 3.0)])
def test_alpha_qe_matches_naive_with_ties(k, alpha):
    Q, X = with_duplicates()
    got = alpha_qe(Q, X, k, alpha)
    np.testing.assert_allclose(got, naive_qe(Q, X, min(k, len(X)), alpha), atol=2e-5)


@pytest.mark.parametrize("k,alpha", [(1, 3.0), (2, 3.0), (5, 0.0), (10, 2.0), (500, 3.0)])
def test_dba_matches_naive_with_ties(k, alpha):
    _, X = with_duplicates(seed=2)
    np.testing.assert_allclose(dba(X, k, alpha), naive_dba(X, min(k, len(X) - 1), alpha), atol=2e-5)


def test_dba_counts_a_duplicate_but_never_the_item_itself():
    X = random_unit(10, 4, 3)
    X[7] = X[2]
    got = dba(X, 1, 3.0)
    # x2's only neighbour is its exact copy x7: x2 + 1 * x7, normalised = x2
    np.testing.assert_allclose(got[2], X[2], atol=1e-6)
    np.testing.assert_allclose(got[7], X[7], atol=1e-6)


@pytest.mark.parametrize("k,query_k,alpha,gamma", [(5, 3, 0.9, 3.0), (10, 10, 0.99, 3.0), (8, 40, 0.5, 1.0),
                                                   (200, 5, 0.8, 2.0)])
def test_diffusion_matches_dense_solve(k, query_k, alpha, gamma):
    Q, X = random_unit(7, 6, 10), random_unit(60, 6, 11)
    sx = unit(X) @ unit(X).T
    np.fill_diagonal(sx, -np.inf)
    assert top_gap_ok(sx, [k]) and top_gap_ok(unit(Q) @ unit(X).T, [query_k])  # tie-free boundaries
    s = RefineSettings(diffusion_k=k, diffusion_query_k=query_k, diffusion_alpha=alpha, diffusion_gamma=gamma,
                       diffusion_iterations=300, diffusion_tol=1e-7)
    want = naive_diffusion(Q, X, s)
    got = diffusion_scores(Q, X, s)
    # the scores carry the tie-breaker TIE_EPS * max(f) * cos (< 1e-6 of the scale)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("k,n_pairs,alpha", [(5, 30, 0.9), (1, 60, 0.99), (10, 0, 0.5)])
def test_collaborative_diffusion_matches_dense_solve(k, n_pairs, alpha):
    """Pairs include duplicates (both orders), self-pairs and pairs the kNN graph holds."""
    Q, X = random_unit(7, 6, 20), random_unit(50, 6, 21)
    sx = unit(X) @ unit(X).T
    np.fill_diagonal(sx, -np.inf)
    assert top_gap_ok(sx, [k]) and top_gap_ok(unit(Q) @ unit(X).T, [4])
    rng = np.random.default_rng(k)
    pairs = rng.integers(0, len(X), size=(n_pairs, 2))
    if n_pairs:
        pairs = np.r_[pairs, pairs[:5, ::-1], [[3, 3]], [[0, int(np.argmax(sx[0]))]]]
    s = RefineSettings(diffusion_k=k, diffusion_query_k=4, diffusion_alpha=alpha, diffusion_iterations=300,
                       diffusion_tol=1e-7)
    want = naive_diffusion(Q, X, s, pairs)
    got = diffusion_scores(Q, X, s, pairs=pairs)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=2e-5 * np.abs(want).max())
    if not n_pairs:  # no pairs = plain diffusion, bit for bit
        np.testing.assert_array_equal(got, diffusion_scores(Q, X, s))


def test_collaborative_diffusion_reaches_a_copy_only_the_pairs_know():
    """Query q's copy c sits far from q's nearest item a in CNN space (cosine ~0.3: the
    mutual kNN graph never reaches it) but a verified pair joins c to a: diffusion over
    the joined graph scores c and ranks it above every item plain diffusion leaves
    unreached; plain diffusion gives it only the cosine tie-breaker."""
    rng = np.random.default_rng(0)
    a = unit(rng.normal(size=(1, 16)))
    near = unit(a + 0.5 * rng.normal(size=(6, 16)))                  # a's CNN neighbourhood
    far = unit(rng.normal(size=(30, 16)))                              # unrelated items
    c = unit(0.35 * a + unit(rng.normal(size=(1, 16))))               # the copy
    X = np.r_[a, near, far, c].astype(np.float32)
    q = unit(a + 0.05 * rng.normal(size=(1, 16))).astype(np.float32)
    s = RefineSettings(diffusion_k=3, diffusion_query_k=1, diffusion_alpha=0.9, diffusion_iterations=100)
    copy = len(X) - 1
    plain = diffusion_scores(q, X, s)[0]
    joined = diffusion_scores(q, X, s, pairs=np.array([[0, copy]]))[0]
    unreached = plain < 1e-4 * plain.max()   # f = 0: only the tie-breaker (<= 1e-6 of the max)
    assert unreached[copy] and unreached.sum() > 10
    assert joined[copy] > 0.1 * joined.max()
    assert joined[copy] > joined[unreached & (np.arange(len(X)) != copy)].max()


@pytest.mark.parametrize("pairs,what", [(np.array([[0, 50]]), "outside the database of 50"),
                                        (np.array([[-1, 2]]), "position -1"),
                                        (np.array([0, 1, 2]), "(m, 2) integer array"),
                                        (np.array([[0.0, 1.0]]), "(m, 2) integer array")])
def test_collaborative_diffusion_rejects_bad_pairs(pairs, what):
    Q, X = random_unit(2, 4, 0), random_unit(50, 4, 1)
    with pytest.raises(PseudosupError, match=re.escape(what)):
        diffusion_scores(Q, X, RefineSettings(diffusion_k=3), pairs=pairs)


@pytest.mark.parametrize("k,trunc,alpha", [(5, 12, 0.99), (8, 30, 0.9), (3, 2, 0.5)])
def test_truncated_diffusion_rows_match_dense_local_solves(k, trunc, alpha):
    X = random_unit(60, 6, 21)
    sx = unit(X) @ unit(X).T
    np.fill_diagonal(sx, -np.inf)
    assert top_gap_ok(sx, [k, trunc - 1])   # tie-free graph and truncation boundaries
    s = RefineSettings(diffusion_k=k, diffusion_truncation=trunc, diffusion_alpha=alpha,
                       diffusion_iterations=300, diffusion_tol=1e-7)
    got = truncated_diffusion_rows(X, s).toarray()
    want = naive_truncated_rows(X, s)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5 * np.abs(want).max())
    assert ((got != 0).sum(1) <= trunc).all()


def test_truncated_diffusion_scores_are_the_weighted_rows_of_the_query_neighbours():
    Q, X = random_unit(7, 6, 22), random_unit(50, 6, 23)
    s = RefineSettings(diffusion_k=6, diffusion_truncation=15, diffusion_query_k=4, diffusion_iterations=300,
                       diffusion_tol=1e-7)
    L = naive_truncated_rows(X, s)
    want = np.zeros((len(Q), len(X)))
    for j, q in enumerate(unit(Q)):
        sq = unit(X) @ q
        top = np.argsort(-sq, kind="stable")[:4]
        want[j] = (np.maximum(sq[top], 0) ** s.diffusion_gamma) @ L[top]
    got = truncated_diffusion_scores(Q, X, s)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=2e-5 * np.abs(want).max())


def authors_offline_rows(X, kd, n_trunc, alpha=0.99, gamma=3.0):
    """Yang et al.'s offline stage as their released code computes it (fyang93/diffusion,
    diffusion.py: kNN lists of kd INCLUDING the item itself, mutual edges, sims^gamma,
    I - alpha D^-1/2 W D^-1/2, scipy CG from zero with tol 1e-6 and 20 iterations on each
    item's truncated block), written from its description with numpy and scipy."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import cg

    X = unit(X)
    n = len(X)
    K = X @ X.T
    ids = np.argsort(-K, axis=1, kind="stable")[:, :n_trunc]   # the item itself first
    sims = np.maximum(np.take_along_axis(K, ids, 1)[:, :kd], 0) ** gamma
    W = np.zeros((n, n))
    for i in range(n):
        for c in range(1, kd):   # column 0 is the item itself: never its own edge
            j = ids[i, c]
            if i in ids[j, :kd]:
                W[i, j] = sims[i, c]
    deg = W.sum(1) + 1e-12
    lap = sp.csr_matrix(np.eye(n) - alpha * (W / np.sqrt(deg)[:, None] / np.sqrt(deg)[None, :]))
    e = np.zeros(n_trunc)
    e[0] = 1
    L = np.zeros((n, n))
    for i in range(n):
        T = ids[i]
        try:
            f, _ = cg(lap[T][:, T], e, rtol=1e-6, maxiter=20)
        except TypeError:  # scipy < 1.12
            f, _ = cg(lap[T][:, T], e, tol=1e-6, maxiter=20)
        L[i, T] = f
    return L


def test_truncated_diffusion_rows_match_the_authors_code_with_their_neighbour_count():
    """Their kd = 11 list holds the item and 10 others: our diffusion_k = 10; the papers'
    20 CG iterations, not a converged solve."""
    X = random_unit(80, 5, 26)
    sx = unit(X) @ unit(X).T
    np.fill_diagonal(sx, -np.inf)
    assert top_gap_ok(sx, [10, 29])
    got = truncated_diffusion_rows(X, RefineSettings(diffusion_k=10, diffusion_truncation=30)).toarray()
    want = authors_offline_rows(X, kd=11, n_trunc=30)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_truncated_diffusion_without_truncation_is_diffusion():
    """Truncation to at least the whole database: every offline row is a column of
    (I - alpha S)^-1, so the online sum is the full diffusion solve."""
    Q, X = random_unit(5, 6, 24), random_unit(40, 6, 25)
    s = RefineSettings(diffusion_k=5, diffusion_truncation=500, diffusion_iterations=300, diffusion_tol=1e-7)
    full = diffusion_scores(Q, X, s)
    np.testing.assert_allclose(truncated_diffusion_scores(Q, X, s), full, rtol=1e-3,
                               atol=2e-5 * np.abs(full).max())


def test_diffusion_duplicate_queries_and_blocks_agree(monkeypatch):
    Q, X = random_unit(9, 6, 12), random_unit(80, 6, 13)
    Q[4] = Q[1]
    # a loose tolerance: columns converge after different numbers of iterations
    s = RefineSettings(diffusion_k=6, diffusion_iterations=100, diffusion_tol=1e-3)
    whole = diffusion_scores(Q, X, s)
    np.testing.assert_array_equal(whole[4], whole[1])
    # each column stops on its own: queries one per block get the same scores (and
    # faiss on two threads finds the same neighbours)
    monkeypatch.setattr(refine, "BLOCK_FLOATS", len(X))
    np.testing.assert_allclose(diffusion_scores(Q, X, s, threads=2), whole, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (5, 1, 0.3), (7, 3, 0.0), (4, 4, 1.0), (9, 12, 0.5)])
def test_k_reciprocal_matches_naive(k1, k2, lam):
    Q, X = random_unit(12, 8, 20), random_unit(60, 8, 21)
    P = unit(np.vstack([Q, X]))
    dist = 2 - 2 * P @ P.T
    np.fill_diagonal(dist, np.inf)
    # tie-free at the boundaries of the k1, round(k1/2) and k2 lists (own item first)
    assert top_gap_ok(-dist, [k1, int(np.around(k1 / 2)), k2 - 1])
    s = RefineSettings(kr_k1=k1, kr_k2=k2, kr_lambda=lam)
    np.testing.assert_allclose(k_reciprocal_scores(Q, X, s), naive_k_reciprocal(Q, X, k1, k2, lam), atol=2e-5)


def test_shared_minimum_is_dense_min_sum_in_any_chunking(monkeypatch):
    rng = np.random.default_rng(30)
    A = np.where(rng.random((15, 40)) < 0.2, rng.random((15, 40)), 0)
    B = np.where(rng.random((25, 40)) < 0.2, rng.random((25, 40)), 0)
    A[3] = 0  # a row without support
    want = np.minimum(A[:, None, :], B[None, :, :]).sum(-1)
    import scipy.sparse as sp
    for chunk in (1, 7, 1 << 20):
        monkeypatch.setattr(refine, "EXPAND_PAIRS", chunk)
        got = refine.shared_minimum(sp.csr_matrix(A), sp.csr_matrix(B)).toarray()
        np.testing.assert_allclose(got, want, atol=1e-12)


# --- identities -----------------------------------------------------------------------------

def test_zero_k_returns_the_input():
    Q, X = with_duplicates()
    np.testing.assert_array_equal(alpha_qe(Q, X, 0, 3.0), normalise_dense(Q))
    np.testing.assert_array_equal(dba(X, 0, 3.0), normalise_dense(X))
    # and unnormalised input comes back normalised (rows of norm 1)
    np.testing.assert_allclose(np.linalg.norm(alpha_qe(3 * Q, X, 0, 3.0), axis=1), 1, atol=1e-6)


def test_qe_weights_ignore_non_positive_similarities():
    X = np.array([[1, 0], [-1, 0], [0, 1]], np.float32)
    Q = np.array([[0.6, -0.8]], np.float32)
    # neighbours by cosine: x0 (0.6), x2 (-0.8) and x1 (-0.6); only x0 counts
    want = unit(Q + 0.6 ** 0 * X[:1])
    np.testing.assert_allclose(alpha_qe(Q, X, 3, 0.0), want, atol=1e-6)


def test_small_diffusion_alpha_is_the_truncated_initial_ranking():
    Q, X = random_unit(10, 8, 40), random_unit(300, 8, 41)
    s = RefineSettings(diffusion_alpha=1e-4, diffusion_query_k=15)
    got = diffusion_scores(Q, X, s)
    cos = Q @ X.T
    order_got, order_cos = np.argsort(-got, axis=1), np.argsort(-cos, axis=1)
    np.testing.assert_array_equal(order_got[:, :15], order_cos[:, :15])
    # f = y + O(alpha): the query's kNN similarities ^ gamma, truncated at query_k
    y = np.zeros_like(cos)
    np.put_along_axis(y, order_cos[:, :15], np.take_along_axis(cos, order_cos[:, :15], 1) ** 3, 1)
    np.testing.assert_allclose(got, y, atol=2e-4)


def test_unreached_items_are_ordered_by_cosine():
    Q, X = random_unit(5, 8, 42), random_unit(200, 8, 43)
    s = RefineSettings(diffusion_k=3, diffusion_iterations=2)  # little reach: most items get f = 0
    got = diffusion_scores(Q, X, s)
    cos = Q @ X.T
    for q in range(len(Q)):
        tail = got[q] < 1e-5 * got[q].max()
        assert tail.sum() > 100
        np.testing.assert_array_equal(np.argsort(-got[q][tail], kind="stable"), np.argsort(-cos[q][tail], kind="stable"))


# --- constructed cases ----------------------------------------------------------------------

def two_circles(m=150, nq=10, seed=0):
    """Two concentric circles (radii 1 and 1.6) in the plane z = 4, projected on the
    unit sphere: cosine sees the other circle as closer than the far side of one's own."""
    rng = np.random.default_rng(seed)

    def lift(theta, radius):
        Z = np.c_[radius * np.cos(theta), radius * np.sin(theta), np.full(len(theta), 4.0)]
        return unit(Z).astype(np.float32)
    X = lift(rng.uniform(0, 2 * np.pi, 2 * m), np.r_[np.full(m, 1.0), np.full(m, 1.6)] + rng.normal(0, 0.02, 2 * m))
    Q = lift(rng.uniform(0, 2 * np.pi, 2 * nq), np.r_[np.full(nq, 1.0), np.full(nq, 1.6)])
    return Q, X, np.repeat([0, 1], nq), np.repeat([0, 1], m)


def test_diffusion_follows_the_manifold():
    Q, X, ql, xl = two_circles()
    plain = class_map(rank_by_scores(Q @ X.T), ql, xl)[0]
    diffused = class_map(rank_by_scores(diffusion_scores(Q, X, RefineSettings(diffusion_k=10, diffusion_iterations=50))),
                         ql, xl)[0]
    assert plain < 0.7
    assert diffused > 0.99


def hub_problem(k1=20, n_a=8, n_b=25, n_far=200, d=300, seed=0):
    """Query q with true neighbours A at distance rho = 1.2 (mutually orthogonal offsets);
    a hub h at distance 1.0 (q's nearest item) whose own nearest are a group B of 25
    items at distance 0.8 (offsets orthogonal to everything), so q is not among h's
    k1 + 1 first: h is not a reciprocal neighbour of q. Offsets scaled by 0.05 around
    a common direction, plus random far items. Database order: h, A, B, far."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0].T
    e0, u = basis[0], basis[1]
    A = 1.2 * basis[2:2 + n_a]
    B = 1.0 * u + 0.8 * basis[2 + n_a:2 + n_a + n_b]
    near = e0 + 0.05 * np.vstack([np.zeros(d), u, A, B])
    return near[:1].astype(np.float32), np.vstack([near[1:], rng.standard_normal((n_far, d))]).astype(np.float32), n_a


def test_k_reciprocal_demotes_a_non_reciprocal_hub():
    Q, X, n_a = hub_problem()
    assert np.argmax(Q @ normalise_dense(X).T) == 0  # the hub is the nearest item
    order = np.argsort(-k_reciprocal_scores(Q, X, RefineSettings())[0], kind="stable")
    assert set(order[:n_a]) == set(range(1, 1 + n_a))  # the true neighbours A first
    assert list(order).index(0) >= n_a


# --- bad settings and input -------------------------------------------------------------------

@pytest.mark.parametrize("key,value", [("qe_k", -1), ("qe_alpha", -0.5), ("dba_k", 1.5), ("dba_alpha", float("nan")),
                                       ("diffusion_k", 0), ("diffusion_gamma", 0.0), ("diffusion_alpha", 1.2),
                                       ("diffusion_alpha", 1.0), ("diffusion_alpha", 0.0), ("diffusion_query_k", 0),
                                       ("diffusion_iterations", 0), ("diffusion_tol", 0.0), ("diffusion_truncation", 0), ("kr_k1", 0), ("kr_k2", 0),
                                       ("kr_lambda", 1.5), ("kr_lambda", "0.3"), ("kr_k1", True)])
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(PseudosupError, match=rf"retrieval\.refine\.{key}: "):
        RefineSettings(**{key: value})


def test_bad_function_arguments_name_the_key():
    Q, X = with_duplicates()
    with pytest.raises(PseudosupError, match=r"retrieval\.refine\.qe_k"):
        alpha_qe(Q, X, -2, 3.0)
    with pytest.raises(PseudosupError, match=r"retrieval\.refine\.dba_alpha"):
        dba(X, 3, -1.0)


@pytest.mark.parametrize("which", ["queries", "database"])
def test_non_finite_or_mismatched_input_raises(which):
    Q, X = with_duplicates()
    bad = (Q if which == "queries" else X).copy()
    bad[2, 1] = np.nan
    args = (bad, X) if which == "queries" else (Q, bad)
    for call in (lambda: alpha_qe(*args, 3, 3.0), lambda: diffusion_scores(*args, RefineSettings()),
                 lambda: truncated_diffusion_scores(*args, RefineSettings()),
                 lambda: k_reciprocal_scores(*args, RefineSettings())):
        with pytest.raises(PseudosupError, match="finite"):
            call()
    if which == "database":
        with pytest.raises(PseudosupError, match="finite"):
            dba(bad, 3, 3.0)
    with pytest.raises(PseudosupError, match="dimension"):
        diffusion_scores(Q[:, :4], X, RefineSettings())


# --- scale ------------------------------------------------------------------------------------

def test_k_reciprocal_is_sparse():
    n, nq, d = 20_000, 50, 32
    X, Q = random_unit(n, d, 50), random_unit(nq, d, 51)
    dense_bytes = (n + nq) ** 2 * 4
    tracemalloc.start()
    t0 = time.time()
    try:
        out = k_reciprocal_scores(Q, X, RefineSettings())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (nq, n) and np.isfinite(out).all()
    assert peak < dense_bytes / 10, f"peak {peak / 2**20:.0f} MB vs dense {dense_bytes / 2**20:.0f} MB"
    assert time.time() - t0 < 30
