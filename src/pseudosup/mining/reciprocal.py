"""Reversible (k-reciprocal) nearest neighbours: i and j are a pair when each is among
the other's k nearest neighbours (Qin et al. 2011; "reversible NN" in the CIE papers)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def reciprocal_pairs(neighbours: np.ndarray) -> np.ndarray:
    """Pairs (i, j), i < j, sorted, from a (n, k) neighbour index array."""
    n, k = neighbours.shape
    rows = np.repeat(np.arange(n), k)
    cols = neighbours.ravel()
    valid = cols >= 0
    A = sp.csr_matrix((np.ones(valid.sum(), dtype=np.int8), (rows[valid], cols[valid])), shape=(n, n))
    both = sp.triu(A.multiply(A.T), k=1).tocoo()
    pairs = np.stack([both.row, both.col], axis=1).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def pair_stats(pairs: np.ndarray, n: int, labels: np.ndarray | None = None) -> dict:
    """Counts, coverage and (diagnostic only) label agreement of mined pairs."""
    covered = np.unique(pairs.ravel()) if len(pairs) else np.array([], dtype=np.int64)
    stats = {"num_pairs": int(len(pairs)), "items": int(n), "items_in_a_pair": int(len(covered)),
             "coverage": len(covered) / n if n else 0.0,
             "pairs_per_item": 2 * len(pairs) / n if n else 0.0}
    if labels is not None and len(pairs):
        stats["pair_precision"] = float(np.mean(labels[pairs[:, 0]] == labels[pairs[:, 1]]))
    return stats


def reversible_adjacency(neighbours: np.ndarray, weights: np.ndarray | None = None) -> sp.csr_matrix:
    """Symmetric (n, n) adjacency of the reversible pairs of a neighbour array.

    Entry (i, j) is 1, or `weights[i, col]` (e.g. a similarity) averaged over the two
    directions when weights (same shape as `neighbours`) are given."""
    n, k = neighbours.shape
    pairs = reciprocal_pairs(neighbours)
    if weights is None:
        w = np.ones(len(pairs), dtype=np.float32)
    else:
        W = sp.csr_matrix((np.asarray(weights, np.float32).ravel()[neighbours.ravel() >= 0],
                           (np.repeat(np.arange(n), k)[neighbours.ravel() >= 0], neighbours.ravel()[neighbours.ravel() >= 0])),
                          shape=(n, n))
        w = (np.asarray(W[pairs[:, 0], pairs[:, 1]]).ravel() + np.asarray(W[pairs[:, 1], pairs[:, 0]]).ravel()) / 2
    A = sp.csr_matrix((w, (pairs[:, 0], pairs[:, 1])), shape=(n, n), dtype=np.float32)
    return (A + A.T).tocsr()
