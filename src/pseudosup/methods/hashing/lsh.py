"""Locality-sensitive hashing by random hyperplanes (Charikar 2002)."""

from __future__ import annotations

import numpy as np

from ..registry import register
from .base import LinearHasher, column_mean


@register("lsh")
class LSH(LinearHasher):
    def _fit(self, X: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        center = self.params.get("center", True)
        self.mean = column_mean(X) if center else np.zeros(X.shape[1])
        self.W = rng.standard_normal((X.shape[1], self.bits))
