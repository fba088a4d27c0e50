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
