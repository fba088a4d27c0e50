"""Hashing model files: rebuild a hasher from its file, and what it encodes.

A model file (.npz, written by the train stage) holds the method, its params, the code
length, the seed, the arrays that define the hash function and `encodes` (features or
images); any hasher of `methods.registry` can be rebuilt from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..io import PseudosupError, load_npz


def load_model(path: Path):
    """(hasher, meta): the registered hasher rebuilt from its model file."""
    from . import registry

    meta, arrays = load_npz(path)
    cls = registry.get(meta["hasher"])
    return cls.from_arrays(meta["bits"], meta["params"], meta["seed"], arrays), meta


def model_inputs(meta: dict, X, q, db, images: Callable[[], np.ndarray] | None = None,
                 model: object = "the model", features: object = "the features"):
    """What a model encodes for the queries `q` and the database `db` (item indices):
    the rows of the features `X`, or the items' images for image hashers.

    `images` returns the dataset's images (one per item; called only for image hashers);
    `model` and `features` name the two files in errors."""
    if meta.get("encodes", "features") == "images":
        if images is None:
            raise PseudosupError(f"{model}: the model encodes images; give the dataset (--dataset, --raw)")
        all_images = images()
        return all_images[q], all_images[db]
    if meta.get("dim") is not None and meta["dim"] != X.shape[1]:
        raise PseudosupError(f"{model}: trained on {meta['dim']}-d features, {features} has {X.shape[1]}")
    return np.asarray(X[q]), np.asarray(X[db])
