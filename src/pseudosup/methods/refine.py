"""Label-free refinements of dense retrieval: query expansion, database augmentation,
diffusion and k-reciprocal re-ranking.

Inputs are dense descriptors with L2-normalised rows (normalised again here): queries
Q (nq, d), database X (n, d); similarity s = cosine = inner product. Functions return
new descriptors, or a score matrix (nq, n) in which HIGHER = more similar. Neighbour
weights are w(s) = max(s, 0)^a; a neighbour with s <= 0 never contributes (also for
a = 0, where numpy's 0^0 = 1 would make it count). k larger than the database is
clipped.

- alpha-QE (Radenovic, Tolias, Chum, TPAMI 2018; average QE of Chum et al. 2007 for
  alpha = 0): q' = norm(q + sum_{i=1..k} w(s_i) x_i) over the query's top-k database
  neighbours x_i (s_i = q . x_i), alpha = 3.
- DBA, alpha-weighted (Arandjelovic & Zisserman CVPR 2012; the weighting of
  Radenovic et al. 2018): x' = norm(x + sum_{j in N_k(x)} w(x . x_j) x_j) over the top-k
  OTHER database items (an exact duplicate of x counts, x itself does not).
- Diffusion (Iscen, Tolias, Avrithis, Furon, Chum, CVPR 2017): W = the database's
  kNN graph (diffusion_k, self excluded) with weights w(s) = max(s, 0)^gamma, keeping
  only mutual edges (W_ij > 0 iff i and j are in each other's kNN; symmetric);
  S = D^-1/2 W D^-1/2 (D = row sums; a node without edges keeps a zero row);
  y_q[j] = w(q . x_j) for the query's top diffusion_query_k database items, 0
  elsewhere; scores f solve (I - alpha S) f = y. Settings of the paper: k = 50,
  gamma = 3, alpha = 0.99, query k = 10, 20 conjugate-gradient iterations.
- Collaborative diffusion (ours): the diffusion above on the CNN graph joined with the
  pairs another index mined and verified (`pairs`: database positions, e.g. the SIFT
  pairs of `mine-cross` that passed geometric verification): W = max(W_knn, W_pairs),
  W_pairs[i, j] = W_pairs[j, i] = max(x_i . x_j, 0)^gamma for each pair (i != j), so
  a pair the CNN already links keeps its weight and a pair it does not becomes an edge
  of the same scale. CIE's idea (one index's reversible neighbours teach the other)
  applied to the diffusion graph rather than to the vectors; queries are seeded by the
  CNN alone, and where queries are database items the caller drops the pairs that touch
  them (methods/cie_task.online_pairs), as in the online setting of CIE.
- Truncated diffusion (Yang, Hinami, Matsui, Ly, Satoh, AAAI 2019; the algorithm of
  their paper, `search_old` in fyang93/diffusion): offline, each database item i
  solves the system above restricted to T_i = i itself and its diffusion_truncation - 1
  nearest database items, (I - alpha S)[T_i, T_i] f_i = e_i (same graph S, same CG
  settings), and keeps f_i on T_i as a sparse row L_i; online, a query's scores are
  sum_{j in its query-k top} w(q . x_j) L_j. Truncation keeps the walk near the item
  (the "late truncation" of the paper: the graph is the full one, only the solve is
  local); with diffusion_truncation >= n it equals the diffusion above up to CG
  convergence (different right-hand sides stop at different points). Default 1,000
  (the authors'; 5,000 for 100k-image databases). Memory: about 24 n t bytes (12 GB at
  100k x 5,000). Differences from the authors' code: (1) their kNN list of kd = 50
  includes the item itself, so their graph has 49 other neighbours where diffusion_k =
  50 gives 50 (set 49 for their graph; the same convention holds for the diffusion
  above); (2) they keep only each query's top t scores, everything else unretrieved -
  here every item is ranked, those outside the sum by the cosine tie-breaker; (3) they
  weight query neighbours by s^gamma unclamped, here max(s, 0)^gamma (differs only when
  one of a query's top-k has a negative cosine); (4) each item is its own truncation
  set's first element even when an exact duplicate ties with it.
- k-reciprocal re-ranking (Zhong, Zheng, Cao, Li, CVPR 2017), on the joint set
  P = [Q; X] as in the paper's code, d(p, g) = 2 - 2 cos = squared L2 of unit
  vectors. Each item's neighbour list starts with the item itself. R(p, k1) = the j
  among p's k1 + 1 first with p among j's k1 + 1 first; R*(p) = R(p, k1) joined with
  R(c, round(k1 / 2)) for each c in R(p, k1) whose half-set has more than 2/3 of its
  elements in R(p, k1) (round half to even, as numpy's around in the paper's code);
  V_p[g] = exp(-d(p, g)) on R*(p), 0 elsewhere, normalised to sum 1; local query
  expansion V_p <- mean of V over p's k2 first (p included); Jaccard distance
  d_J(p, g) = 1 - sum_w min(V_p[w], V_g[w]) / sum_w max(V_p[w], V_g[w]); final
  d* = (1 - lambda) d_J + lambda d, k1 = 20, k2 = 6, lambda = 0.3. Unlike the paper's
  code, d is not divided by its column maxima (that needs the dense matrix; unit
  vectors already bound d to [0, 4]).

Scale: k-reciprocal is sparse throughout (V has O(k1 k2) entries per row; the sum of
minima is accumulated only over shared support, inverted-index style), so memory is
the (nq, n) output plus O((nq + n) k1 k2); diffusion keeps the sparse graph and
(n, queries) blocks of the solve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np
import scipy.sparse as sp

from ..io import PseudosupError
from ..mining.knn import normalise_dense
from ..mining.reciprocal import reversible_adjacency

KEY = "retrieval.refine"
# Diffusion tie-breaker: score = f + TIE_EPS * max_j(f_qj) * cos(q, x). Database items
# the diffusion never reaches (another component of the graph, or further than the
# number of CG iterations in hops) have f = 0 exactly and would all tie; the cosine
# orders them. Relative to the query's largest score, 1e-6 is at the CG tolerance's
# level, so it only reorders items whose diffusion scores the solve does not resolve.
TIE_EPS = 1e-6
BLOCK_FLOATS = 1 << 24     # elements of one (n, queries) CG block: 64 MB, 6 live blocks
MAX_QUERY_BLOCK = 1024
PAIR_FLOATS = 1 << 22      # gathered floats per chunk of pair cosines
EXPAND_PAIRS = 1 << 20     # (query, item, word) triples per chunk of the Jaccard expansion


@dataclass
class RefineSettings:
    """Params retrieval.refine.*; defaults = the papers' settings."""

    qe_k: int = 10                  # alpha-QE: top database neighbours added to the query
    qe_alpha: float = 3.0           # alpha-QE: weight = cosine^alpha (Radenovic et al. 2018)
    dba_k: int = 10                 # DBA: other database items added to each database vector
    dba_alpha: float = 3.0          # DBA: weight = cosine^alpha
    diffusion_k: int = 50           # diffusion: kNN of the database graph (Iscen et al. 2017)
    diffusion_gamma: float = 3.0    # diffusion: edge weight = cosine^gamma
    diffusion_alpha: float = 0.99   # diffusion: random-walk continuation, in (0, 1)
    diffusion_query_k: int = 10     # diffusion: database neighbours seeding each query
    diffusion_iterations: int = 20  # diffusion: conjugate-gradient iterations at most
    diffusion_tol: float = 1e-6     # diffusion: stop when every ||r|| / ||y|| is below this
    diffusion_truncation: int = 1000  # truncated diffusion: items of each offline solve (Yang et al. 2019)
    kr_k1: int = 20                 # k-reciprocal: k1 (Zhong et al. 2017)
    kr_k2: int = 6                  # k-reciprocal: local query expansion over k2 neighbours
    kr_lambda: float = 0.3          # k-reciprocal: weight of the original distance

    def __post_init__(self):
        for name in ("qe_k", "dba_k"):
            _check_int(name, getattr(self, name), 0)
        for name in ("diffusion_k", "diffusion_query_k", "diffusion_iterations", "diffusion_truncation", "kr_k1",
                     "kr_k2"):
            _check_int(name, getattr(self, name), 1)
        _check_number("qe_alpha", self.qe_alpha, 0, math.inf)
        _check_number("dba_alpha", self.dba_alpha, 0, math.inf)
        _check_number("diffusion_gamma", self.diffusion_gamma, 0, math.inf, low_open=True)
        _check_number("diffusion_alpha", self.diffusion_alpha, 0, 1, low_open=True, high_open=True)
        _check_number("diffusion_tol", self.diffusion_tol, 0, math.inf, low_open=True)
        _check_number("kr_lambda", self.kr_lambda, 0, 1)


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PseudosupError(f"{KEY}.{name}: {value!r} must be an integer >= {low}")
    if value < low:
        raise PseudosupError(f"{KEY}.{name}: {value} must be >= {low}")


