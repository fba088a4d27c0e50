"""The evaluation suite against brute-force definitions: every metric, every tie rule,
random cases full of ties (enumerating every order of the tied items)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pseudosup import codes as C
from pseudosup.evaluation import ranking as R

# --- brute-force definitions ------------------------------------------------------------

def tie_orders(dist):
    groups = [np.flatnonzero(dist == d) for d in np.unique(dist)]
    for perm in itertools.product(*(itertools.permutations(g) for g in groups)):
        yield np.concatenate([np.array(p, dtype=int) for p in perm])


def def_ap_at_k(rel, k):
    """AP over the top k, denominator = relevant items retrieved there."""
    hits, s = 0, 0.0
    for i, r in enumerate(rel[:k], start=1):
        if r:
            hits += 1
            s += hits / i
    return s / hits if hits else 0.0


def def_ndcg(lev, all_levels, k):
    dcg = sum((2.0 ** lev[i] - 1) / math.log2(i + 2) for i in range(min(k, len(lev))))
    ideal_lev = sorted(all_levels, reverse=True)
    ideal = sum((2.0 ** ideal_lev[i] - 1) / math.log2(i + 2) for i in range(min(k, len(ideal_lev))))
    return dcg / ideal if ideal > 0 else 0.0


def def_acg(lev, k):
    k = min(k, len(lev))
    return sum(lev[:k]) / k


def def_wap(lev, k):
    """The authors' weighted mAP: mean over relevant positions p <= k of ACG@p."""
    k = min(k, len(lev))
    vals = [sum(lev[:p + 1]) / (p + 1) for p in range(k) if lev[p] > 0]
    return sum(vals) / len(vals) if vals else 0.0


def def_precision(lev, k):
    k = min(k, len(lev))
    return sum(1 for x in lev[:k] if x > 0) / k


GRADED = {"ndcg": def_ndcg, "acg": def_acg, "wap": def_wap, "precision": def_precision}


def brute_graded(dist, lev, ks):
    """Per metric: (mean over all tie orders, optimistic order, pessimistic order, index order)."""
    vals = {m: [] for m in GRADED}
    for order in tie_orders(dist):
        for m, f in GRADED.items():
            vals[m].append(_apply(m, f, lev[order], lev, ks[m]))
    # bounds as defined: ties ordered by decreasing / increasing level
    opt = np.lexsort((-lev, dist))
    pes = np.lexsort((lev, dist))
    idx = np.argsort(dist, kind="stable")
    out = {}
    for m, f in GRADED.items():
        out[m] = {"expected": np.mean(vals[m]),
                  "optimistic": _apply(m, f, lev[opt], lev, ks[m]),
                  "pessimistic": _apply(m, f, lev[pes], lev, ks[m]),
                  "index": _apply(m, f, lev[idx], lev, ks[m])}
    return out


def _apply(name, f, ranked, all_levels, k):
    return f(list(ranked), list(all_levels), k) if name == "ndcg" else f(list(ranked), k)


def level_counts(dist_rows, lev_rows, nbits, top):
    out = np.zeros((len(dist_rows), nbits + 1, top + 1), dtype=np.int64)
    for q, (d, lev) in enumerate(zip(dist_rows, lev_rows)):
        np.add.at(out[q], (d, lev), 1)
    return out


# --- graded metrics (DSRH protocol) ----------------------------------------------------------

@pytest.mark.parametrize("seed", range(10))
def test_graded_metrics_match_enumeration_of_tie_orders(seed):
    rng = np.random.default_rng(seed)
    nbits, n, nq = 3, 7, 3
    dist = rng.integers(0, nbits + 1, size=(nq, n))
    lev = rng.choice([0, 0, 1, 2, 3], size=(nq, n))
    lev[0] = 0  # a query with nothing relevant anywhere
    ks = {m: int(rng.integers(1, n + 2)) for m in GRADED}  # includes K > n
    counts = level_counts(dist, lev, nbits, 3)
    for rule in ("expected", "optimistic", "pessimistic"):
        got = R.graded_metrics(counts, ks["ndcg"], ks["acg"], ks["wap"], ks["precision"], rule)
        for q in range(nq):
            want = brute_graded(dist[q], lev[q], ks)
            for m in GRADED:
                assert got[m][q] == pytest.approx(want[m][rule], abs=1e-10), (rule, m, q, ks[m])


