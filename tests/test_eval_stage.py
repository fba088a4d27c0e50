"""The train/evaluate stage helpers: checks before training, and the metrics a run
file gets for each relevance type (class, groundtruth, multilabel) and tie rule."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pseudosup import codes as C
from pseudosup.evaluation import ranking as R
from pseudosup.evaluation import scoring
from pseudosup.io import PseudosupError
from pseudosup.stages import evaluate as E
from pseudosup.stages import train as T

CFG = {"tie_rule": "expected", "precision_at": 20, "hamming_radius": 2, "query_batch": 16, "groundtruth_k": 10,
       "map_at": 30, "precision_curve_at": [1, 5, 20], "ndcg_at": 10, "acg_at": 10, "wap_at": 50,
       "multilabel_precision_at": 10}


def args(**kw):
    base = dict(method="m", bits=16, features="feat.npy", split="split.json", dataset=None, raw=None, model="m.npz")
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize("kw, cfg, msg", [
    ({"bits": 20}, {"hasher": "itq"}, "not one of"),
    ({}, {"hasher": "ldph", "reference": "nope"}, "methods.m.reference: unknown hasher 'nope'"),
    ({}, {"hasher": "nope"}, "unknown hasher"),
])
def test_method_checks_name_the_param(kw, cfg, msg):
    with pytest.raises(PseudosupError, match=msg):
        T.check_method(args(**kw), cfg)


def test_training_input_checks_name_the_file():
    rng = np.random.default_rng(0)
    itq = T.check_method(args(), {"hasher": "itq"})(16, {}, 0)
    ldph = T.check_method(args(), {"hasher": "ldph"})(16, {}, 0)
    X = rng.standard_normal((50, 20))
    with pytest.raises(PseudosupError, match="feat.npy: 32 bits need PCA to 32 dimensions .* only 20"):
        T.training_inputs(itq, args(bits=32), X, np.arange(50))
    X[:, 5:] = 1.0  # 15 constant columns: only 5 vary
    T.training_inputs(itq, args(), X, np.arange(50))  # ITQ copes (a warning in the log)
    with pytest.raises(PseudosupError, match="feat.npy: 16 bits need 16 varying PCA directions .* only 5 of the 20"):
        T.training_inputs(ldph, args(), X, np.arange(50))
    X[3, 2] = np.nan
    with pytest.raises(PseudosupError, match="feat.npy: NaN .* columns \\[2\\]"):
        T.training_inputs(itq, args(), X, np.arange(50))
    with pytest.raises(PseudosupError, match="'train' part is empty"):
        T.training_inputs(itq, args(), X, np.arange(0))
    dsrh = T.check_method(args(), {"hasher": "dsrh"})(16, {}, 0)
    with pytest.raises(PseudosupError, match="pass --dataset and --raw"):
        T.training_labels(dsrh, args(), np.arange(5))


def codes(n, bits, seed):
    return C.pack(np.random.default_rng(seed).random((n, bits)) < 0.5)


@pytest.mark.parametrize("rule", ["expected", "index"])
def test_class_and_groundtruth_runs(rule):
    cfg = {**CFG, "tie_rule": rule}
    split = SimpleNamespace(extra={})
    qc, dbc = codes(12, 8, 1), codes(90, 8, 2)
    rng = np.random.default_rng(3)
    for rel in (R.ClassRelevance(rng.integers(0, 3, 12), rng.integers(0, 3, 90)),
                R.ListRelevance(np.stack([rng.choice(90, 10, replace=False) for _ in range(12)]), 90)):
        out = scoring.hamming_metrics(qc, dbc, 8, rel, cfg, 1, scoring.map_cutoff(split.extra, cfg))
        total, hits = R.hamming_histograms(qc, dbc, 8, rel)
        if rule == "expected":
            assert out["map"] == pytest.approx(R.ap_from_histograms(total, hits, "expected").mean())
            assert out["map_at_k"] == pytest.approx(R.map_at_k(total, hits, 30, "expected").mean())
        else:
            assert out["map"] == pytest.approx(R.hamming_ranking_by_index(qc, dbc, rel, 20)[0].mean())
        assert out["map_at"] == 30 and len(out["precision_curve"]["precision"]) == 3
        assert len(out["pr_curve"]["precision"]) == 9


@pytest.mark.parametrize("rule", ["expected", "optimistic", "index"])
def test_multilabel_runs_report_dsrh_metrics(rule):
    cfg = {**CFG, "tie_rule": rule}
    rng = np.random.default_rng(4)
    rel = R.MultiLabelRelevance(rng.random((10, 4)) < 0.4, rng.random((80, 4)) < 0.4)
    qc, dbc = codes(10, 8, 5), codes(80, 8, 6)
    out = scoring.hamming_metrics(qc, dbc, 8, rel, cfg, 1, scoring.map_cutoff({"map_at": 40}, cfg))
    for key in ("ndcg", "acg", "wap", "precision_top", "map", "map_at_k"):
        assert 0.0 <= out[key] <= (4.0 if key == "acg" else 1.0), key
    assert out["map_at"] == 40 and out["graded_at"]["wap"] == 50
    if rule == "expected":
        counts = R.level_histograms(qc, dbc, 8, rel)
        assert out["ndcg"] == pytest.approx(R.graded_metrics(counts, 10, 10, 50, 10)["ndcg"].mean())


def test_euclidean_ceiling_runs_for_multilabel_and_groundtruth():
    rng = np.random.default_rng(7)
    Xq, Xdb = rng.standard_normal((6, 5)), rng.standard_normal((60, 5))
    ml = R.MultiLabelRelevance(rng.random((6, 3)) < 0.5, rng.random((60, 3)) < 0.5)
    out = scoring.euclidean_metrics(Xq, Xdb, ml, CFG, scoring.map_cutoff({}, CFG))
    assert {"ndcg", "acg", "wap", "map"} <= set(out)
    gt = R.ListRelevance(R.euclidean_ground_truth(Xq, Xdb, 10), 60)
    out = scoring.euclidean_metrics(Xq, Xdb, gt, CFG, scoring.map_cutoff({}, CFG))
    assert out["map"] == pytest.approx(1.0) and out["map_at_k"] == pytest.approx(1.0)  # its own ground truth


def _bow_file(tmp_path, rng, n, n_words):
    """A sparse bag of words with many empty overlaps (zero-score pairs) and one empty row."""
    import scipy.sparse as sp

    from pseudosup.features.bow import save_bow

    counts = sp.random(n, n_words, density=0.08, random_state=np.random.RandomState(int(rng.integers(1 << 30))),
                       data_rvs=lambda k: rng.integers(1, 4, k)).tolil().astype(np.int32)
    counts[5] = 0
    counts = counts.tocsr()
    counts.eliminate_zeros()
    idf = rng.random(n_words).astype(np.float32) + 0.5
    save_bow(tmp_path / "f.bow.npz", counts, idf, {"feature": "sift-bow"})
    return tmp_path / "f.bow.npz", counts.toarray() * idf


def _brute_force_aps(S, mask, rule, rng):
    """AP per query of the ranking by decreasing similarity S, ties ordered by `rule`:
    index (stable), optimistic / pessimistic (relevant first / last), or the mean over
    200 random orders (`expected`, which the code computes exactly)."""
    aps = []
    for s, m in zip(S, mask):
        if rule == "expected":
            keys = [np.lexsort((rng.random(len(s)), -s)) for _ in range(200)]
        else:
            tb = {"index": np.zeros(len(s)), "optimistic": ~m, "pessimistic": m}[rule]
            keys = [np.lexsort((np.arange(len(s)), tb, -s))]
        aps.append(np.mean([R.ap_of_ranking(m[o], 20)[0] for o in keys]))
    return np.array(aps)


@pytest.mark.parametrize("rule", ["index", "optimistic", "pessimistic", "expected"])
@pytest.mark.parametrize("relevance", ["class", "multilabel"])
def test_cosine_bow_ranking_equals_brute_force_cosine(tmp_path, relevance, rule):
    """The inverted-index cosine ranking scores what a dense cosine scores, the many
    zero-similarity ties ordered by the tie rule."""
    rng = np.random.default_rng(11)
    path, W = _bow_file(tmp_path, rng, 70, 40)
    q, db = np.arange(0, 70, 7), np.setdiff1d(np.arange(70), np.arange(0, 70, 7))
    if relevance == "class":
        labels = rng.integers(0, 3, 70)
        rel = R.ClassRelevance(labels[q], labels[db])
    else:
        labels = rng.random((70, 3)) < 0.4
        rel = R.MultiLabelRelevance(labels[q], labels[db])
    out = scoring.cosine_bow_metrics(E.load_bow_rows(path, 70), q, db, rel, {**CFG, "tie_rule": rule})
    norm = np.linalg.norm(W, axis=1, keepdims=True)
    U = np.divide(W, norm, out=np.zeros_like(W), where=norm > 0)
    S = (U[q] @ U[db].T).astype(np.float32)  # the index scores in float32: equal values stay equal
    aps = _brute_force_aps(S, rel.mask(0, len(q)), rule, rng)
    assert out["map"] == pytest.approx(aps.mean(), abs=0.01 if rule == "expected" else 1e-6)
    assert out["zero_score_fraction"] == pytest.approx(np.mean(S <= 1e-7), abs=1e-6) and out["zero_score_fraction"] > 0
    if relevance == "multilabel":
        assert "ndcg" in out


def test_tie_rules_order_real_valued_ties():
    """On distances full of ties the rules differ and are ordered; without ties they agree."""
    rng = np.random.default_rng(13)
    rel = R.ClassRelevance(rng.integers(0, 2, 8), rng.integers(0, 2, 50))
    tied = rng.integers(0, 3, (8, 50)).astype(np.float64)
    got = {r: R.tie_aware_metrics_by_distance(lambda a, b: tied[a:b], 8, rel, 10, r, 3, 20)
           for r in ("optimistic", "expected", "pessimistic", "index")}
    assert (got["optimistic"]["ap"] >= got["expected"]["ap"] - 1e-12).all()
    assert (got["expected"]["ap"] >= got["pessimistic"]["ap"] - 1e-12).all()
    assert got["optimistic"]["ap"].mean() > got["pessimistic"]["ap"].mean()
    distinct = rng.random((8, 50))
    a, b = (R.tie_aware_metrics_by_distance(lambda x, y: distinct[x:y], 8, rel, 10, r, 3, 20)
            for r in ("expected", "index"))
    for key in ("ap", "precision_at_k", "ap_at_k"):
        np.testing.assert_allclose(a[key], b[key], atol=1e-12)


def test_cosine_bow_of_other_items_is_refused(tmp_path):
    rng = np.random.default_rng(12)
    path, _ = _bow_file(tmp_path, rng, 30, 20)
    with pytest.raises(PseudosupError, match="f.bow.npz has 30 rows but the dense features have 31"):
        E.load_bow_rows(path, 31)