def _check_number(name: str, value, low: float, high: float, low_open=False, high_open=False) -> None:
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open or high == math.inf else ']'}"
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:  # NaN fails every comparison; inf is excluded explicitly
        ok = (math.isfinite(value) and (value > low if low_open else value >= low)
              and (value < high if high_open else value <= high))
    if not ok:
        raise PseudosupError(f"{KEY}.{name}: {value!r} must be in {interval}")


# --- inputs, neighbours, weights ---------------------------------------------------------

def _rows(A, what: str) -> np.ndarray:
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[1] < 1:
        raise PseudosupError(f"{what}: expected a 2-d (items, dim) array, got shape {A.shape}")
    if not np.issubdtype(A.dtype, np.number) or not np.isfinite(A).all():
        raise PseudosupError(f"{what}: descriptors must be finite numbers (found NaN, inf or non-numeric)")
    return normalise_dense(A)


def _inputs(Q, X) -> tuple[np.ndarray, np.ndarray]:
    Q, X = _rows(Q, "refine: queries"), _rows(X, "refine: database")
    if len(X) < 1:
        raise PseudosupError("refine: the database is empty")
    if Q.shape[1] != X.shape[1]:
        raise PseudosupError(f"refine: queries have dimension {Q.shape[1]}, the database {X.shape[1]}")
    return Q, X


