"""k-nearest-neighbour graphs of a set of vectors with faiss (exact, batched)."""

from __future__ import annotations

import faiss
import numpy as np

from ..log import progress


def knn_graph(X: np.ndarray, k: int, metric: str = "l2", batch: int = 4096, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest neighbours of every row of X among the other rows.

    Returns (distances, indices), both (n, k); self-matches are removed (also when
    duplicates of a point make it not come first). metric "cosine" L2-normalises
    first (so L2 ranking = cosine ranking).
    """
    faiss.omp_set_num_threads(threads)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if metric == "cosine":
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    n = len(X)
    k_eff = min(k, n - 1)
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    D = np.empty((n, k_eff), dtype=np.float32)
    I = np.empty((n, k_eff), dtype=np.int64)
    for i in progress(range(0, n, batch), desc=f"exact {k}-NN", total=-(-n // batch)):
        d, idx = index.search(X[i:i + batch], k_eff + 1)
        D[i:i + batch], I[i:i + batch] = _drop_self(d, idx, np.arange(i, min(i + batch, n)), k_eff)
    return D, I


def _drop_self(d: np.ndarray, idx: np.ndarray, rows: np.ndarray, k: int):
    keep = idx != rows[:, None]
    # rows that never saw themselves (ties with duplicates) drop their last column
    keep[keep.sum(1) > k, -1] = False
    return d[keep].reshape(len(rows), k), idx[keep].reshape(len(rows), k)
