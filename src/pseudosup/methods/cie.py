"""Collaborative Index Embedding (CIE; Zhou, Li, Sun, Tian, TPAMI 2017).

Two indexes describe the same images: a SIFT bag-of-words inverted index G (sparse,
TF-IDF, rows L2-normalised) and a CNN index X (dense, rows L2-normalised). CIE makes
their neighbourhood structures agree, alternating T times:

1. SIFT -> CNN: with R_s the reversible (k-reciprocal) pairs of G,
   x_i <- normalise(x_i + alpha * sum_{j in R_s(i)} w_ij x_j);
2. CNN -> SIFT: with R_c the reversible pairs of the updated X, every word of a
   neighbour that image i lacks enters i's vector (METHODS.md, slide rule):
   g_i[w] <- g_i[w] + beta * sum_{l in R_c(i)} w_il g_l[w]   only where g_i[w] == 0,
   non-zero entries stay; then normalise.

w = 1 (``weighting: binary``) or the pair's cosine similarity in the space that found
it (``similarity``, the default). The next iteration's SIFT graph is computed on the
embedded G, so each space keeps learning from the other. Online search then uses the
embedded CNN index only (4 d bytes per image instead of d floats *plus* an inverted
index).

Graphs: exact sparse kNN (`mining.knn.sparse_knn`) and the dense kNN of
`mining.knn.build_knn` (exact below a size threshold, approximate above) on every
iteration (``candidates: 0``); or, for large collections, the first iteration's lists
of `candidates` neighbours in *both* spaces become each item's candidate set and the
later graphs re-rank it exactly (``candidates > 0``; its agreement with the
exhaustive graphs is measured in benchmarks/bench_cie.py).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..io import PseudosupError
from ..log import log
from ..mining.knn import (
    KnnSettings,
    build_knn,
    check_sparse_rows,
    dense_block_score,
    normalise_dense,
    rerank_knn,
    sparse_knn,
)
from ..mining.reciprocal import reversible_adjacency

WEIGHTINGS = ("similarity", "binary")


@dataclass
class CIESettings:
    k: int = 10
    iterations: int = 3
    alpha: float = 0.5         # dense (CNN) update strength
    beta: float = 0.5          # sparse (SIFT) update strength
    weighting: str = "similarity"
    candidates: int = 0        # 0: exhaustive graphs every iteration; > 0: re-rank candidate lists
    max_words: int = 0         # 0: no cap; > 0: keep each image's max_words largest BoW weights per iteration
    sparse_batch: int = 256
    knn: KnnSettings = field(default_factory=KnnSettings)

    def __post_init__(self):
        if self.k < 1:
            raise PseudosupError(f"cie.k: {self.k} must be at least 1")
        if self.iterations < 0:
            raise PseudosupError(f"cie.iterations: {self.iterations} must be >= 0")
        if self.alpha < 0 or self.beta < 0:
            raise PseudosupError(f"cie.alpha / cie.beta must be >= 0 (got {self.alpha}, {self.beta})")
        if self.weighting not in WEIGHTINGS:
            raise PseudosupError(f"cie.weighting: '{self.weighting}' is not one of {list(WEIGHTINGS)}")
        if self.max_words < 0:
            raise PseudosupError(f"cie.max_words: {self.max_words} must be >= 0 (0 = no cap)")
        if 0 < self.candidates < self.k:
            raise PseudosupError(f"cie.candidates: {self.candidates} must be 0 or >= cie.k ({self.k})")


@dataclass
class CIEResult:
    X: np.ndarray              # embedded CNN index (n, d), rows L2-normalised
    G: sp.csr_matrix           # embedded BoW (kept for diagnostics; not needed online)
    history: list[dict]


def normalise_rows(G: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(G.multiply(G).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-30), 0)) @ G, dtype=np.float32)


def check_inputs(G, X) -> tuple[sp.csr_matrix, np.ndarray]:
    """Clear errors before any work: aligned rows, finite values, L2-normalised BoW."""
    if not sp.issparse(G):
        raise PseudosupError("CIE: the SIFT side must be a sparse bag-of-words matrix")
    X = np.asarray(X)
    if X.ndim != 2 or G.shape[0] != X.shape[0]:
        raise PseudosupError(f"CIE: the SIFT bag of words has {G.shape[0]} rows and the CNN features "
                             f"{X.shape[0] if X.ndim == 2 else X.shape}; both need one row per image, same order")
    if not np.isfinite(X).all():
        raise PseudosupError("CIE: the CNN features contain NaN or inf")
    return check_sparse_rows(G), normalise_dense(X)


def _weights(D: np.ndarray, weighting: str) -> np.ndarray | None:
    """Pair weights from graph distances (2 - 2 cos): the cosine, clipped at 0."""
    return None if weighting == "binary" else np.clip(1 - np.where(np.isfinite(D), D, 2) / 2, 0, None)


def dense_update(X: np.ndarray, A: sp.csr_matrix, alpha: float) -> np.ndarray:
    """x_i <- normalise(x_i + alpha sum_j A_ij x_j)."""
    return normalise_dense(X + alpha * (A @ X))


def sparse_update(G: sp.csr_matrix, A: sp.csr_matrix, beta: float) -> sp.csr_matrix:
    """g_i[w] += beta sum_l A_il g_l[w] where g_i[w] == 0 (non-zero entries stay), then normalise."""
    M = sp.csr_matrix(A @ G)
    support = G.copy()
    support.data = np.ones_like(support.data)
    new = M - M.multiply(support)  # keep only the words image i does not have
    new.eliminate_zeros()
    return normalise_rows(G + beta * new)


def sparse_pair_sim(G: sp.csr_matrix, threads: int = 1):
    """Cosine of (i, j) item pairs of a row-normalised CSR matrix: element-wise
    products of the gathered rows, summed, in chunks on `threads` threads (scipy
    releases the GIL)."""
    def chunk(i, j):
        return np.asarray(G[i].multiply(G[j]).sum(axis=1), dtype=np.float32).ravel()

    def sim(i, j):
        i, j = np.asarray(i), np.asarray(j)
        starts = range(0, len(i), 32768)
        with ThreadPoolExecutor(max(1, threads)) as pool:
            parts = list(pool.map(lambda s0: chunk(i[s0:s0 + 32768], j[s0:s0 + 32768]), starts))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return sim


def cap_row_nnz(G: sp.csr_matrix, m: int) -> sp.csr_matrix:
    """Keep the m largest entries of every row (ties by column), then renormalise."""
    G = sp.csr_matrix(G)
    lens = np.diff(G.indptr)
    if m <= 0 or lens.max(initial=0) <= m:
        return G
    G.sort_indices()
    rows = np.repeat(np.arange(G.shape[0]), lens)
    # one float64 key: row, then weight descending (weights are in [0, 1]); the stable
    # sort keeps column order among equal weights
    order = np.argsort(rows + (1.0 - G.data.astype(np.float64)) * 0.5, kind="stable")
    rank = np.arange(len(order)) - G.indptr[rows[order]]
    keep = np.sort(order[rank < m])
    out = sp.csr_matrix((G.data[keep], (rows[keep], G.indices[keep])), shape=G.shape, dtype=np.float32)
    return normalise_rows(out)


def _graph_stats(name: str, A: sp.csr_matrix) -> dict:
    deg = np.diff(A.indptr)
    return {f"{name}_pairs": int(A.nnz // 2), f"{name}_coverage": float((deg > 0).mean())}


def embed(G, X, s: CIESettings, threads: int = 1, callback=None) -> CIEResult:
    """Run CIE; `callback(t, X, G)` (if given) is called after each iteration t = 1..T
    and once before (t = 0) and its returned dict is merged into the history."""
    G, X = check_inputs(G, X)
    n = X.shape[0]
    history = [{"iteration": 0, "nnz_per_image": G.nnz / n, **(callback(0, X, G) if callback else {})}]
    cand = None
    if s.candidates:
        t0 = time.time()
        K = min(s.candidates, n - 1)
        Ds0, Is0 = sparse_knn(G, K, s.sparse_batch, threads)
        g0 = build_knn(X, K, "l2", s.knn, threads)
        cand = np.hstack([Is0, g0.indices])
        history[0].update(candidate_seconds=round(time.time() - t0, 2), dense_knn=g0.info)
    for t in range(1, s.iterations + 1):
        t0 = time.time()
        # 1. SIFT graph -> pull CNN vectors together
        if cand is None:
            Ds, Is = sparse_knn(G, s.k, s.sparse_batch, threads)
        elif t == 1:
            Ds, Is = Ds0[:, :s.k], Is0[:, :s.k]
        else:
            Ds, Is = rerank_knn(cand, s.k, sparse_pair_sim(G, threads))
        A_s = reversible_adjacency(Is, _weights(Ds, s.weighting))
        if A_s.nnz == 0:
            raise PseudosupError(f"CIE iteration {t}: no reversible pairs in the SIFT space with k={s.k}; "
                                 "increase cie.k")
        X = dense_update(X, A_s, s.alpha)
        # 2. CNN graph (of the updated vectors) -> enrich the bag of words
        if cand is None:
            g = build_knn(X, s.k, "l2", s.knn, threads)
            Dc, Ic, info = g.distances, g.indices, g.info
        else:
            Dc, Ic = rerank_knn(cand, s.k, None, max(64, (1 << 24) // (cand.shape[1] * X.shape[1])),
                                score_block=dense_block_score(X))
            info = {"index": "re-ranked candidates", "candidates": int(cand.shape[1])}
        A_c = reversible_adjacency(Ic, _weights(Dc, s.weighting))
        G = cap_row_nnz(sparse_update(G, A_c, s.beta), s.max_words)
        rec = {"iteration": t, **_graph_stats("sift", A_s), **_graph_stats("cnn", A_c),
               "pairs_in_both": int(A_s.multiply(A_c).nnz // 2), "nnz_per_image": G.nnz / n,
               "dense_knn": {k: v for k, v in info.items() if k in ("index", "recall_at_k", "nprobe", "candidates")},
               "seconds": round(time.time() - t0, 2)}
        if callback:
            rec.update(callback(t, X, G))
        history.append(rec)
        log.info("CIE iteration %d: %d SIFT pairs, %d CNN pairs (%d in both), %.0f words/image, %.1f s",
                 t, rec["sift_pairs"], rec["cnn_pairs"], rec["pairs_in_both"], rec["nnz_per_image"], rec["seconds"])
    return CIEResult(X, G, history)


def bytes_per_image(kind: str, n: int, dim: int = 0, nnz: int = 0) -> float:
    """Index storage per image: dense float32 = 4 d; inverted index = 8 bytes per posting
    (int32 image id + float32 weight)."""
    if kind == "dense":
        return 4.0 * dim
    if kind == "sparse":
        return 8.0 * nnz / max(n, 1)
    raise PseudosupError(f"unknown index kind '{kind}'")
