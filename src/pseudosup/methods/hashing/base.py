"""Linear hashers: code = sign((x - mean) @ W). LSH, PCAH and ITQ are all of this form."""

from __future__ import annotations

import numpy as np

from ... import codes as C
from ...io import PseudosupError


def check_training_data(X: np.ndarray, bits: int, needs_pca: bool, what: str = "training features") -> None:
    """Clear errors before any work on data a linear hasher cannot use."""
    if X.ndim != 2 or len(X) == 0:
        raise PseudosupError(f"{what}: expected a non-empty 2-D array, got shape {X.shape}")
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=0))
        raise PseudosupError(f"{what}: NaN or infinite values in columns {bad[:10].tolist()}")
    if needs_pca and bits > X.shape[1]:
        raise PseudosupError(f"{bits} bits need PCA to {bits} dimensions but the features have "
                             f"only {X.shape[1]}; use at most {X.shape[1]} bits")
    if needs_pca and bits > len(X):
        raise PseudosupError(f"{bits} bits need at least {bits} training items, got {len(X)}")


# Rows per float64 block. Training sets reach 500,000 x 960 (GIST-1M's learn set, 1.9 GB
# as float32): a float64 copy, its centred copy and np.cov's own would hold 11.5 GB.
CHUNK = 65_536


def column_mean(X: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Column means in float64, summed block by block (X stays in its own dtype)."""
    total = np.zeros(X.shape[1])
    for i in range(0, len(X), chunk):
        total += np.asarray(X[i:i + chunk], dtype=np.float64).sum(axis=0)
    return total / len(X)


def project(X: np.ndarray, mean: np.ndarray, W: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """(X - mean) @ W in float64, block by block: memory of the result, not of a copy of X."""
    out = np.empty((len(X), W.shape[1]))
    for i in range(0, len(X), chunk):
        out[i:i + chunk] = (np.asarray(X[i:i + chunk], dtype=np.float64) - mean) @ W
    return out


def pca(X: np.ndarray, k: int, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top-k principal directions (d, k), by eigen-decomposition of the
    covariance in float64, accumulated block by block (columns ordered by decreasing
    variance, sign fixed so the largest-magnitude entry is positive, for run-to-run
    stability)."""
    mean = column_mean(X, chunk)
    d = X.shape[1]
    scatter = np.zeros((d, d))
    for i in range(0, len(X), chunk):
        block = np.asarray(X[i:i + chunk], dtype=np.float64) - mean
        scatter += block.T @ block
    cov = scatter / max(len(X) - 1, 1)
    vals, vecs = np.linalg.eigh(np.atleast_2d(cov))
    order = np.argsort(vals)[::-1][:k]
    W = vecs[:, order]
    signs = np.sign(W[np.abs(W).argmax(axis=0), np.arange(W.shape[1])])
    return mean, W * np.where(signs == 0, 1, signs)


class LinearHasher:
    name = "linear"
    needs_pca = False

    def __init__(self, bits: int, params: dict | None = None, seed: int = 0):
        self.bits = int(bits)
        self.params = dict(params or {})
        self.seed = int(seed)
        self.mean: np.ndarray | None = None
        self.W: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> "LinearHasher":
        check_training_data(X, self.bits, self.needs_pca)
        self._fit(X)   # in its own dtype: the hashers convert block by block (pca, project)
        return self

    def _fit(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def project(self, X: np.ndarray) -> np.ndarray:
        if self.W is None:
            raise PseudosupError(f"{self.name}: model is not fitted")
        if X.shape[1] != self.W.shape[0]:
            raise PseudosupError(f"{self.name}: features have {X.shape[1]} dimensions, "
                                 f"the model expects {self.W.shape[0]}")
        return project(X, self.mean, self.W)

    def encode(self, X: np.ndarray, batch: int = 65536) -> np.ndarray:
        """Packed codes (n, ceil(bits/8)) uint8; streams over X in batches."""
        out = np.empty((len(X), -(-self.bits // 8)), dtype=np.uint8)
        for i in range(0, len(X), batch):
            out[i:i + batch] = C.pack(self.project(X[i:i + batch]) > 0)
        return out

    # self-describing model files ------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "W": self.W}

    @classmethod
    def from_arrays(cls, bits: int, params: dict, seed: int, arrays: dict) -> "LinearHasher":
        model = cls(bits, params, seed)
        model.mean, model.W = arrays["mean"], arrays["W"]
        return model
