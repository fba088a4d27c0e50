"""Raw pixels scaled to [0, 1], flattened (the weakest baseline)."""

from __future__ import annotations

import numpy as np


def extract(images: np.ndarray, batch: int = 8192) -> np.ndarray:
    n = len(images)
    out = np.empty((n, int(np.prod(images.shape[1:]))), dtype=np.float32)
    for i in range(0, n, batch):
        out[i:i + batch] = images[i:i + batch].reshape(min(batch, n - i), -1) / np.float32(255.0)
    return out
