"""Our sdc_graph: SDC with its calibration order taken from kNN-graph-smoothed features.
The teacher equals its naive definition; with 0 hops it *is* SDC (same seed, same
codes); determinism, model file, bit balance, a known answer where the graph repairs
the order raw cosines get wrong, and no labels."""

from __future__ import annotations

import numpy as np
import pytest

from pseudosup import codes as C
from pseudosup.io import PseudosupError, load_npz, save_npz
from pseudosup.methods import registry
from pseudosup.methods.hashing.sdc_graph import smoothed_features

FAST = {"epochs": 6, "batch_size": 32, "lr": 1e-3}


@pytest.fixture(autouse=True)
def one_thread():
    import torch
    torch.set_num_threads(1)


def naive_smoothing(X, k, hops, power):
    """t_i <- normalise(t_i + sum over i's k nearest others (cosine, ties by index) of
    max(cos, 0)^power t_j), hops times, from the unit rows; the graph from the raw X."""
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = U @ U.T
    T = U.copy()
    nbrs = []
    for i in range(len(X)):
        order = [j for j in np.argsort(-cos[i], kind="stable") if j != i][:k]
        nbrs.append(order)
    for _ in range(hops):
        new = np.empty_like(T)
        for i, js in enumerate(nbrs):
            v = T[i] + sum(max(cos[i, j], 0) ** power * T[j] for j in js)
            new[i] = v / np.linalg.norm(v)
        T = new
    return T


def test_teacher_equals_its_naive_definition():
    rng = np.random.default_rng(0)
    X = np.abs(rng.standard_normal((80, 12))).astype(np.float32)
    for hops in (0, 1, 3):
        got = smoothed_features(X, 5, hops, 3.0)
        np.testing.assert_allclose(got, naive_smoothing(X.astype(np.float64), 5, hops, 3.0), atol=2e-5)


def test_zero_hops_is_sdc_itself():
    rng = np.random.default_rng(1)
    X = np.abs(rng.standard_normal((128, 16))).astype(np.float32)
    a = registry.get("sdc_graph")(16, {**FAST, "hops": 0}, seed=2).fit(X)
    b = registry.get("sdc")(16, FAST, seed=2).fit(X)
    assert np.array_equal(a.encode(X), b.encode(X))


def test_same_seed_same_codes_model_file_and_balance(tmp_path):
    rng = np.random.default_rng(3)
    X = np.abs(rng.standard_normal((200, 16)) + np.repeat(np.eye(16)[:4] * 3, 50, axis=0)).astype(np.float32)
    cls = registry.get("sdc_graph")
    a, b = cls(16, FAST, seed=5).fit(X), cls(16, FAST, seed=5).fit(X)
    assert np.array_equal(a.encode(X), b.encode(X))
    save_npz(tmp_path / "m.npz", {"hasher": "sdc_graph"}, **a.arrays())
    _, arrays = load_npz(tmp_path / "m.npz")
    assert np.array_equal(cls.from_arrays(16, FAST, 5, arrays).encode(X), a.encode(X))
    assert a.history[0]["hops"] == 3 and 0 < a.history[0]["mean_cos_teacher_raw"] <= 1
    bits = C.unpack(cls(16, {**FAST, "epochs": 20}, seed=1).fit(X).encode(X), 16)
    assert np.mean(np.abs(bits.mean(0) - 0.5) < 0.4) >= 0.75


def noisy_classes(n_per=100, d=40, noise=0.9, seed=0):
    """Two classes around orthogonal directions with heavy isotropic noise: a pair's raw
    cosine says its class only roughly, but most of an item's nearest neighbours share
    its class, so averaging over them (the graph) removes much of the noise."""
    rng = np.random.default_rng(seed)
    centres = np.eye(d)[:2] * 3
    X = np.repeat(centres, n_per, axis=0) + noise * 9 / np.sqrt(d) * rng.standard_normal((2 * n_per, d))
    return X.astype(np.float32), np.repeat([0, 1], n_per)


def pair_auc(T, y):
    """Probability that a same-class pair has a higher cosine than a cross-class pair."""
    U = T / np.linalg.norm(T, axis=1, keepdims=True)
    S = U @ U.T
    same, off = y[:, None] == y[None, :], ~np.eye(len(y), dtype=bool)
    pos, neg = np.sort(S[same & off]), S[~same]
    return 1 - np.searchsorted(pos, neg, side="right").sum() / (len(pos) * len(neg))


def test_the_graph_teacher_orders_pairs_by_class_better_than_raw_cosines():
    X, y = noisy_classes()
    raw = pair_auc(X, y)
    assert 0.6 < raw < 0.9      # the raw order is informative but noisy
    assert pair_auc(smoothed_features(X, 10, 1, 3.0), y) > raw + 0.03
    assert pair_auc(smoothed_features(X, 10, 3, 3.0), y) > pair_auc(smoothed_features(X, 10, 1, 3.0), y)


def test_labels_are_refused_and_bad_input_named():
    X = np.abs(np.random.default_rng(0).standard_normal((64, 8))).astype(np.float32)
    with pytest.raises(PseudosupError, match="no labels"):
        registry.get("sdc_graph")(8, FAST).fit(X, np.zeros(64))
    X[3, 5] = np.nan
    with pytest.raises(PseudosupError, match=r"columns \[5\]"):
        registry.get("sdc_graph")(8, FAST).fit(X)
