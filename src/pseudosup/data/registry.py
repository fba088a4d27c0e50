"""One interface for every dataset (after faiss's contrib/datasets.py).

A dataset is a fixed, ordered list of items (images or vectors) with labels or a
ground truth. Splits (data/splits/*.json) index into that order. Each dataset says
which files make up its raw copy (with URLs and checksums) and how to read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import PseudosupError


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset's raw copy.

    `md5`/`sha256` check the file as downloaded from `urls`. `content_sha256` checks
    the decompressed payload of a gzip file: it holds for every source, including
    re-compressed copies (Debian's dataset packages re-gzip the originals).
    """

    name: str
    urls: tuple[str, ...] = ()
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    content_sha256: str | None = None


class ArrayImages:
    """An image source over an in-memory uint8 array (n, H, W[, 3])."""

    def __init__(self, images: np.ndarray, ids: list[str] | None = None):
        self.array = images
        self.ids = ids if ids is not None else [str(i) for i in range(len(images))]

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.array[i]


@dataclass
class Dataset:
    name: str
    kind: str  # "images" | "vectors"
    description: str
    homepage: str
    license: str
    files: tuple[RemoteFile, ...] = ()
    classes: tuple[str, ...] = ()
    local_dirs: tuple[str, ...] = field(default_factory=tuple)

    # --- to be provided by each dataset -------------------------------------------
    def num_items(self, raw: Path) -> int:
        raise NotImplementedError

    def labels(self, raw: Path) -> np.ndarray:
        """Class label per item (int64), in item order."""
        raise NotImplementedError

    def images(self, raw: Path) -> np.ndarray:
        """All images as uint8 (n, H, W) or (n, H, W, 3), in item order (small,
        fixed-size datasets only)."""
        raise NotImplementedError

    def image_source(self, raw: Path):
        """The images in item order as a sequence: len(src), src[i] -> uint8 array
        (H, W) grey or (H, W, 3) RGB of any size, src.ids -> item ids. Datasets of
        files (Oxford, Holidays, image folders) read lazily; this default wraps
        images()."""
        return ArrayImages(self.images(raw))


_REGISTRY: dict[str, Callable[[], Dataset]] = {}


def register(name: str):
    def deco(factory: Callable[[], Dataset]):
        _REGISTRY[name] = factory
        return factory
    return deco


def get(name: str) -> Dataset:
    _load_builtin()
    if name not in _REGISTRY:
        raise PseudosupError(f"unknown dataset '{name}'; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]()


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    # Import for the side effect of registering; kept here so `get` always sees them.
    from . import fashion_mnist  # noqa: F401
