"""Spectral hashing (Weiss, Torralba & Fergus, NIPS 2008).

Assume the data (after PCA to min(bits, d) directions) is uniform in its bounding box;
the eigenfunctions of the Laplacian of a box are products of 1-D sinusoids
    Phi_k(x) = prod_j sin(pi/2 + k_j pi (x_j - min_j) / (max_j - min_j)),
one non-zero frequency k_j per mode in the analytic form; their eigenvalues grow with
sum_j (k_j / range_j)^2. Bit i = sign of the i-th smallest-eigenvalue eigenfunction
(the constant mode excluded). Only single-direction modes are used, as in the
authors' code: candidate modes are k = 1..K_j along each direction j, with K_j
proportional to the range of direction j.
"""

from __future__ import annotations

import numpy as np

from ... import codes as C
from ...io import PseudosupError
from ..registry import register
from .base import check_training_data, pca, project


@register("sh")
class SH:
    name = "sh"

    def __init__(self, bits: int, params: dict | None = None, seed: int = 0):
        self.bits = int(bits)
        self.params = dict(params or {})
        self.seed = int(seed)
        self.arrays_: dict[str, np.ndarray] = {}

    def fit(self, X: np.ndarray) -> "SH":
        check_training_data(X, self.bits, needs_pca=False)
        npca = min(self.bits, X.shape[1], len(X))
        mean, P = pca(X, npca)
        V = project(X, mean, P)
        eps = float(self.params.get("eps", 1e-10))
        lo, hi = V.min(axis=0) - eps, V.max(axis=0) + eps
        self.arrays_ = {"mean": mean, "P": P, "lo": lo, "hi": hi, "modes": _modes(hi - lo, self.bits)}
        return self

    def project(self, X: np.ndarray) -> np.ndarray:
        """Eigenfunction values (n, bits); the code is their sign."""
        if not self.arrays_:
            raise PseudosupError("sh: model is not fitted")
        a = self.arrays_
        if X.shape[1] != a["P"].shape[0]:
            raise PseudosupError(f"sh: features have {X.shape[1]} dimensions, the model expects {a['P'].shape[0]}")
        V = (np.asarray(X, dtype=np.float64) - a["mean"]) @ a["P"] - a["lo"]
        omega = a["modes"] * (np.pi / (a["hi"] - a["lo"]))[None, :]  # (bits, npca)
        out = np.ones((len(V), self.bits))
        # product over directions of sin(pi/2 + omega x); a direction a mode does not use
        # contributes sin(pi/2) = 1.0 exactly, so only the (mode, direction) pairs with a
        # non-zero frequency are computed: the same values, bits x fewer sines (SIFT-1M at
        # 128 bits: 270 s -> a few seconds to encode the base)
        for j in np.flatnonzero((omega != 0).any(axis=0)):
            cols = np.flatnonzero(omega[:, j])
            out[:, cols] *= np.sin(np.pi / 2 + V[:, j:j + 1] * omega[None, cols, j])
        return out

    def encode(self, X: np.ndarray, batch: int = 65536) -> np.ndarray:
        out = np.empty((len(X), -(-self.bits // 8)), dtype=np.uint8)
        for i in range(0, len(X), batch):
            out[i:i + batch] = C.pack(self.project(np.asarray(X[i:i + batch])) > 0)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.arrays_)

    @classmethod
    def from_arrays(cls, bits: int, params: dict, seed: int, arrays: dict) -> "SH":
        model = cls(bits, params, seed)
        model.arrays_ = {k: np.asarray(arrays[k]) for k in ("mean", "P", "lo", "hi", "modes")}
        return model


def _modes(ranges: np.ndarray, bits: int) -> np.ndarray:
    """The `bits` single-direction modes with the smallest eigenvalues, (bits, npca)
    integer frequencies (one non-zero entry per row)."""
    max_mode = np.ceil((bits + 1) * ranges / ranges.max()).astype(int)
    rows = [np.zeros(len(ranges))]  # the constant mode, dropped below
    for j, m in enumerate(max_mode):
        for k in range(1, m):
            row = np.zeros(len(ranges))
            row[j] = k
            rows.append(row)
    modes = np.array(rows)
    eig = ((modes * (np.pi / ranges)[None, :]) ** 2).sum(axis=1)
    order = np.argsort(eig, kind="stable")
    chosen = modes[order[1:bits + 1]]
    if len(chosen) < bits:
        raise PseudosupError(f"sh: only {len(chosen)} modes for {bits} bits; the data has too few varying directions")
    return chosen
