"""Hashers by name (params.yaml `methods.<name>.hasher`)."""

from __future__ import annotations

from typing import Callable

from ..io import PseudosupError

HASHERS: dict[str, Callable] = {}


def register(name: str):
    def deco(cls):
        HASHERS[name] = cls
        cls.name = name
        return cls
    return deco


def get(name: str):
    _load_builtin()
    if name not in HASHERS:
        raise PseudosupError(f"unknown hasher '{name}'; registered: {sorted(HASHERS)}")
    return HASHERS[name]


def names() -> list[str]:
    _load_builtin()
    return sorted(HASHERS)


def _load_builtin() -> None:
    from .hashing import dsrh, itq, ldph, ldph_nn, lsh, pcah, sh  # noqa: F401
