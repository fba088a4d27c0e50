"""pseudosup: pseudo-supervised learning for image search, as one reproducible pipeline."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def code_digest() -> str:
    """Short sha256 over the package's source files.

    Recorded in every model and feature sidecar instead of a git commit: it is the
    same for the same code on every machine, so identical inputs give identical
    artifacts, and it still tells which code produced a file.
    """
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def code_version() -> str:
    return f"{__version__}+{code_digest()}"
