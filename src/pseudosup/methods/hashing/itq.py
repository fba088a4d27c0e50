"""Iterative quantization (Gong & Lazebnik, CVPR 2011).

PCA to `bits` dimensions, then alternate: codes B = sign(V R); rotation R = the
orthogonal Procrustes solution of min ||B - V R||_F (SVD of V^T B). The initial
rotation is a seeded random orthogonal matrix, as in the authors' code.
"""

from __future__ import annotations

import numpy as np

from ..registry import register
from .base import LinearHasher, pca, project


@register("itq")
class ITQ(LinearHasher):
    needs_pca = True

    def _fit(self, X: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        n_iter = int(self.params.get("n_iter", 50))
        train_size = self.params.get("train_size")
        if train_size and train_size < len(X):
            X = X[np.sort(rng.choice(len(X), train_size, replace=False))]
        mean, P = pca(X, self.bits)
        V = project(X, mean, P)
        R = rotation_itq(V, n_iter, rng)
        self.mean, self.W = mean, P @ R


def rotation_itq(V: np.ndarray, n_iter: int, rng: np.random.Generator) -> np.ndarray:
    k = V.shape[1]
    R, _ = np.linalg.qr(rng.standard_normal((k, k)))
    for _ in range(n_iter):
        B = np.where(V @ R >= 0, 1.0, -1.0)
        U, _, Wt = np.linalg.svd(V.T @ B)
        R = U @ Wt
    return R
