"""PCA hashing: the sign of the top principal components (Wang, Kumar & Chang 2010)."""

from __future__ import annotations

import numpy as np

from ..registry import register
from .base import LinearHasher, pca


@register("pcah")
class PCAH(LinearHasher):
    needs_pca = True

    def _fit(self, X: np.ndarray) -> None:
        self.mean, self.W = pca(X, self.bits)
