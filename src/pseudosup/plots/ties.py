"""Ties in a Hamming ranking, for galleries: which items a top-k shows, how many
database items share the k-th distance, and which queries have top-k results that
are not all at one distance (pure functions on a distance matrix)."""

from __future__ import annotations

import numpy as np


def top_k_with_ties(dist_row: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """The k nearest positions (ties in database order, as a stable sort gives them) and
    how many database items lie at the distance of the k-th of them."""
    dist_row = np.asarray(dist_row)
    if k < 1 or dist_row.size == 0:
        raise ValueError(f"top_k_with_ties needs k >= 1 and a non-empty row (k={k}, {dist_row.size} items)")
    order = np.argsort(dist_row, kind="stable")[:k]
    return order, int(np.count_nonzero(dist_row == dist_row[order[-1]]))


def all_tied(dist_row: np.ndarray, k: int) -> bool:
    """Whether the k nearest all lie at one distance (so their order says nothing)."""
    top = np.partition(np.asarray(dist_row), min(k, len(dist_row)) - 1)[:k]
    return bool(top.min() == top.max())


def pick_gallery_queries(dist: np.ndarray, k: int, n: int) -> np.ndarray:
    """Row indices of n queries for a gallery, in row order: first those whose k nearest
    are not all at one distance; if fewer than n are, the tied ones follow (the gallery
    marks their ties). dist: queries x database distances."""
    dist = np.asarray(dist)
    if dist.ndim != 2 or dist.shape[1] == 0:
        raise ValueError(f"pick_gallery_queries needs a queries x database matrix, got shape {dist.shape}")
    tied = np.array([all_tied(row, k) for row in dist], dtype=bool)
    order = np.concatenate([np.flatnonzero(~tied), np.flatnonzero(tied)])
    return order[:n]