@pytest.mark.parametrize("seed", range(4))
def test_graded_index_rule_matches_stable_sort_of_codes(seed):
    rng = np.random.default_rng(seed)
    nbits = 4
    q = C.pack(rng.random((5, nbits)) < 0.5)
    db = C.pack(rng.random((9, nbits)) < 0.5)
    ql, dl = rng.random((5, 4)) < 0.4, rng.random((9, 4)) < 0.4
    rel = R.MultiLabelRelevance(ql, dl)
    ks = {"ndcg": 4, "acg": 3, "wap": 6, "precision": 5}
    got = R.hamming_graded_by_index(q, db, rel, batch=2, k_ndcg=4, k_acg=3, k_wap=6, k_precision=5)
    dist = naive_hamming(q, db)
    lev = ql.astype(int) @ dl.T.astype(int)
    for i in range(5):
        want = brute_graded(dist[i], lev[i], ks)
        for m in GRADED:
            assert got[m][i] == pytest.approx(want[m]["index"], abs=1e-12), (m, i)


def test_level_histograms_kernel_equals_definition():
    rng = np.random.default_rng(11)
    nbits = 24
    q, db = C.pack(rng.random((13, nbits)) < 0.5), C.pack(rng.random((300, nbits)) < 0.5)
    ql, dl = rng.random((13, 6)) < 0.3, rng.random((300, 6)) < 0.3
    rel = R.MultiLabelRelevance(ql, dl)
    got = R.level_histograms(q, db, nbits, rel, threads=2)
    lev = np.minimum(ql.astype(int) @ dl.T.astype(int), rel.max_level)
    assert np.array_equal(got, level_counts(naive_hamming(q, db), lev, nbits, rel.max_level))
    total, hits = R.hamming_histograms(q, db, nbits, rel)
    assert np.array_equal(total, got.sum(2)) and np.array_equal(hits, got[:, :, 1:].sum(2))


def test_ndcg_equals_exact_expectation_not_just_a_sample():
    """One tie group of 4 items (levels 2, 0, 0, 1), K = 2: E[DCG] = mean gain x (d1 + d2)."""
    counts = np.zeros((1, 2, 3), dtype=np.int64)
    counts[0, 0] = [2, 1, 1]
    got = R.graded_metrics(counts, k_ndcg=2)["ndcg"][0]
    mean_gain = (3 + 0 + 0 + 1) / 4
    dcg = mean_gain * (1 + 1 / math.log2(3))
    ideal = 3 + 1 / math.log2(3)
    assert got == pytest.approx(dcg / ideal)


# --- binary metrics ----------------------------------------------------------------------------

def histograms(dist_rows, rel_rows, nbits):
    total = np.array([np.bincount(d, minlength=nbits + 1) for d in dist_rows])
    hits = np.array([np.bincount(d[r], minlength=nbits + 1) for d, r in zip(dist_rows, rel_rows)])
    return total, hits


@pytest.mark.parametrize("seed", range(10))
def test_map_at_k_matches_enumeration(seed):
    rng = np.random.default_rng(100 + seed)
    nbits, n = 3, 7
    dist = rng.integers(0, nbits + 1, size=(4, n))
    rel = rng.random((4, n)) < 0.4
    rel[1] = False
    k = int(rng.integers(1, n + 1))
    total, hits = histograms(dist, rel, nbits)
    for rule in ("expected", "optimistic", "pessimistic"):
        got = R.map_at_k(total, hits, k, rule)
        for q in range(4):
            vals = [def_ap_at_k(rel[q][o], k) for o in tie_orders(dist[q])]
            opt = rel[q][np.lexsort((~rel[q], dist[q]))]
            pes = rel[q][np.lexsort((rel[q], dist[q]))]
            want = {"expected": np.mean(vals), "optimistic": def_ap_at_k(opt, k), "pessimistic": def_ap_at_k(pes, k)}
            assert got[q] == pytest.approx(want[rule], abs=1e-12), (rule, q, k)


def test_map_at_k_over_whole_database_equals_map():
    rng = np.random.default_rng(3)
    dist = rng.integers(0, 9, size=(20, 60))
    rel = rng.random((20, 60)) < 0.2
    total, hits = histograms(dist, rel, 8)
    for rule in ("expected", "optimistic", "pessimistic"):
        assert np.allclose(R.map_at_k(total, hits, 60, rule), R.ap_from_histograms(total, hits, rule))


