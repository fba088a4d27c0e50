"""Reading the two kinds of feature files the mining / CIE stages take.

- dense: `<feature>.npy` (float32, one row per item, memory-mapped) + `.json` sidecar
  (pseudosup.io.save_array);
- sparse: `<feature>.bow.npz`, the bag of words of the `sift-bow` extractor
  (pseudosup.features.bow.save_bow: counts + idf), returned as TF-IDF rows,
  L2-normalised (CSR float32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import PseudosupError, load_array


def is_sparse_file(path: Path) -> bool:
    return Path(path).name.endswith(".npz")


def load_dense(path: Path) -> tuple[np.ndarray, dict]:
    X, meta = load_array(path)
    if X.ndim != 2:
        raise PseudosupError(f"{path}: expected a 2-d feature matrix, got shape {X.shape}")
    return X, meta


def load_sparse(path: Path):
    from ..features.sparse import load_bow

    if not Path(path).exists():
        raise PseudosupError(f"{path}: file not found; run the features stage (sift-bow) that writes it")
    G, _, _, meta = load_bow(path)
    return G.tocsr(), meta


def load_features(path: Path):
    """(matrix, meta, "sparse" | "dense") by file kind."""
    if is_sparse_file(path):
        G, meta = load_sparse(path)
        return G, meta, "sparse"
    X, meta = load_dense(path)
    return X, meta, "dense"


def rows(M, index: np.ndarray):
    """Rows `index` of a dense (possibly memory-mapped) or sparse matrix, in memory."""
    return M[index] if hasattr(M, "tocsr") else np.ascontiguousarray(M[index], dtype=np.float32)