def _weights(sims: np.ndarray, power: float) -> np.ndarray:
    """max(s, 0)^power, and 0 for s <= 0 also when power = 0."""
    s = np.asarray(sims, dtype=np.float32)
    return np.where(s > 0, np.maximum(s, 0) ** np.float32(power), 0).astype(np.float32)


def _search(X: np.ndarray, Q: np.ndarray, k: int, threads: int, self_rows: bool = False):
    """(similarities, indices) of each row of Q's top-k rows of X, exact (faiss inner
    product), best first. self_rows: Q is X and each row's own index is left out (when
    a duplicate ties with the row and comes first, the last column goes instead)."""
    faiss.omp_set_num_threads(max(1, threads))
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    S, I = index.search(Q, k + int(self_rows))
    if self_rows:
        keep = I != np.arange(len(Q))[:, None]
        keep[keep.sum(1) > k, -1] = False
        S, I = S[keep].reshape(len(Q), k), I[keep].reshape(len(Q), k)
    return S, I.astype(np.int64)


def _list_matrix(I: np.ndarray, values: np.ndarray, n: int) -> sp.csr_matrix:
    """CSR (len(I), n) with row r holding values[r] at columns I[r] (no duplicates)."""
    rows, k = I.shape
    return sp.csr_matrix((np.asarray(values, np.float32).ravel(), I.ravel(), np.arange(0, rows * k + 1, k)),
                         shape=(rows, n))


