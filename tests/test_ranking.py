"""The fast, tie-aware ranking metrics equal their brute-force definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pseudosup import codes as C
from pseudosup.evaluation import ranking as R


def naive_ap(rel_sorted: np.ndarray) -> float:
    """AP by its definition: mean over relevant positions of precision at that position."""
    hits, total = 0, 0.0
    for i, r in enumerate(rel_sorted, start=1):
        if r:
            hits += 1
            total += hits / i
    return total / hits if hits else 0.0


def tie_orders(dist: np.ndarray):
    """Every ranking consistent with the distances (all orders within tie groups)."""
    groups = [np.flatnonzero(dist == d) for d in np.unique(dist)]
    for perm in itertools.product(*(itertools.permutations(g) for g in groups)):
        yield np.concatenate([np.array(p, dtype=int) for p in perm])


def brute(dist: np.ndarray, rel: np.ndarray, k: int):
    """Expected, optimistic and pessimistic AP and P@k over all tie orders, and the
    index rule (stable sort)."""
    aps, pks = [], []
    for order in tie_orders(dist):
        aps.append(naive_ap(rel[order]))
        pks.append(rel[order][:k].sum() / k)
    stable = np.argsort(dist, kind="stable")
    return {"expected": (np.mean(aps), np.mean(pks)), "optimistic": (max(aps), max(pks)),
            "pessimistic": (min(aps), min(pks)), "index": (naive_ap(rel[stable]), rel[stable][:k].sum() / k)}


def histograms(dist_rows, rel_rows, nbits):
    total = np.array([np.bincount(d, minlength=nbits + 1) for d in dist_rows])
    hits = np.array([np.bincount(d[r], minlength=nbits + 1) for d, r in zip(dist_rows, rel_rows)])
    return total, hits


@pytest.mark.parametrize("seed", range(12))
def test_ap_and_precision_match_brute_force_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    nbits, n = 3, 7  # 4 possible distances for 7 items: ties everywhere
    dist = rng.integers(0, nbits + 1, size=(4, n))
    rel = rng.random((4, n)) < 0.45
    rel[0] = False  # a query with no relevant item: AP 0 by convention
    k = int(rng.integers(1, n + 1))
    total, hits = histograms(dist, rel, nbits)
    for rule in ("expected", "optimistic", "pessimistic"):
        ap = R.ap_from_histograms(total, hits, rule)
        pk = R.precision_at_k_from_histograms(total, hits, k, rule)
        for q in range(4):
            want_ap, want_pk = brute(dist[q], rel[q], k)[rule]
            assert ap[q] == pytest.approx(want_ap, abs=1e-12), (rule, q)
            assert pk[q] == pytest.approx(want_pk, abs=1e-12), (rule, q)


def test_index_rule_matches_stable_sort():
    rng = np.random.default_rng(1)
    q = C.pack(rng.random((5, 8)) < 0.5)
    db = C.pack(rng.random((40, 8)) < 0.5)
    labels_q, labels_db = rng.integers(0, 3, 5), rng.integers(0, 3, 40)
    rel = R.ClassRelevance(labels_q, labels_db)
    ap, pk = R.hamming_ranking_by_index(q, db, rel, k=10, batch=2)
    dist = naive_hamming(q, db)
    for i in range(5):
        want = brute_index(dist[i], labels_db == labels_q[i], 10)
        assert ap[i] == pytest.approx(want[0]) and pk[i] == pytest.approx(want[1])


def brute_index(dist, rel, k):
    order = np.argsort(dist, kind="stable")
    return naive_ap(rel[order]), rel[order][:k].mean()


def naive_hamming(q_codes, db_codes):
    qb, dbb = C.unpack(q_codes, q_codes.shape[1] * 8), C.unpack(db_codes, db_codes.shape[1] * 8)
    return (qb[:, None, :] != dbb[None, :, :]).sum(-1)


@pytest.mark.parametrize("nbits", [8, 16, 32, 64, 96, 128])
def test_hamming_distance_equals_bit_count(nbits):
    rng = np.random.default_rng(nbits)
    q, db = C.pack(rng.random((7, nbits)) < 0.5), C.pack(rng.random((50, nbits)) < 0.5)
    assert np.array_equal(C.hamming(C.to_words(q), C.to_words(db)), naive_hamming(q, db))


@pytest.mark.parametrize("threads", [1, 2])
def test_class_grouped_histograms_equal_mask_path(threads):
    rng = np.random.default_rng(3)
    nbits = 16
    q, db = C.pack(rng.random((33, nbits)) < 0.5), C.pack(rng.random((500, nbits)) < 0.5)
    lq, ldb = rng.integers(0, 5, 33), rng.integers(0, 5, 500)
    fast = R.hamming_histograms(q, db, nbits, R.ClassRelevance(lq, ldb), batch=8, threads=threads)

    class Mask:  # the generic path: an explicit boolean relevance mask
        def mask(self, a, b):
            return lq[a:b, None] == ldb[None, :]

    generic = R.hamming_histograms(q, db, nbits, Mask(), batch=8)
    dist = naive_hamming(q, db)
    want = histograms(dist, lq[:, None] == ldb[None, :], nbits)
    for got in (fast, generic):
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_expected_ap_lies_between_bounds_and_equals_exact_without_ties():
    rng = np.random.default_rng(5)
    nbits = 6
    dist = rng.integers(0, nbits + 1, size=(50, 200))
    rel = rng.random((50, 200)) < 0.2
    total, hits = histograms(dist, rel, nbits)
    lo, mid, hi = (R.ap_from_histograms(total, hits, r) for r in ("pessimistic", "expected", "optimistic"))
    assert np.all(lo <= mid + 1e-12) and np.all(mid <= hi + 1e-12)
    # all distinct distances: every rule gives the one true AP
    d = np.arange(8)[None, :]
    r = np.array([[1, 0, 1, 1, 0, 0, 1, 0]], dtype=bool)
    t, h = histograms(d, r, 7)
    for rule in ("expected", "optimistic", "pessimistic"):
        assert R.ap_from_histograms(t, h, rule)[0] == pytest.approx(naive_ap(r[0]))


def test_radius_curves_by_definition():
    rng = np.random.default_rng(7)
    nbits = 4
    dist = rng.integers(0, nbits + 1, size=(6, 30))
    rel = rng.random((6, 30)) < 0.3
    total, hits = histograms(dist, rel, nbits)
    precision, recall = R.radius_curves(total, hits)
    for t in range(nbits + 1):
        p, r = [], []
        for q in range(6):
            inside = dist[q] <= t
            p.append(rel[q][inside].mean() if inside.any() else 0.0)
            r.append(rel[q][inside].sum() / rel[q].sum() if rel[q].any() else 0.0)
        assert precision[t] == pytest.approx(np.mean(p)) and recall[t] == pytest.approx(np.mean(r))


def test_euclidean_metrics_match_sorting():
    rng = np.random.default_rng(9)
    q, db = rng.standard_normal((6, 5)), rng.standard_normal((80, 5))
    lq, ldb = rng.integers(0, 3, 6), rng.integers(0, 3, 80)
    ap, pk = R.euclidean_metrics(q, db, R.ClassRelevance(lq, ldb), k=10, batch=4)
    for i in range(6):
        order = np.argsort(((db - q[i]) ** 2).sum(1))
        rel = ldb[order] == lq[i]
        assert ap[i] == pytest.approx(naive_ap(rel), abs=1e-6)
        assert pk[i] == pytest.approx(rel[:10].mean())


def test_unknown_tie_rule_is_a_clear_error():
    with pytest.raises(Exception, match="tie_rule"):
        R.ap_from_histograms(np.ones((1, 3), int), np.ones((1, 3), int), "random")
