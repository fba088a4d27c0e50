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

The suite (each function's docstring states its protocol and tie rule):

- relevance: `ClassRelevance` (same label), `ListRelevance` (listed database items,
  e.g. the Euclidean top-K ground truth from `euclidean_ground_truth`),
  `MultiLabelRelevance` (level = number of shared labels; relevant = level >= 1);
- from per-distance histograms (`hamming_histograms`, `level_histograms`; compiled
  popcount kernels in `evaluation.fast`, no sorting): mAP over the whole ranking
  (`ap_from_histograms`), mAP@K (`map_at_k`), precision@K, precision within a
  Hamming radius (`precision_within_radius`), the precision-recall curve over all
  radii (`radius_curves`), precision@N curves (`precision_curve`), and the graded
  multi-label metrics NDCG@K, ACG@K, weighted mAP@K and precision@K
  (`graded_metrics`), each exact under `expected` / `optimistic` / `pessimistic`;
- from full rankings (tie rule `index`, or real-valued distances):
  `hamming_ranking_by_index` (compiled, one pass), `ranked_metrics` and
  `graded_metrics_by_ranking` (any relevance, by definition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from ..codes import hamming, to_words
from ..io import PseudosupError

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


@dataclass
class ListRelevance:
    """Relevant = the database positions listed in the query's row of `indices`
    (-1 = padding), e.g. its top-K Euclidean neighbours (`euclidean_ground_truth`)."""

    indices: np.ndarray
    n_db: int

    def __post_init__(self):
        idx = np.asarray(self.indices, dtype=np.int64)
        if idx.ndim != 2:
            raise PseudosupError(f"ground truth: expected a (queries, K) index array, got shape {idx.shape}")
        if idx.size and (idx.max() >= self.n_db or idx.min() < -1):
            raise PseudosupError(f"ground truth: indices must lie in [0, {self.n_db}) (or -1 for padding); "
                                 f"found {int(idx.min())}..{int(idx.max())}: was it computed on this database?")
        # distinct indices per row, padding last (the kernels count each listed item once)
        out = np.full_like(idx, -1)
        for q, row in enumerate(idx):
            u = np.unique(row[row >= 0])
            out[q, :len(u)] = u
        self.indices = out

    def mask(self, q0: int, q1: int) -> np.ndarray:
        m = np.zeros((q1 - q0, self.n_db), dtype=bool)
        rows, cols = np.nonzero(self.indices[q0:q1] >= 0)
        m[rows, self.indices[q0:q1][rows, cols]] = True
        return m

    def counts(self) -> np.ndarray:
        return (self.indices >= 0).sum(axis=1)


@dataclass
class MultiLabelRelevance:
    """Graded relevance: level(q, x) = number of labels q and x share (DSRH's
    similarity level); relevant = level >= 1. Labels: (n, L) 0/1 matrices."""

    query_labels: np.ndarray
    db_labels: np.ndarray

    def __post_init__(self):
        self.query_labels = np.asarray(self.query_labels).astype(bool)
        self.db_labels = np.asarray(self.db_labels).astype(bool)
        if self.query_labels.shape[1] != self.db_labels.shape[1]:
            raise PseudosupError(f"multi-label relevance: queries have {self.query_labels.shape[1]} labels, "
                                 f"the database {self.db_labels.shape[1]}")

    @property
    def max_level(self) -> int:
        return int(self.query_labels.sum(axis=1).max()) if len(self.query_labels) else 0

    def levels(self, q0: int, q1: int) -> np.ndarray:
        return self.query_labels[q0:q1].astype(np.int32) @ self.db_labels.T.astype(np.int32)

    def mask(self, q0: int, q1: int) -> np.ndarray:
        return self.levels(q0, q1) > 0


def _check_tie_rule(rule: str) -> None:
    if rule not in TIE_RULES:
        raise PseudosupError(f"evaluation.tie_rule: '{rule}' is not one of {list(TIE_RULES)}")


# --- per-distance histograms (the fast path) --------------------------------------------

def hamming_histograms(q_codes: np.ndarray, db_codes: np.ndarray, nbits: int, relevance,
                       batch: int = 64, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """For each query, how many database items (and relevant items) lie at each
    Hamming distance 0..nbits. Returns (total, relevant), both (nq, nbits + 1) int64.

    Class, list (ground-truth) and multi-label relevance use the compiled kernels of
    `evaluation.fast` (XOR + popcount + counter, no sorting; `threads` threads). Any
    other relevance object with a `mask(q0, q1)` method takes the numpy path: a block
    of `batch` queries at a time (memory ~ batch x database bytes).
    """
    from . import fast

    qw, dbw = to_words(q_codes), to_words(db_codes)
    if isinstance(relevance, (ClassRelevance, ListRelevance)):
        _set_threads(threads)
        if isinstance(relevance, ClassRelevance):
            ql, dl = _int_labels(relevance)
            return fast.histograms_by_label(qw, dbw, ql, dl, nbits)
        return fast.histograms_by_list(qw, dbw, relevance.indices, nbits)
    if isinstance(relevance, MultiLabelRelevance):
        counts = level_histograms(q_codes, db_codes, nbits, relevance, threads)
        return counts.sum(axis=2), counts[:, :, 1:].sum(axis=2)
    return _numpy_histograms(qw, dbw, nbits, relevance, batch)


def _set_threads(threads: int) -> None:
    import numba

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def _int_labels(relevance: ClassRelevance) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int64 codes shared by queries and database (any hashable labels)."""
    ql, dl = np.asarray(relevance.query_labels), np.asarray(relevance.db_labels)
    if np.issubdtype(ql.dtype, np.integer) and np.issubdtype(dl.dtype, np.integer) and \
            (len(ql) == 0 or ql.min() >= 0) and (len(dl) == 0 or dl.min() >= 0):
        return ql.astype(np.int64), dl.astype(np.int64)
    _, inv = np.unique(np.concatenate([ql, dl]), return_inverse=True)
    return inv[:len(ql)].astype(np.int64), inv[len(ql):].astype(np.int64)


def _numpy_histograms(qw, dbw, nbits, relevance, batch):
    nq = len(qw)
    total = np.zeros((nq, nbits + 1), dtype=np.int64)
    rel = np.zeros((nq, nbits + 1), dtype=np.int64)
    for q0 in range(0, nq, batch):
        q1 = min(q0 + batch, nq)
        dist = hamming(qw[q0:q1], dbw).astype(np.int64)
        mask = relevance.mask(q0, q1)
        offsets = np.arange(q1 - q0)[:, None] * (nbits + 1)
        total[q0:q1] = np.bincount((dist + offsets).ravel(), minlength=(q1 - q0) * (nbits + 1)).reshape(q1 - q0, -1)
        rel[q0:q1] = np.bincount((dist + offsets)[mask], minlength=(q1 - q0) * (nbits + 1)).reshape(q1 - q0, -1)
    return total, rel


def level_histograms(q_codes: np.ndarray, db_codes: np.ndarray, nbits: int, relevance: MultiLabelRelevance,
                     threads: int = 1, batch: int = 64) -> np.ndarray:
    """Counts per query, Hamming distance and relevance level (shared labels):
    (nq, nbits + 1, max_level + 1) int64. Compiled kernel for up to 64 labels."""
    from . import fast

    qw, dbw = to_words(q_codes), to_words(db_codes)
    top = relevance.max_level
    if relevance.query_labels.shape[1] <= 64:
        _set_threads(threads)
        return fast.histograms_by_level(qw, dbw, _label_masks(relevance.query_labels),
                                        _label_masks(relevance.db_labels), nbits, top)
    nq = len(qw)
    out = np.zeros((nq, nbits + 1, top + 1), dtype=np.int64)
    for q0 in range(0, nq, batch):
        q1 = min(q0 + batch, nq)
        dist = hamming(qw[q0:q1], dbw).astype(np.int64)
        lev = np.minimum(relevance.levels(q0, q1), top)
        for i in range(q1 - q0):
            out[q0 + i] = np.bincount(dist[i] * (top + 1) + lev[i], minlength=(nbits + 1) * (top + 1)).reshape(nbits + 1, -1)
    return out


def _label_masks(labels: np.ndarray) -> np.ndarray:
    """(n, L <= 64) booleans -> one uint64 bit mask per row."""
    weights = np.left_shift(np.uint64(1), np.arange(labels.shape[1], dtype=np.uint64))
    return (labels.astype(np.uint64) * weights[None, :]).sum(axis=1, dtype=np.uint64)


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


def precision_within_radius(total: np.ndarray, rel: np.ndarray, radius: int) -> np.ndarray:
    """Per query: the fraction of relevant items among those within Hamming distance
    <= radius (hash-lookup protocol; radius 2 in the hashing papers). Tie-free by
    construction (the whole ball is retrieved); 0 when the ball is empty."""
    r = min(int(radius), total.shape[1] - 1)
    ret = total[:, :r + 1].sum(axis=1)
    hit = rel[:, :r + 1].sum(axis=1)
    return np.where(ret > 0, hit / np.maximum(ret, 1), 0.0)


def precision_curve(total: np.ndarray, rel: np.ndarray, ks, rule: str) -> np.ndarray:
    """Mean precision@N for each N in `ks` (the precision@N curve), under the tie rule
    (see `precision_at_k_from_histograms`)."""
    return np.array([precision_at_k_from_histograms(total, rel, int(k), rule).mean() for k in ks])


def map_at_k(total: np.ndarray, rel: np.ndarray, k: int, rule: str) -> np.ndarray:
    """AP@K per query (binary relevance): the mean, over the relevant items within the
    top K, of precision at their positions; its denominator is the number of relevant
    items retrieved in the top K (the convention of the hashing papers' mAP@K scripts,
    e.g. mAP@5000 on NUS-WIDE); 0 when none is retrieved. K = min(K, database size).

    Tie rule `expected` is the exact mean over all orders of tied items, including the
    random number of relevant items that the group straddling position K brings in
    (hypergeometric); `optimistic` / `pessimistic` put relevant items first / last
    within ties. It is weighted mAP@K with levels 0/1 (see `graded_metrics`).
    """
    counts = np.stack([total - rel, rel], axis=2)
    return _weighted_ap(_bins_for_rule(counts, rule), k)


# --- graded (multi-label) metrics from per-distance level counts ----------------------------

def graded_metrics(counts: np.ndarray, k_ndcg: int = 100, k_acg: int = 100, k_wap: int = 5000,
                   k_precision: int = 100, rule: str = "expected") -> dict[str, np.ndarray]:
    """DSRH's evaluation (Zhao et al. CVPR 2015, the authors' `evaluate_nuswide.py`)
    from `counts` (nq, n_groups, L+1): items per tie group (Hamming distance, in rank
    order) and relevance level r = number of shared labels. Per query:

    - ndcg: NDCG@k_ndcg, gain 2^r - 1, discount 1/log2(i+1) (the base cancels), the
      ideal DCG from the query's whole database; 0 when the ideal DCG is 0.
    - acg: ACG@k_acg = mean level of the top K.
    - wap: weighted AP@k_wap = mean, over positions p <= K holding an item with r >= 1,
      of ACG@p; the denominator is the number of such items in the top K; 0 if none.
    - precision: precision@k_precision, relevant = r >= 1.

    K = min(K, database size). Tie rule `expected` = the exact mean over all orders of
    tied items (the authors average 100 random permutations of equal distances, which
    estimates it): each position of a group gets the group's mean gain, and for
    weighted AP the group straddling position K is conditioned on how many relevant
    items it brings in (hypergeometric). `optimistic` / `pessimistic` order ties by
    decreasing / increasing level. For `index` use `graded_metrics_by_ranking`.
    """
    bins = _bins_for_rule(counts, rule)
    out = {"ndcg": _ndcg(bins, k_ndcg), "acg": _acg(bins, k_acg), "wap": _weighted_ap(bins, k_wap),
           "precision": _precision_levels(bins, k_precision)}
    return out


def _bins_for_rule(counts: np.ndarray, rule: str) -> np.ndarray:
    """Tie groups for the rule: as given for `expected`; for the bounds, each group
    split into one homogeneous bin per level, best (optimistic) or worst level first,
    so that the order inside every bin no longer matters."""
    _check_tie_rule(rule)
    if rule == "index":
        raise PseudosupError("tie rule 'index' needs the full ranking: use graded_metrics_by_ranking")
    counts = np.asarray(counts, dtype=np.int64)
    if rule == "expected":
        return counts
    nq, ng, nl = counts.shape
    order = range(nl - 1, -1, -1) if rule == "optimistic" else range(nl)
    out = np.zeros((nq, ng * nl, nl), dtype=np.int64)
    for m, level in enumerate(order):
        out[:, m::nl, level] = counts[:, :, level]
    return out


def _group_sums(bins: np.ndarray, k: int):
    """Per group: size n, items before a, items taken into the top K t, and K itself."""
    n = bins.sum(axis=2)
    k = min(int(k), int(n[0].sum())) if len(n) else int(k)
    a = np.cumsum(n, axis=1) - n
    t = np.clip(k - a, 0, n)
    return n, a, t, k


def _mean_per_item(values: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.where(n > 0, values / np.maximum(n, 1), 0.0)


def _acg(bins: np.ndarray, k: int) -> np.ndarray:
    n, _, t, k = _group_sums(bins, k)
    level_sum = (bins * np.arange(bins.shape[2])).sum(axis=2)
    return (t * _mean_per_item(level_sum, n)).sum(axis=1) / max(k, 1)


def _precision_levels(bins: np.ndarray, k: int) -> np.ndarray:
    n, _, t, k = _group_sums(bins, k)
    return (t * _mean_per_item(bins[:, :, 1:].sum(axis=2), n)).sum(axis=1) / max(k, 1)


def _ndcg(bins: np.ndarray, k: int) -> np.ndarray:
    n, a, t, k = _group_sums(bins, k)
    gain = 2.0 ** np.arange(bins.shape[2]) - 1.0
    disc = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])  # disc[m] = sum_{i<=m}
    a_in = np.minimum(a, k)
    dcg = (_mean_per_item((bins * gain).sum(axis=2), n) * (disc[a_in + t] - disc[a_in])).sum(axis=1)
    per_level = bins.sum(axis=1)  # the query's whole database, by level
    ideal = np.zeros(len(bins))
    above = np.zeros(len(bins), dtype=np.int64)
    for level in range(bins.shape[2] - 1, 0, -1):  # best levels first
        lo, hi = np.minimum(above, k), np.minimum(above + per_level[:, level], k)
        ideal += gain[level] * (disc[hi] - disc[lo])
        above += per_level[:, level]
    return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)


def _weighted_ap(bins: np.ndarray, k: int) -> np.ndarray:
    """Exact expected weighted AP@K over orders within each bin (see graded_metrics).

    For a bin of n items (r of them with level >= 1, level sum T) after a items whose
    level sum is C0, taking its first t positions with j relevant items among them
    (j fixed when t = n), linearity over positions i = 1..t gives
        E[sum_i 1[rel_i] ACG@(a+i) * (a+i)] / (a+i) terms
        = (C0 j/t + (j/t)(T/r)) S + j(j-1)/(t(t-1)) (T/r) (t - (a+1) S),
    S = H(a+t) - H(a); a whole bin has j = r and T/r * r = T. Only the bin straddling
    K has a random j (hypergeometric), and it also moves the denominator: that bin is
    summed over j exactly.
    """
    n, a, t, k = _group_sums(bins, k)
    levels = np.arange(bins.shape[2])
    r = bins[:, :, 1:].sum(axis=2).astype(np.float64)
    T = (bins * levels).sum(axis=2).astype(np.float64)
    C0 = np.cumsum(T, axis=1) - T
    H = _harmonic(int(n.sum(axis=1).max()) if n.size else 0)
    full = (t == n) & (n > 0) & (r > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        contrib = _wap_terms(C0, T, r, r, a, n, H)
    s_full = np.where(full, contrib, 0.0).sum(axis=1)
    d_full = np.where(full, r, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(d_full > 0, s_full / np.maximum(d_full, 1), 0.0)
    straddle = (t > 0) & (t < n) & (r > 0)
    rows = np.flatnonzero(straddle.any(axis=1))
    if len(rows):
        g = straddle[rows].argmax(axis=1)
        sel = (rows, g)
        out[rows] = _straddle_wap(C0[sel], T[sel], r[sel], a[sel], t[sel], n[sel], s_full[rows], d_full[rows], H)
    return out


def _wap_terms(C0, T, r, j, a, t, H):
    """Expected sum over the first t positions of a bin of 1[rel] * ACG@position,
    given j relevant items among them (arrays broadcast)."""
    S = H[(a + t).astype(np.int64)] - H[a.astype(np.int64)]
    mean_rel_level = np.where(r > 0, T / np.maximum(r, 1), 0.0)
    first = (C0 * j / t + (j / t) * mean_rel_level) * S
    pair = np.where(t > 1, j * (j - 1) / np.maximum(t * (t - 1), 1), 0.0)
    return np.where(j > 0, first + pair * mean_rel_level * (t - (a + 1) * S), 0.0)


def _straddle_wap(C0, T, r, a, t, n, s_full, d_full, H, chunk: int = 256):
    """Sum over j (relevant items the straddling bin brings into the top K) of
    P(j) * (s_full + E[bin terms | j]) / (d_full + j)."""
    out = np.empty(len(C0))
    for c0 in range(0, len(C0), chunk):
        sl = slice(c0, c0 + chunk)
        jmax = int(np.minimum(t[sl], r[sl]).max())
        j = np.arange(jmax + 1, dtype=np.float64)[None, :]
        rr, tt, nn = r[sl, None], t[sl, None].astype(np.float64), n[sl, None].astype(np.float64)
        ok = (j <= np.minimum(tt, rr)) & (tt - j <= nn - rr)
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = _log_binom(rr, j) + _log_binom(nn - rr, tt - j) - _log_binom(nn, tt)
            p = np.where(ok, np.exp(np.where(ok, logp, 0.0)), 0.0)
            terms = _wap_terms(C0[sl, None], T[sl, None], rr, j, a[sl, None].astype(np.float64), tt, H)
            denom = d_full[sl, None] + j
            val = np.where(denom > 0, (s_full[sl, None] + terms) / np.maximum(denom, 1), 0.0)
        out[sl] = (p * val).sum(axis=1)
    return out


def _log_binom(n, k):
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


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


def tie_histograms(dist: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real-valued distances as the per-distance counts the order-independent tie
    rules need: for each row, (total, relevant) items of each group of *equal*
    distances, groups in increasing distance (padded with empty groups to n_db
    columns). Exactly equal values form a group, e.g. the many zero similarities of
    a sparse bag of words."""
    nq, n = dist.shape
    order = np.argsort(dist, axis=1, kind="stable")
    d = np.take_along_axis(dist, order, axis=1)
    new = np.ones(d.shape, dtype=bool)
    new[:, 1:] = d[:, 1:] != d[:, :-1]
    flat = (np.arange(nq)[:, None] * n + np.cumsum(new, axis=1) - 1).ravel()
    total = np.bincount(flat, minlength=nq * n).reshape(nq, n)
    rel = np.bincount(flat, weights=np.take_along_axis(mask, order, axis=1).ravel(), minlength=nq * n)
    return total, np.rint(rel).astype(np.int64).reshape(nq, n)


def tie_aware_metrics_by_distance(dist_fn, nq: int, relevance, k: int, rule: str, batch: int = 64,
                                  k_map: int | None = None) -> dict[str, np.ndarray]:
    """AP, precision@k (and AP@k_map) per query of the ranking by real-valued
    distance under an order-independent tie rule (`expected`, `optimistic`,
    `pessimistic`); `index` falls back to the stable sort (ties by database index)."""
    _check_tie_rule(rule)
    parts: dict[str, list] = {"ap": [], "precision_at_k": [], "ap_at_k": []}
    if rule == "index":
        for q0 in range(0, nq, batch):
            q1 = min(q0 + batch, nq)
            order = np.argsort(dist_fn(q0, q1), axis=1, kind="stable")
            r = ranked_metrics(np.take_along_axis(relevance.mask(q0, q1), order, axis=1), k, k_map or None)
            parts["ap"].append(r["ap"])
            parts["precision_at_k"].append(r["precision"])
            if k_map:
                parts["ap_at_k"].append(r["map_at_k"])
        return {name: np.concatenate(v) for name, v in parts.items() if v}
    for q0 in range(0, nq, batch):
        q1 = min(q0 + batch, nq)
        total, hits = tie_histograms(dist_fn(q0, q1), relevance.mask(q0, q1))
        parts["ap"].append(ap_from_histograms(total, hits, rule))
        parts["precision_at_k"].append(precision_at_k_from_histograms(total, hits, k, rule))
        if k_map:
            parts["ap_at_k"].append(map_at_k(total, hits, int(k_map), rule))
    return {name: np.concatenate(v) for name, v in parts.items() if v}


def hamming_ranking_by_index(q_codes, db_codes, relevance, k: int, batch: int = 64, threads: int = 1):
    """AP over the whole ranking and precision@k per query, ties by database index
    (the stable sort of reference code). Class and list relevance: one compiled pass
    per query (`hamming_index_pass`), no sort; other relevance: by sorting."""
    if isinstance(relevance, (ClassRelevance, ListRelevance)):
        ap, pk, _, _ = hamming_index_pass(q_codes, db_codes, relevance, [k], threads=threads)
        return ap, pk[:, 0]
    qw, dbw = to_words(q_codes), to_words(db_codes)
    return ranking_metrics_by_distance(lambda a, b: hamming(qw[a:b], dbw), len(qw), relevance, k, batch)


def hamming_index_pass(q_codes, db_codes, relevance, ks, nbits: int | None = None, threads: int = 1):
    """Ties by database index, class or list relevance, in one compiled pass over the
    database (`evaluation.fast.ap_index_rule`): AP per query, precision at each cut-off
    of `ks` (nq, len(ks)), and the (total, relevant) per-distance histograms (nq,
    nbits + 1) of `hamming_histograms`. `nbits` defaults to the packed width."""
    from . import fast

    if not isinstance(relevance, (ClassRelevance, ListRelevance)):
        raise TypeError(f"hamming_index_pass needs class or list relevance, not {type(relevance).__name__}")
    qw, dbw = to_words(q_codes), to_words(db_codes)
    nbits = q_codes.shape[1] * 8 if nbits is None else int(nbits)
    ks = np.asarray(ks, dtype=np.int64).reshape(-1)
    _set_threads(threads)
    if isinstance(relevance, ClassRelevance):
        ql, dl = _int_labels(relevance)
        return fast.ap_index_rule(qw, dbw, ql, dl, np.zeros((len(qw), 0), np.int64), nbits, ks)
    none = np.zeros(0, np.int64)
    return fast.ap_index_rule(qw, dbw, none, none, relevance.indices, nbits, ks)


def ranked_metrics(rel_sorted: np.ndarray, k: int, k_map: int | None = None) -> dict[str, np.ndarray]:
    """Binary-relevance metrics of explicit rankings, by definition. `rel_sorted`:
    (nq, n) booleans in ranked order. Returns per query: ap (whole ranking), precision
    (top k), and map_at_k (AP over the top k_map, denominator = relevant items retrieved
    there; see `map_at_k`) when k_map is given."""
    rel = np.asarray(rel_sorted, dtype=bool)
    hits = np.cumsum(rel, axis=1)
    pos = np.arange(1, rel.shape[1] + 1)
    prec_at = hits / pos
    n_rel = hits[:, -1] if rel.shape[1] else np.zeros(len(rel), dtype=np.int64)
    out = {"ap": np.where(n_rel > 0, (prec_at * rel).sum(axis=1) / np.maximum(n_rel, 1), 0.0)}
    kk = min(k, rel.shape[1])
    out["precision"] = hits[:, kk - 1] / kk if kk else np.zeros(len(rel))
    if k_map is not None:
        km = min(k_map, rel.shape[1])
        got = hits[:, km - 1]
        out["map_at_k"] = np.where(got > 0, (prec_at[:, :km] * rel[:, :km]).sum(axis=1) / np.maximum(got, 1), 0.0)
    return out


def graded_metrics_by_ranking(levels_sorted: np.ndarray, levels_all: np.ndarray | None = None,
                              k_ndcg: int = 100, k_acg: int = 100, k_wap: int = 5000,
                              k_precision: int = 100) -> dict[str, np.ndarray]:
    """The metrics of `graded_metrics`, by definition, on explicit rankings:
    `levels_sorted` (nq, n) = relevance level of each ranked item (e.g. ties by
    database index: tie rule `index`). The ideal DCG uses `levels_all` (default: the
    same items, i.e. the whole database ranked)."""
    lev = np.asarray(levels_sorted, dtype=np.float64)
    nq, n = lev.shape
    pos = np.arange(1, n + 1)
    gain = 2.0 ** lev - 1.0
    disc = 1.0 / np.log2(pos + 1)
    kn = min(k_ndcg, n)
    ideal_levels = np.sort(np.asarray(levels_all if levels_all is not None else lev, dtype=np.float64), axis=1)[:, ::-1]
    ideal = ((2.0 ** ideal_levels[:, :kn] - 1.0) * disc[:kn]).sum(axis=1)
    dcg = (gain[:, :kn] * disc[:kn]).sum(axis=1)
    out = {"ndcg": np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)}
    ka = min(k_acg, n)
    out["acg"] = lev[:, :ka].sum(axis=1) / max(ka, 1)
    kw = min(k_wap, n)
    rel = lev[:, :kw] > 0
    acg_at = np.cumsum(lev[:, :kw], axis=1) / pos[:kw]
    got = rel.sum(axis=1)
    out["wap"] = np.where(got > 0, (acg_at * rel).sum(axis=1) / np.maximum(got, 1), 0.0)
    kp = min(k_precision, n)
    out["precision"] = (lev[:, :kp] > 0).sum(axis=1) / max(kp, 1)
    return out


def graded_by_distance(dist_fn, nq: int, relevance: MultiLabelRelevance, batch: int = 64, **ks) -> dict[str, np.ndarray]:
    """`graded_metrics_by_ranking` of stable sorts of `dist_fn(q0, q1)` blocks (ties by
    database index): the `index` rule for Hamming codes, and the Euclidean ceiling."""
    parts: dict[str, list] = {}
    for q0 in range(0, nq, batch):
        q1 = min(q0 + batch, nq)
        order = np.argsort(dist_fn(q0, q1), axis=1, kind="stable")
        lev = relevance.levels(q0, q1)
        m = graded_metrics_by_ranking(np.take_along_axis(lev, order, axis=1), lev, **ks)
        for key, v in m.items():
            parts.setdefault(key, []).append(v)
    return {key: np.concatenate(v) for key, v in parts.items()}


def hamming_graded_by_index(q_codes, db_codes, relevance: MultiLabelRelevance, batch: int = 64, **ks):
    qw, dbw = to_words(q_codes), to_words(db_codes)
    return graded_by_distance(lambda a, b: hamming(qw[a:b], dbw), len(qw), relevance, batch, **ks)


def euclidean_ground_truth(q_feats: np.ndarray, db_feats: np.ndarray, k: int = 100, batch: int = 1024,
                           threads: int = 1, margin: int = 16) -> np.ndarray:
    """Indices (nq, k) of each query's k nearest database vectors in L2 distance, nearest
    first, ties by database index: the SIFT/GIST protocol's ground truth (K = 100 in the
    LDPH code). faiss (exact, float32) proposes k + margin candidates; their distances
    are recomputed in float64 and sorted stably; if the k-th and the last candidate tie,
    the search is repeated with a larger margin so no tied item outside is missed."""
    import faiss

    faiss.omp_set_num_threads(threads)
    db = np.ascontiguousarray(db_feats, dtype=np.float32)
    q = np.ascontiguousarray(q_feats, dtype=np.float32)
    k = min(int(k), len(db))
    index = faiss.IndexFlatL2(db.shape[1])
    index.add(db)
    out = np.empty((len(q), k), dtype=np.int64)
    for q0 in range(0, len(q), batch):
        out[q0:q0 + batch] = _exact_top_k(index, q[q0:q0 + batch], db_feats, k, margin)
    return out


def _exact_top_k(index, q, db_feats, k, margin):
    while True:
        m = min(k + margin, index.ntotal)
        _, cand = index.search(q, m)
        cand_vecs = np.asarray(db_feats[np.sort(np.unique(cand))], dtype=np.float64)
        rows = np.searchsorted(np.sort(np.unique(cand)), cand)
        exact = ((cand_vecs[rows] - q[:, None, :].astype(np.float64)) ** 2).sum(axis=2)
        order = _stable_by_distance(exact, cand)
        d_sorted = np.take_along_axis(exact, order, axis=1)
        if m == index.ntotal or np.all(d_sorted[:, k - 1] < d_sorted[:, -1]):
            return np.take_along_axis(cand, order, axis=1)[:, :k]
        margin *= 4


def _stable_by_distance(dist: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per row: order by distance, then by database index."""
    by_index = np.argsort(idx, axis=1, kind="stable")
    d = np.take_along_axis(dist, by_index, axis=1)
    return np.take_along_axis(by_index, np.argsort(d, axis=1, kind="stable"), axis=1)


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