# --- alpha-QE and DBA ---------------------------------------------------------------------

def alpha_qe(Q, X, k: int, alpha: float, threads: int = 1) -> np.ndarray:
    """Expanded queries norm(q + sum_{i<=k} max(s_i, 0)^alpha x_i) over each query's
    top-k database neighbours; k = 0 returns the (normalised) queries."""
    _check_int("qe_k", k, 0)
    _check_number("qe_alpha", alpha, 0, math.inf)
    Q, X = _inputs(Q, X)
    k = min(k, len(X))
    if k == 0 or len(Q) == 0:
        return Q
    S, I = _search(X, Q, k, threads)
    return normalise_dense(Q + _list_matrix(I, _weights(S, alpha), len(X)) @ X)


def dba(X, k: int, alpha: float, threads: int = 1) -> np.ndarray:
    """Database-side augmentation: x' = norm(x + sum over x's top-k other database
    items of max(s, 0)^alpha x_j); k = 0 returns the (normalised) database."""
    _check_int("dba_k", k, 0)
    _check_number("dba_alpha", alpha, 0, math.inf)
    X = _rows(X, "refine: database")
    k = min(k, len(X) - 1)
    if k <= 0:
        return X
    S, I = _search(X, X, k, threads, self_rows=True)
    # all updates read the original vectors (one simultaneous step, as in the papers)
    return normalise_dense(X + _list_matrix(I, _weights(S, alpha), len(X)) @ X)


# --- diffusion ----------------------------------------------------------------------------

def diffusion_graph(X: np.ndarray, k: int, gamma: float, threads: int = 1, pairs=None) -> sp.csr_matrix:
    """S = D^-1/2 W D^-1/2 of the mutual kNN graph of the (normalised) database rows,
    W_ij = max(s_ij, 0)^gamma, joined with the edges of `pairs` ((m, 2) database
    positions; collaborative diffusion) at the same weights; nodes without an edge keep
    a zero row."""
    n = len(X)
    k = min(k, n - 1)
    if k <= 0:
        W = sp.csr_matrix((n, n), dtype=np.float32)
    else:
        S, I = _search(X, X, k, threads, self_rows=True)
        W = reversible_adjacency(I, _weights(S, gamma))
    if pairs is not None:
        W = W.maximum(pair_graph(X, pairs, gamma)).tocsr()
    W.eliminate_zeros()
    deg = np.asarray(W.sum(axis=1), dtype=np.float64).ravel()
    inv = np.where(deg > 0, 1 / np.sqrt(np.where(deg > 0, deg, 1)), 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(inv) @ W @ sp.diags(inv), dtype=np.float32)


def check_pairs(pairs, n: int) -> np.ndarray:
    """(m, 2) int64 database positions in [0, n), or a PseudosupError saying what is wrong."""
    P = np.asarray(pairs)
    if P.ndim != 2 or P.shape[1] != 2 or (P.size and not np.issubdtype(P.dtype, np.integer)):
        raise PseudosupError(f"refine: pairs must be an (m, 2) integer array of database positions, got shape "
                             f"{P.shape} ({P.dtype})")
    if P.size and (P.min() < 0 or P.max() >= n):
        raise PseudosupError(f"refine: a pair references position {int(P.min() if P.min() < 0 else P.max())}, "
                             f"outside the database of {n} items")
    return P.astype(np.int64).reshape(-1, 2)