def test_precision_within_radius_and_curve_by_definition():
    rng = np.random.default_rng(8)
    nbits = 5
    dist = rng.integers(0, nbits + 1, size=(9, 40))
    rel = rng.random((9, 40)) < 0.3
    total, hits = histograms(dist, rel, nbits)
    for r in range(nbits + 2):
        want = [rel[q][dist[q] <= r].mean() if (dist[q] <= r).any() else 0.0 for q in range(9)]
        assert np.allclose(R.precision_within_radius(total, hits, r), want)
    ks = [1, 5, 40, 100]
    curve = R.precision_curve(total, hits, ks, "expected")
    for k, c in zip(ks, curve):
        assert c == pytest.approx(R.precision_at_k_from_histograms(total, hits, k, "expected").mean())


def naive_hamming(q_codes, db_codes):
    qb, dbb = C.unpack(q_codes, q_codes.shape[1] * 8), C.unpack(db_codes, db_codes.shape[1] * 8)
    return (qb[:, None, :] != dbb[None, :, :]).sum(-1)


@pytest.mark.parametrize("nbits", [8, 16, 64, 128])
def test_fast_kernels_equal_definitions_for_class_and_list_relevance(nbits):
    rng = np.random.default_rng(nbits)
    q, db = C.pack(rng.random((21, nbits)) < 0.5), C.pack(rng.random((700, nbits)) < 0.5)
    lq, ldb = rng.integers(0, 4, 21), rng.integers(0, 4, 700)
    gt = np.stack([rng.choice(700, 30, replace=False) for _ in range(21)])
    gt[3, 10:] = -1  # padding
    dist = naive_hamming(q, db)
    for rel, mask in ((R.ClassRelevance(lq, ldb), lq[:, None] == ldb[None, :]),
                      (R.ListRelevance(gt, 700), None)):
        mask = rel.mask(0, 21) if mask is None else mask
        total, hits = R.hamming_histograms(q, db, nbits, rel, threads=2)
        want = histograms(dist, mask, nbits)
        assert np.array_equal(total, want[0]) and np.array_equal(hits, want[1])
        ap, pk = R.hamming_ranking_by_index(q, db, rel, k=50, threads=2)
        for i in range(21):
            order = np.argsort(dist[i], kind="stable")
            ranked = mask[i][order]
            m = R.ranked_metrics(ranked[None, :], 50)
            assert ap[i] == pytest.approx(m["ap"][0], abs=1e-12) and pk[i] == pytest.approx(m["precision"][0])


@pytest.mark.parametrize("nbits", [8, 16, 48])
def test_one_index_pass_equals_one_sort_per_cutoff_and_the_histograms(nbits):
    """The index rule's single pass (AP, every precision cut-off, the histograms) equals
    a stable sort per query for each cut-off, ties included (8 bits: many ties), and
    cut-offs beyond the database."""
    rng = np.random.default_rng(100 + nbits)
    q, db = C.pack(rng.random((13, nbits)) < 0.5), C.pack(rng.random((300, nbits)) < 0.5)
    lq, ldb = rng.integers(0, 3, 13), rng.integers(-1, 3, 300)
    gt = np.stack([rng.choice(300, 20, replace=False) for _ in range(13)])
    gt[5, 7:] = -1
    ks = [50, 1, 10, 299, 300, 1000]
    dist = naive_hamming(q, db)
    for rel in (R.ClassRelevance(lq, ldb), R.ListRelevance(gt, 300)):
        mask = rel.mask(0, 13)
        ap, pk, total, hits = R.hamming_index_pass(q, db, rel, ks, nbits, threads=2)
        want = histograms(dist, mask, nbits)
        assert np.array_equal(total, want[0]) and np.array_equal(hits, want[1])
        for i in range(13):
            ranked = mask[i][np.argsort(dist[i], kind="stable")]
            assert ap[i] == pytest.approx(R.ranked_metrics(ranked[None, :], 1)["ap"][0], abs=1e-12)
            for c, k in enumerate(ks):
                assert pk[i, c] == pytest.approx(R.ranked_metrics(ranked[None, :], k)["precision"][0], abs=1e-12)


def test_list_relevance_rejects_indices_outside_database():
    with pytest.raises(Exception, match="ground truth"):
        R.ListRelevance(np.array([[0, 5]]), 5)


def test_euclidean_ground_truth_equals_stable_sort_with_ties():
    rng = np.random.default_rng(4)
    db = rng.integers(0, 3, size=(400, 4)).astype(np.float32)  # many exact ties and duplicates
    q = rng.integers(0, 3, size=(15, 4)).astype(np.float32)
    got = R.euclidean_ground_truth(q, db, k=25, batch=4, margin=2)
    d = ((q[:, None, :].astype(np.float64) - db[None, :, :]) ** 2).sum(2)
    want = np.argsort(d, axis=1, kind="stable")[:, :25]
    assert np.array_equal(got, want)
