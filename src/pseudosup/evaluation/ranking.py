"""Rankings and ranking metrics with explicit tie rules.

Hamming ranking puts many database items at the same distance. How ties are
ordered changes AP and precision@K, so every function takes a tie rule:

- ``expected``: the exact mean over all orders of tied items (McSherry & Najork,
  ECIR 2008). Independent of database order; it is what random tie-breaking
  estimates. Computed from per-distance counts only, which makes it fast.
- ``optimistic`` / ``pessimistic``: relevant items first / last within each tie
  group (the two bounds of any tie-breaking).
- ``index``: ties broken by database position (a stable sort), the behaviour of
  ``argsort(kind="stable")`` reference code.

Conventions (stated once, used everywhere): a query with no relevant item has AP 0
and still counts in the mean; precision within a Hamming radius is 0 when nothing
lies within it; precision@K uses K = min(K, database size).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..io import PseudosupError
from ..methods.codes import hamming, to_words

TIE_RULES = ("expected", "optimistic", "pessimistic", "index")


# --- relevance -----------------------------------------------------------------------

@dataclass
class ClassRelevance:
    """Relevant = same class label."""

    query_labels: np.ndarray
    db_labels: np.ndarray

    def mask(self, q0: int, q1: int) -> np.ndarray:
        return self.query_labels[q0:q1, None] == self.db_labels[None, :]

    def counts(self) -> np.ndarray:
        classes, per_class = np.unique(self.db_labels, return_counts=True)
        lookup = dict(zip(classes.tolist(), per_class.tolist()))
        return np.array([lookup.get(int(c), 0) for c in self.query_labels], dtype=np.int64)


def _check_tie_rule(rule: str) -> None:
    if rule not in TIE_RULES:
        raise PseudosupError(f"evaluation.tie_rule: '{rule}' is not one of {list(TIE_RULES)}")


# --- per-distance histograms (the fast path) --------------------------------------------

def hamming_histograms(q_codes: np.ndarray, db_codes: np.ndarray, nbits: int, relevance,
                       batch: int = 64, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """For each query, how many database items (and relevant items) lie at each
    Hamming distance 0..nbits. Returns (total, relevant), both (nq, nbits + 1) int64.

    Distances are computed by XOR + popcount on 64-bit words, a block of queries at a
    time (memory ~ batch x database bytes); blocks run on `threads` threads (numpy
    releases the GIL in these kernels).
    """
    qw, dbw = to_words(q_codes), to_words(db_codes)
    nq = len(qw)
    total = np.zeros((nq, nbits + 1), dtype=np.int64)
    rel = np.zeros((nq, nbits + 1), dtype=np.int64)
    grouped = _group_by_class(relevance) if isinstance(relevance, ClassRelevance) else None
    if grouped is not None:
        dbw = dbw[grouped[0]]

    def block(q0: int) -> None:
        q1 = min(q0 + batch, nq)
        dist = hamming(qw[q0:q1], dbw)
        mask = None if grouped is not None else relevance.mask(q0, q1)
        for i in range(q1 - q0):
            total[q0 + i] = np.bincount(dist[i], minlength=nbits + 1)
            if grouped is not None:
                start, stop = grouped[1].get(int(relevance.query_labels[q0 + i]), (0, 0))
                rel[q0 + i] = np.bincount(dist[i, start:stop], minlength=nbits + 1)
            else:
                rel[q0 + i] = np.bincount(dist[i][mask[i]], minlength=nbits + 1)

    starts = range(0, nq, batch)
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(block, starts))
    else:
        for q0 in starts:
            block(q0)
    return total, rel


def _group_by_class(relevance: ClassRelevance):
    """Permutation putting each class's database items in one contiguous slice, and
    the slice of each class. Only valid for order-independent tie rules."""
    order = np.argsort(relevance.db_labels, kind="stable")
    labels = relevance.db_labels[order]
    classes, starts = np.unique(labels, return_index=True)
    stops = np.append(starts[1:], len(labels))
    return order, {int(c): (int(a), int(b)) for c, a, b in zip(classes, starts, stops)}


def _harmonic(n: int) -> np.ndarray:
    """H[k] = 1 + 1/2 + ... + 1/k for k = 0..n (H[0] = 0), float64."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def ap_from_histograms(total: np.ndarray, rel: np.ndarray, rule: str) -> np.ndarray:
    """AP per query from per-distance counts, for the order-independent tie rules.

    For a tie group of n items, r of them relevant, after N items (R relevant):
    expected:    sum_p (r/n) (R + 1 + (p-1)(r-1)/(n-1)) / (N + p),  p = 1..n
                 = (r/n) [(R+1) S0 + (r-1)/(n-1) (n - (N+1) S0)],  S0 = H(N+n) - H(N)
    optimistic:  sum_k (R+k)/(N+k),        k = 1..r  = r + (R-N)(H(N+r) - H(N))
    pessimistic: sum_k (R+k)/(N+n-r+k),    k = 1..r  = r + (R-N-n+r)(H(N+n) - H(N+n-r))
    """
    _check_tie_rule(rule)
    if rule == "index":
        raise PseudosupError("tie rule 'index' needs the full ranking: use ap_by_index")
    n = total.astype(np.float64)
    r = rel.astype(np.float64)
    N = np.cumsum(total, axis=1) - total
    R = (np.cumsum(rel, axis=1) - rel).astype(np.float64)
    H = _harmonic(int(total.sum(axis=1).max()) if total.size else 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if rule == "expected":
            S0 = H[N + total] - H[N]
            slope = np.where(total > 1, (r - 1) / np.maximum(n - 1, 1), 0.0)
            contrib = (r / np.maximum(n, 1)) * ((R + 1) * S0 + slope * (n - (N + 1) * S0))
        elif rule == "optimistic":
            contrib = r + (R - N) * (H[N + rel] - H[N])
        else:
            contrib = r + (R - N - total + rel) * (H[N + total] - H[N + total - rel])
    contrib = np.where(rel > 0, contrib, 0.0)
    n_rel = rel.sum(axis=1)
    return np.where(n_rel > 0, contrib.sum(axis=1) / np.maximum(n_rel, 1), 0.0)


def precision_at_k_from_histograms(total: np.ndarray, rel: np.ndarray, k: int, rule: str) -> np.ndarray:
    """Precision of the top K per query, for the order-independent tie rules."""
    _check_tie_rule(rule)
    k = min(k, int(total[0].sum())) if len(total) else k
    before = np.cumsum(total, axis=1) - total
    take = np.clip(k - before, 0, total)  # items of each group inside the top K
    if rule == "expected":
        with np.errstate(divide="ignore", invalid="ignore"):
            hits = np.where(total > 0, take * rel / np.maximum(total, 1), 0.0)
    elif rule == "optimistic":
        hits = np.minimum(take, rel)
    elif rule == "pessimistic":
        hits = np.maximum(take - (total - rel), 0)
    else:
        raise PseudosupError("tie rule 'index' needs the full ranking: use ranking metrics by index")
    return hits.sum(axis=1) / k


def radius_curves(total: np.ndarray, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean precision and recall of the items within Hamming radius t, t = 0..nbits.
    Tie-free by construction. Precision is 0 for a query with nothing retrieved."""
    ret = np.cumsum(total, axis=1)
    hit = np.cumsum(rel, axis=1).astype(np.float64)
    n_rel = rel.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(ret > 0, hit / np.maximum(ret, 1), 0.0)
        recall = np.where(n_rel > 0, hit / np.maximum(n_rel, 1), 0.0)
    return precision.mean(axis=0), recall.mean(axis=0)


# --- full rankings (index tie rule, real-valued distances) ---------------------------------

def ap_of_ranking(rel_sorted: np.ndarray, k: int) -> tuple[float, float]:
    """AP over the whole ranking and precision@k, given relevance in ranked order."""
    hits = np.cumsum(rel_sorted)
    n_rel = hits[-1] if len(hits) else 0
    pos = np.flatnonzero(rel_sorted) + 1
    ap = float((hits[pos - 1] / pos).mean()) if n_rel else 0.0
    k = min(k, len(rel_sorted))
    return ap, float(hits[k - 1] / k) if k else 0.0


def ranking_metrics_by_distance(dist_fn, nq: int, relevance, k: int, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """AP and precision@k per query from full rankings, ties by database index.

    `dist_fn(q0, q1)` returns the (q1-q0, n_db) distance block (any dtype); the
    ranking is a stable sort of each row.
    """
    ap = np.zeros(nq)
    pk = np.zeros(nq)
    for q0 in range(0, nq, batch):
        q1 = min(q0 + batch, nq)
        dist = dist_fn(q0, q1)
        mask = relevance.mask(q0, q1)
        order = np.argsort(dist, axis=1, kind="stable")
        for i in range(q1 - q0):
            ap[q0 + i], pk[q0 + i] = ap_of_ranking(mask[i][order[i]], k)
    return ap, pk


def hamming_ranking_by_index(q_codes, db_codes, relevance, k: int, batch: int = 64):
    qw, dbw = to_words(q_codes), to_words(db_codes)
    return ranking_metrics_by_distance(lambda a, b: hamming(qw[a:b], dbw), len(qw), relevance, k, batch)


def squared_l2(q: np.ndarray, db: np.ndarray, db_sq: np.ndarray | None = None) -> np.ndarray:
    q = np.asarray(q, dtype=np.float32)
    db_sq = (db.astype(np.float32) ** 2).sum(1) if db_sq is None else db_sq
    d = (q ** 2).sum(1)[:, None] - 2.0 * (q @ db.T) + db_sq[None, :]
    return np.maximum(d, 0.0)


def euclidean_metrics(q_feats: np.ndarray, db_feats: np.ndarray, relevance, k: int, batch: int = 64):
    """AP / precision@k of Euclidean ranking of real-valued features (the ceiling)."""
    db = np.ascontiguousarray(db_feats, dtype=np.float32)
    db_sq = (db ** 2).sum(1)
    q = np.ascontiguousarray(q_feats, dtype=np.float32)
    return ranking_metrics_by_distance(lambda a, b: squared_l2(q[a:b], db, db_sq), len(q), relevance, k, batch)