def pair_graph(X: np.ndarray, pairs, gamma: float) -> sp.csr_matrix:
    """Symmetric (n, n) W with W_ij = W_ji = max(x_i . x_j, 0)^gamma for each pair (i, j),
    i != j; a pair listed twice (either order) is one edge."""
    n = len(X)
    P = np.sort(check_pairs(pairs, n), axis=1)
    # one edge per unordered pair: scipy would sum the weights of repeated entries
    P = np.unique(P[P[:, 0] != P[:, 1]], axis=0)
    w = _weights(np.einsum("ij,ij->i", X[P[:, 0]], X[P[:, 1]]), gamma).astype(np.float32)
    A = sp.csr_matrix((w, (P[:, 0], P[:, 1])), shape=(n, n), dtype=np.float32)
    return (A + A.T).tocsr()


def _col_dot(A: np.ndarray, B: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Column-wise dot products, accumulated in float64 (the CG step sizes are ratios
    of them)."""
    return np.multiply(A, B, out=scratch).sum(axis=0, dtype=np.float64)


def conjugate_gradient(product, Y: np.ndarray, alpha: float, iterations: int, tol: float) -> np.ndarray:
    """F solving (I - alpha S) F = Y column by column, all columns at once (`product`
    computes S @ P for an (n, b) block). I - alpha S is symmetric positive definite for
    alpha < 1 (S's eigenvalues lie in [-1, 1]). Each column stops on its own when
    ||r|| <= tol ||y|| (its step becomes 0), so a query's scores do not depend on
    which queries share its block; a zero y gives f = 0."""
    F = np.zeros_like(Y)
    R = Y.copy()
    P = R.copy()
    T = np.empty_like(Y)  # scratch: the (n, b) blocks are updated in place
    rr = _col_dot(R, R, T)
    goal = tol * tol * rr
    for _ in range(iterations):
        active = rr > goal
        if not active.any():
            break
        AP = product(P)
        AP *= -np.float32(alpha)
        AP += P
        pap = _col_dot(P, AP, T)
        step = np.where(active & (pap > 0), rr / np.where(pap > 0, pap, 1), 0).astype(np.float32)
        F += np.multiply(P, step, out=T)
        R -= np.multiply(AP, step, out=T)
        rr_new = _col_dot(R, R, T)
        beta = np.where(active & (rr > 0), rr_new / np.where(rr > 0, rr, 1), 0).astype(np.float32)
        P *= beta
        P += R
        rr = rr_new
    return F


def diffusion_scores(Q, X, s: RefineSettings, threads: int = 1, pairs=None) -> np.ndarray:
    """Diffusion scores (nq, n), higher = more similar: f solving (I - alpha S) f = y
    (module docstring), plus the tie-breaker TIE_EPS * max(f) * cosine. With `pairs`
    (database positions), collaborative diffusion: the graph also holds those edges."""
    Q, X = _inputs(Q, X)
    n, nq = len(X), len(Q)
    S = diffusion_graph(X, s.diffusion_k, s.diffusion_gamma, threads, pairs)
    qk = min(s.diffusion_query_k, n)
    block = int(np.clip(BLOCK_FLOATS // n, 1, MAX_QUERY_BLOCK))
    out = np.empty((nq, n), dtype=np.float32)
    # `threads` is faiss's: the sparse x dense product stays on one thread (splitting S's
    # rows over two threads measured no faster on a loaded 2-core machine: memory-bound)
    for q0 in range(0, nq, block):
        Qb = Q[q0:q0 + block]
        sims, I = _search(X, Qb, qk, threads)
        Y = np.zeros((n, len(Qb)), dtype=np.float32)
        Y[I, np.arange(len(Qb))[:, None]] = _weights(sims, s.diffusion_gamma)
        f = conjugate_gradient(S.__matmul__, Y, s.diffusion_alpha, s.diffusion_iterations, s.diffusion_tol).T
        out[q0:q0 + len(Qb)] = _tie_break(f, Qb @ X.T)
    return out


def _tie_break(f: np.ndarray, cosines: np.ndarray) -> np.ndarray:
    """f + TIE_EPS * max(f) * cosine, row by row (see TIE_EPS)."""
    top = f.max(axis=1, keepdims=True)
    return f + np.float32(TIE_EPS) * np.where(top > 0, top, 1) * cosines


def truncated_diffusion_rows(X, s: RefineSettings, threads: int = 1, progress=None) -> sp.csr_matrix:
    """Yang et al.'s offline stage: CSR (n, n) whose row i is f_i solving
    (I - alpha S)[T_i, T_i] f_i = e_i on T_i = [i, its diffusion_truncation - 1 nearest
    database items], zero elsewhere (module docstring). `progress(done, total)` is
    called now and then: the n small solves are the slow part."""
    X = _rows(X, "refine: database")
    n = len(X)
    S = diffusion_graph(X, s.diffusion_k, s.diffusion_gamma, threads)
    t = min(s.diffusion_truncation, n)
    _, near = _search(X, X, t - 1, threads, self_rows=True)
    T = np.hstack([np.arange(n)[:, None], near])
    e = np.zeros((t, 1), np.float32)
    e[0] = 1
    values = np.empty((n, t), np.float32)
    for i in range(n):
        local = S[T[i]][:, T[i]]   # the full graph's edges among T_i: truncation after the graph
        values[i] = conjugate_gradient(local.__matmul__, e, s.diffusion_alpha, s.diffusion_iterations,
                                       s.diffusion_tol)[:, 0]
        if progress is not None and ((i + 1) % 1000 == 0 or i + 1 == n):
            progress(i + 1, n)
    return _list_matrix(T, values, n)


def truncated_diffusion_scores(Q, X, s: RefineSettings, threads: int = 1, progress=None) -> np.ndarray:
    """Scores (nq, n), higher = more similar: sum over the query's top diffusion_query_k
    database items x_j of w(q . x_j) L_j (Yang et al.'s online stage), plus the
    tie-breaker of diffusion_scores."""
    Q, X = _inputs(Q, X)
    n = len(X)
    L = truncated_diffusion_rows(X, s, threads, progress)
    sims, I = _search(X, Q, min(s.diffusion_query_k, n), threads)
    f = (_list_matrix(I, _weights(sims, s.diffusion_gamma), n) @ L).toarray()
    return _tie_break(f, Q @ X.T)


# --- k-reciprocal re-ranking ----------------------------------------------------------------

def _reciprocal(lists: np.ndarray) -> sp.csr_matrix:
    """0/1 CSR: (p, j) when j is in p's list and p in j's (lists hold their own item)."""
    A = _list_matrix(lists, np.ones(lists.shape, np.float32), len(lists))
    return sp.csr_matrix(A.multiply(A.T))


def _pair_cosines(P: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(len(a), dtype=np.float32)
    step = max(1, PAIR_FLOATS // P.shape[1])
    for i in range(0, len(a), step):
        out[i:i + step] = np.einsum("ij,ij->i", P[a[i:i + step]], P[b[i:i + step]])
    return out


def reciprocal_vectors(P: np.ndarray, k1: int, k2: int, threads: int = 1) -> sp.csr_matrix:
    """The rows V_p (after local query expansion) of the k-reciprocal encoding of all
    rows of P (module docstring), CSR (N, N), each row summing to 1."""
    N = len(P)
    half = min(round(k1 / 2), N - 1)  # Python's round = numpy's around: half to even
    k1, k2 = min(k1, N - 1), min(k2, N)
    K = max(k1, k2 - 1)
    lists = np.arange(N)[:, None]
    if K > 0:
        lists = np.hstack([lists, _search(P, P, K, threads, self_rows=True)[1]])
    R, Rh = _reciprocal(lists[:, :k1 + 1]), _reciprocal(lists[:, :half + 1])
    # (p, c) for c in R(p): |R(p) & Rh(c)|, kept when > 2/3 |Rh(c)| (integers: no rounding)
    overlap = sp.csr_matrix(R.multiply(R @ Rh.T)).tocoo()
    keep = 3 * np.rint(overlap.data) > 2 * np.diff(Rh.indptr)[overlap.col]
    chosen = sp.csr_matrix((np.ones(keep.sum(), np.float32), (overlap.row[keep], overlap.col[keep])), shape=(N, N))
    support = sp.csr_matrix(R + chosen @ Rh)
    support.sort_indices()
    rows = np.repeat(np.arange(N), np.diff(support.indptr))
    weight = np.exp(-(2 - 2 * _pair_cosines(P, rows, support.indices)))
    V = sp.csr_matrix((weight.astype(np.float32), support.indices, support.indptr), shape=(N, N))
    V = sp.csr_matrix(sp.diags(1 / np.asarray(V.sum(axis=1)).ravel()) @ V, dtype=np.float32)
    if k2 > 1:
        V = sp.csr_matrix(_list_matrix(lists[:, :k2], np.full((N, k2), 1 / k2, np.float32), N) @ V)
    return V


def shared_minimum(A: sp.csr_matrix, B: sp.csr_matrix) -> sp.csr_matrix:
    """sum_w min(A[p, w], B[g, w]) for every (p, g) sharing a column w, as CSR
    (len(A), len(B)); pairs without shared support are absent. Each nonzero (p, w) of
    A meets column w's entries of B (an inverted index); duplicates (p, g) are summed
    by the COO -> CSR conversion. Rows of A go in chunks of about EXPAND_PAIRS."""
    A, Bc = sp.csr_matrix(A), sp.csc_matrix(B)
    Bc.sort_indices()
    reach = np.diff(Bc.indptr)[A.indices]            # expansion of each nonzero of A
    before = np.concatenate([[0], np.cumsum(reach)])[A.indptr]  # expansion before each row
    row_of = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    parts, r0 = [], 0
    while r0 < A.shape[0]:
        r1 = max(r0 + 1, int(np.searchsorted(before, before[r0] + EXPAND_PAIRS, side="right")) - 1)
        r1 = min(r1, A.shape[0])
        nz = np.arange(A.indptr[r0], A.indptr[r1])
        counts = reach[nz]
        src = np.repeat(nz, counts)
        first = np.repeat(Bc.indptr[A.indices[nz]] - (np.cumsum(counts) - counts), counts)
        at = first + np.arange(len(src))
        vals = np.minimum(A.data[src], Bc.data[at])
        parts.append(sp.csr_matrix((vals, (row_of[src] - r0, Bc.indices[at])), shape=(r1 - r0, B.shape[0])))
        r0 = r1
    return sp.csr_matrix(sp.vstack(parts)) if parts else sp.csr_matrix((0, B.shape[0]), dtype=np.float32)


def k_reciprocal_scores(Q, X, s: RefineSettings, threads: int = 1) -> np.ndarray:
    """-d* (nq, n) of k-reciprocal re-ranking on P = [Q; X] (module docstring); pairs
    sharing no support have d_J = 1, so they keep the order of the original distance."""
    Q, X = _inputs(Q, X)
    nq = len(Q)
    V = reciprocal_vectors(np.vstack([Q, X]), s.kr_k1, s.kr_k2, threads)
    Vq, Vg = V[:nq], V[nq:]
    lam = np.float32(s.kr_lambda)
    # -d* = -(lambda d + (1 - lambda) d_J), d_J = 1 - m / (sum V_p + sum V_g - m)
    out = lam * (2 * (Q @ X.T) - 2) - (1 - lam)
    m = shared_minimum(Vq, Vg).tocoo()
    sum_q, sum_g = np.asarray(Vq.sum(axis=1)).ravel(), np.asarray(Vg.sum(axis=1)).ravel()
    out[m.row, m.col] += (1 - lam) * (m.data / (sum_q[m.row] + sum_g[m.col] - m.data))
    return out.astype(np.float32, copy=False)
