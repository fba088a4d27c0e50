"""The train/evaluate stage helpers: checks before training, and the metrics a run
file gets for each relevance type (class, groundtruth, multilabel) and tie rule."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pseudosup.evaluation import ranking as R
from pseudosup.io import PseudosupError
from pseudosup.methods import codes as C
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
        out = E._hamming_metrics(qc, dbc, 8, rel, split, cfg, 1)
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
    out = E._hamming_metrics(qc, dbc, 8, rel, SimpleNamespace(extra={"map_at": 40}), cfg, 1)
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
    out = E._euclidean_metrics(Xq, Xdb, ml, SimpleNamespace(extra={}), CFG)
    assert {"ndcg", "acg", "wap", "map"} <= set(out)
    gt = R.ListRelevance(R.euclidean_ground_truth(Xq, Xdb, 10), 60)
    out = E._euclidean_metrics(Xq, Xdb, gt, SimpleNamespace(extra={}), CFG)
    assert out["map"] == pytest.approx(1.0) and out["map_at_k"] == pytest.approx(1.0)  # its own ground truth
