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
        """All images as uint8 (n, H, W) or (n, H, W, 3), in item order."""
        raise NotImplementedError


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
