"""Pair selection across two feature spaces (e.g. SIFT bag-of-words and CNN).

Pairs are reversible (k-reciprocal) neighbours in a *source* space; the *target*
space scores them (its cosine similarity and the pair's rank in the target kNN
lists), and a mode selects which to keep:

- ``source``: every reversible pair of the source space (the target only scores);
- ``agree``: reversible in both spaces (the intersection: fewer, more precise pairs);
- ``complement``: reversible in the source but *not* among the target's k nearest
  neighbours in either direction: what the target space misses, the pairs that
  teach it something (the "complementary" supervision), optionally capped by
  ``max_target_rank``.

Negatives for a pair's anchor come from far target-space neighbours (see
`far_negatives`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io import PseudosupError
from .reciprocal import reciprocal_pairs

MODES = ("source", "agree", "complement")


@dataclass
class MinedPairs:
    pairs: np.ndarray          # (P, 2) int64, i < j, sorted
    source_sim: np.ndarray     # (P,) cosine in the source space
    target_sim: np.ndarray     # (P,) cosine in the target space
    target_rank: np.ndarray    # (P,) max over both directions of the 1-based rank in the target kNN list; K+1 = beyond
    target_reversible: np.ndarray  # (P,) bool: also a reversible pair in the target space

    def arrays(self) -> dict[str, np.ndarray]:
        return {"pairs": self.pairs, "source_sim": self.source_sim, "target_sim": self.target_sim,
                "target_rank": self.target_rank, "target_reversible": self.target_reversible}

    def select(self, keep: np.ndarray) -> "MinedPairs":
        return MinedPairs(*(a[keep] for a in (self.pairs, self.source_sim, self.target_sim,
                                              self.target_rank, self.target_reversible)))


def check_aligned(n_source: int, n_target: int, what: str = "features") -> None:
    if n_source != n_target:
        raise PseudosupError(f"{what}: the two feature spaces describe {n_source} and {n_target} items; "
                             "both must have one row per item in the same order (extract them from the same dataset)")


def _rank_in_lists(neighbours: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1-based position of b[p] in neighbours[a[p]] (K + 1 when absent)."""
    hit = neighbours[a] == b[:, None]
    K = neighbours.shape[1]
    return np.where(hit.any(1), hit.argmax(1) + 1, K + 1)


def cross_space_pairs(source_nbrs: np.ndarray, target_nbrs: np.ndarray, source_sim_fn, target_sim_fn,
                      mode: str = "source", k: int | None = None, max_target_rank: int | None = None) -> MinedPairs:
    """Reversible pairs of the source space (using its first k neighbours), scored in the target.

    `*_sim_fn(i, j)` returns the cosine similarity of item pairs (1-d arrays). Raises
    when no pair survives (e.g. k too small), before any further work is done.
    """
    if mode not in MODES:
        raise PseudosupError(f"mining.cross.mode: '{mode}' is not one of {list(MODES)}")
    check_aligned(len(source_nbrs), len(target_nbrs), "neighbour lists")
    k = k or source_nbrs.shape[1]
    pairs = reciprocal_pairs(source_nbrs[:, :k])
    if len(pairs) == 0:
        raise PseudosupError(f"no reversible pairs among {len(source_nbrs)} items with k={k}: "
                             "increase mining.k (each item must be among its neighbour's k nearest)")
    i, j = pairs[:, 0], pairs[:, 1]
    tk = target_nbrs[:, :k]
    rank = np.maximum(_rank_in_lists(target_nbrs, i, j), _rank_in_lists(target_nbrs, j, i))
    t_rev = (_rank_in_lists(tk, i, j) <= k) & (_rank_in_lists(tk, j, i) <= k)
    mined = MinedPairs(pairs, np.asarray(source_sim_fn(i, j), np.float32), np.asarray(target_sim_fn(i, j), np.float32),
                       rank.astype(np.int32), t_rev)
    if mode == "agree":
        keep = t_rev
    elif mode == "complement":
        in_topk = (_rank_in_lists(tk, i, j) <= k) | (_rank_in_lists(tk, j, i) <= k)
        keep = ~in_topk
    else:
        keep = np.ones(len(pairs), bool)
    if max_target_rank is not None:
        keep &= rank <= max_target_rank
    out = mined.select(keep)
    if len(out.pairs) == 0:
        raise PseudosupError(f"mode '{mode}' (max_target_rank={max_target_rank}) keeps none of the "
                             f"{len(pairs)} reversible pairs; use mode 'source' or relax the filter")
    return out


def dense_sim(X: np.ndarray):
    """Cosine similarity of item pairs of a dense matrix (rows normalised on the fly)."""
    def sim(i, j):
        a, b = np.asarray(X[i], np.float32), np.asarray(X[j], np.float32)
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        return (a * b).sum(1) / np.maximum(na * nb, 1e-12)
    return sim


def sparse_sim(G):
    """Cosine similarity of item pairs of an L2-normalised sparse matrix."""
    def sim(i, j):
        out = np.empty(len(i), np.float32)
        for s in range(0, len(i), 65536):
            a, b = G[i[s:s + 65536]], G[j[s:s + 65536]]
            out[s:s + 65536] = np.asarray(a.multiply(b).sum(axis=1)).ravel()
        return out
    return sim


def far_negatives(target_nbrs: np.ndarray, anchors: np.ndarray, n_items: int, count: int, min_rank: int,
                  seed: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """`count` negatives per anchor, far in the target space: drawn uniformly (seeded)
    among items that are not among the anchor's first `min_rank` target neighbours
    (nor the anchor, nor one of the `exclude` pairs, (P, 2)). Returns
    (len(anchors), count) int64."""
    if min_rank > target_nbrs.shape[1]:
        raise PseudosupError(f"negatives need the first {min_rank} target neighbours but the lists hold "
                             f"{target_nbrs.shape[1]}; lower min_rank or compute longer lists")
    if n_items - min_rank - 1 < count:
        raise PseudosupError(f"only {n_items} items: cannot draw {count} negatives beyond rank {min_rank}")
    rng = np.random.default_rng(seed)
    near = target_nbrs[anchors, :min_rank]
    if exclude is not None and len(exclude):
        ex = np.asarray(exclude, np.int64)
        excluded = np.minimum(ex[:, 0], ex[:, 1]) * n_items + np.maximum(ex[:, 0], ex[:, 1])
    out = rng.integers(0, n_items, (len(anchors), count))
    for _ in range(100):  # redraw the few collisions
        bad = (out == anchors[:, None]) | (out[:, :, None] == near[:, None, :]).any(-1)
        if exclude is not None and len(exclude):
            a = np.broadcast_to(anchors[:, None], out.shape)
            keys = np.minimum(a, out) * n_items + np.maximum(a, out)
            bad |= np.isin(keys, excluded)
        if not bad.any():
            return out.astype(np.int64)
        out[bad] = rng.integers(0, n_items, int(bad.sum()))
    raise PseudosupError("could not draw negatives outside the near neighbours (too few items?)")


def pair_summary(m: MinedPairs, n: int, labels: np.ndarray | None = None) -> dict:
    """Counts and score distribution of mined pairs; label agreement as a diagnostic only."""
    from .reciprocal import pair_stats

    out = pair_stats(m.pairs, n, labels)
    out.update(target_reversible_fraction=float(m.target_reversible.mean()) if len(m.pairs) else 0.0,
               target_sim_median=float(np.median(m.target_sim)) if len(m.pairs) else None,
               source_sim_median=float(np.median(m.source_sim)) if len(m.pairs) else None,
               target_rank_median=float(np.median(m.target_rank)) if len(m.pairs) else None)
    return out
