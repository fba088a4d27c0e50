"""SH, LDPH (faithful), ldph_nn, DSRH and the mosaic builder: determinism, model-file
round trips through methods.models.load_model, their definitions, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pseudosup import codes as C
from pseudosup.data import mosaics, multilabel
from pseudosup.io import PseudosupError, save_npz
from pseudosup.methods import registry
from pseudosup.methods.hashing import dsrh, ldph

FAST_LDPH = {"pretrain_epochs": 2, "outer_iterations": 1, "pair_epochs": 1, "batch_size": 100, "pairs_per_sample": 2}
FAST = {"sh": {}, "ldph": FAST_LDPH, "ldph_nn": {**FAST_LDPH, "neighbours": 3, "random_partners": 2,
                                                  "select_queries": 50},
        "dsrh": {"epochs": 3, "hidden": 32, "batch_size": 64}}


def data(n=600, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 3.0


def multilabels(n, L=5, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, L)) < 0.35).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Y


@pytest.fixture(autouse=True)
def torch_one_thread(request):
    """Tiny torch models: several threads only spin-wait, badly so on a loaded machine."""
    if "dsrh" in request.node.name:
        import torch
        torch.set_num_threads(1)


def fit(name, bits, X, seed=1, params=None):
    model = registry.get(name)(bits, params if params is not None else FAST[name], seed)
    return model.fit(X, multilabels(len(X))) if getattr(model, "supervised", False) else model.fit(X)


@pytest.mark.parametrize("name", ["sh", "ldph", "ldph_nn", "dsrh"])
def test_same_seed_same_codes_and_load_model_rebuilds(name, tmp_path):
    from pseudosup.methods.models import load_model

    X = data()
    a, b = fit(name, 8, X), fit(name, 8, X)
    assert np.array_equal(a.encode(X), b.encode(X))
    meta = {"method": f"{name}-test", "hasher": name, "params": FAST[name], "bits": 8, "seed": 1, "dim": X.shape[1]}
    save_npz(tmp_path / "m.npz", json.loads(json.dumps(meta)), **a.arrays())
    c, got_meta = load_model(tmp_path / "m.npz")
    assert got_meta["hasher"] == name and np.array_equal(a.encode(X), c.encode(X))
    assert a.encode(X).shape == (len(X), 1)


def test_sh_first_bit_splits_a_uniform_line_in_the_middle():
    """1-D uniform data: the first eigenfunction sin(pi/2 + pi (x - min)/range) changes
    sign at the middle of the range."""
    x = np.linspace(0, 10, 1001)[:, None]
    X = np.hstack([x, 1e-3 * np.random.default_rng(0).standard_normal((1001, 1))])
    m = registry.get("sh")(1).fit(X)
    bit = C.unpack(m.encode(X), 1)[:, 0]
    side = x[:, 0] < 5.0
    assert np.mean(bit == side) > 0.99 or np.mean(bit != side) > 0.99


def test_sh_modes_are_the_smallest_eigenvalues():
    modes = registry.get("sh")(6).fit(data(500, 4)).arrays()["modes"]
    assert np.all((modes > 0).sum(1) == 1) and len(modes) == 6  # single-direction, constant mode excluded


@pytest.mark.parametrize("bits", [8, 32, 64])
def test_sh_eigenfunctions_equal_the_product_over_every_direction(bits):
    """Spectral hashing's definition multiplies sin(pi/2 + omega_d x_d) over all PCA
    directions d; the encoder skips the directions a mode does not use. Same values,
    bit for bit, also for a mode using two directions."""
    X = data(400, 40)
    m = registry.get("sh")(bits).fit(X)
    a = m.arrays()
    V = (X.astype(np.float64) - a["mean"]) @ a["P"] - a["lo"]

    def product(modes):
        omega = modes * (np.pi / (a["hi"] - a["lo"]))[None, :]
        out = np.ones((len(V), len(modes)))
        for j in range(V.shape[1]):
            out *= np.sin(np.pi / 2 + V[:, j:j + 1] * omega[None, :, j])
        return out

    assert np.array_equal(m.project(X), product(a["modes"]))
    m.arrays_["modes"] = a["modes"].copy()
    m.arrays_["modes"][0, np.flatnonzero(a["modes"][0] == 0)[0]] = 2.0   # a two-direction mode
    assert np.array_equal(m.project(X), product(m.arrays_["modes"]))


def test_ldph_network_gradient_equals_finite_differences():
    rng = np.random.default_rng(0)
    net = ldph.Net([5, 5, 4], rng, dropout=0.0)
    x, y = rng.standard_normal((7, 5)), (rng.random((7, 4)) > 0.5).astype(float)

    def loss():
        return 0.5 * ((y - net.forward(x)[2]) ** 2).sum() / len(x)

    acts, masks, out = net.forward(x)
    grads = net.backward(acts, masks, out, y - out)
    for W, g in zip(net.W, grads):
        num = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + 1e-6
            up = loss()
            W[idx] = old - 1e-6
            num[idx] = (up - loss()) / 2e-6
            W[idx] = old
        assert np.allclose(g, num, atol=1e-7)


def test_ldph_orthogonality_update_is_the_gradient_of_its_penalty():
    """beta (W + (W W^T - I) W) = grad of beta/2 |W|^2 + beta/4 |W W^T - I|^2 (biases excluded)."""
    rng = np.random.default_rng(1)
    net = ldph.Net([3, 3, 3], rng, dropout=0.0)
    net.vW = [np.zeros_like(w) for w in net.W]
    W0 = [w.copy() for w in net.W]
    net.apply([np.zeros_like(w) for w in net.W], lr=1.0, momentum=0.0, l2=0.1, orthogonal=True)
    for before, after in zip(W0, net.W):
        Wn = before[:, 1:]
        f = lambda M: 0.05 * (M ** 2).sum() + 0.025 * ((M @ M.T - np.eye(len(M))) ** 2).sum()  # noqa: E731
        num = np.zeros_like(Wn)
        for idx in np.ndindex(Wn.shape):
            P, Mn = Wn.copy(), Wn.copy()
            P[idx] += 1e-6
            Mn[idx] -= 1e-6
            num[idx] = (f(P) - f(Mn)) / 2e-6
        assert np.allclose(before[:, 1:] - after[:, 1:], num, atol=1e-6)
        assert np.allclose(before[:, 0], after[:, 0])  # biases untouched


def test_ldph_least_squares_matches_polyfit():
    rng = np.random.default_rng(2)
    de = rng.random(200) * 5
    dh = 3 + 2 * de + rng.standard_normal(200)
    b1, b2 = ldph.ols(dh, de)
    slope, icpt = np.polyfit(de, dh, 1)
    assert b1 == pytest.approx(icpt) and b2 == pytest.approx(slope)


def test_ldph_pair_error_is_the_gradient_of_the_pair_loss():
    """err = alpha (U - h) - lambda (d_H - b2 d_E - b1)(1 - 2 h_partner)/bits is minus the
    gradient (in h) of alpha/2 |U - h|^2 + lambda/(2 bits) (d_H - b2 d_E - b1)^2 with the
    partner's rounded code held fixed (d_H relaxed as sum h (1 - 2 H') + H')."""
    rng = np.random.default_rng(3)
    m = ldph.LDPH(6, {})
    out = rng.random((4, 6)) * 0.8 + 0.1
    U = (rng.random((4, 6)) > 0.5).astype(float)
    de, w = rng.random(2), np.ones(2)
    err = m._pair_error(out, U, U, de, w, 0.5, 1.2, 0.1, 0.5)
    H = np.round(out)
    for r in range(4):
        partner = H[(r + 2) % 4]
        d_hard = (H[r] != partner).sum()
        diff = d_hard - 1.2 * de[r % 2] - 0.5
        grad = -0.1 * (U[r] - out[r]) + 0.5 / 6 * diff * (1 - 2 * partner)
        assert np.allclose(err[r], -grad)


@pytest.mark.parametrize("params, bits, X, msg", [
    ({"reference": "nope"}, 8, data(100, 8), "unknown hasher 'nope'"),
    ({}, 16, data(100, 8), "only 8"),
    ({}, 8, np.hstack([data(100, 8), np.full((100, 8), np.nan)]), "NaN"),
    ({}, 8, np.zeros((0, 16)), "non-empty"),
    ({}, 16, np.hstack([data(200, 8), np.ones((200, 8))]), "constant"),
])
def test_ldph_bad_input_is_a_clear_error_before_training(params, bits, X, msg):
    with pytest.raises(PseudosupError, match=msg):
        registry.get("ldph")(bits, {**FAST_LDPH, **params}).fit(X)


def test_ldph_nn_needs_a_linear_reference():
    with pytest.raises(PseudosupError, match="not a linear hasher"):
        fit("ldph_nn", 8, data(), params={**FAST["ldph_nn"], "reference": "sh"})


def test_ldph_nn_partners_are_exact_up_to_the_limit_then_approximate_with_measured_recall():
    from pseudosup.mining.knn import knn_graph

    X = data(2000, 16, seed=3)
    exact = fit("ldph_nn", 8, X)
    (search,) = [h["neighbour_search"] for h in exact.history if "neighbour_search" in h]
    assert search["index"] == "exact" and search["recall_at_k"] == 1.0
    # the same partners as brute-force search of the training features
    assert np.array_equal(exact.neighbour_graph, knn_graph(X, 3)[1])
    approx = fit("ldph_nn", 8, X, params={**FAST["ldph_nn"], "neighbour_exact_max": 1000, "neighbour_recall": 0.9})
    (search,) = [h["neighbour_search"] for h in approx.history if "neighbour_search" in h]
    assert search["index"] == "ivf" and search["n"] == 2000 and search["nprobe"] >= 1
    # the recall it reports is the one a check against exact search gives
    hits = np.mean([len(set(a) & set(b)) / 3 for a, b in zip(approx.neighbour_graph, exact.neighbour_graph)])
    assert search["recall_at_k"] >= 0.9 and hits >= 0.85


def test_ldph_accepts_any_registered_reference():
    for ref in ("lsh", "pcah", "sh"):
        m = fit("ldph", 8, data(300), params={**FAST_LDPH, "reference": ref})
        assert m.encode(data(10)).shape == (10, 1)


def test_dsrh_triplets_follow_the_authors_sampling():
    Y = multilabels(80, seed=4)
    rel = Y.astype(int) @ Y.T.astype(int)
    q, p, n, w = dsrh.sample_triplets(Y, np.random.default_rng(0))
    assert len(q) > 0 and np.all(q != p) and np.all(q != n)
    assert np.all(rel[q, n] < rel[q, p]) and np.all(w > 0)
    for qi, pi, ni, wi in zip(q, p, n, w):
        if rel[qi].max() <= 1 or rel[qi, pi] < rel[qi].max() and rel[qi, ni] == 0 and wi == pytest.approx(np.log(2)):
            continue
    # the triple of a query with levels r1 > r2 > 0: weights (2^r1 - 2^r2)/Z, (2^r1 - 1)/Z, (2^r2 - 1)/Z
    for qi in np.unique(q):
        sel = np.flatnonzero(q == qi)
        if len(sel) == 3:
            r1, r2 = rel[qi, p[sel[0]]], rel[qi, n[sel[0]]]
            z = (2.0 ** r1 - 1) / np.log(2) + (2.0 ** r2 - 1) / np.log(3)
            assert np.allclose(w[sel], np.array([2.0 ** r1 - 2.0 ** r2, 2.0 ** r1 - 1, 2.0 ** r2 - 1]) / z, atol=1e-6)


def test_dsrh_learns_the_labels_better_than_chance():
    from pseudosup.evaluation import ranking as R

    rng = np.random.default_rng(5)
    Y = multilabels(400, seed=5)
    X = Y @ rng.standard_normal((5, 20)) + 0.5 * rng.standard_normal((400, 20))
    m = registry.get("dsrh")(16, {"epochs": 15, "hidden": 64}, 0).fit(X[:300], Y[:300])
    counts = R.level_histograms(m.encode(X[300:]), m.encode(X[:300]), 16, R.MultiLabelRelevance(Y[300:], Y[:300]))
    ndcg = R.graded_metrics(counts)["ndcg"].mean()
    rand = R.graded_metrics(R.level_histograms(C.pack(rng.random((100, 16)) < .5), C.pack(rng.random((300, 16)) < .5),
                                               16, R.MultiLabelRelevance(Y[300:], Y[:300])))["ndcg"].mean()
    assert ndcg > rand + 0.1


def test_dsrh_without_labels_is_a_clear_error():
    with pytest.raises(PseudosupError, match="labels"):
        registry.get("dsrh")(8, FAST["dsrh"]).fit(data(50))


def test_dsrh_cnn_image_path_runs_and_round_trips(tmp_path):
    """MobileNetV2 (random weights here) + head, from uint8 images to codes and back."""
    from pseudosup.methods.models import load_model

    rng = np.random.default_rng(6)
    imgs = rng.integers(0, 256, size=(24, 32, 32, 3), dtype=np.uint8)
    Y = multilabels(24, seed=6)
    m = registry.get("dsrh_cnn")(8, {"epochs": 1, "hidden": 16, "image_size": 32}, 0).fit(imgs, Y)
    codes = m.encode(imgs)
    assert codes.shape == (24, 1)
    params = {"epochs": 1, "hidden": 16, "image_size": 32}
    save_npz(tmp_path / "m.npz", {"hasher": "dsrh_cnn", "params": params, "bits": 8, "seed": 0}, **m.arrays())
    again, _ = load_model(tmp_path / "m.npz")
    assert np.array_equal(again.encode(imgs), codes)


def test_mosaics_are_seeded_and_labelled_by_the_classes_present():
    rng = np.random.default_rng(7)
    imgs = rng.integers(0, 256, size=(200, 4, 4, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 20)
    a = mosaics.mosaic_protocol(imgs, labels, seed=3, n_database=50, n_queries=10, query_per_class=2)
    b = mosaics.mosaic_protocol(imgs, labels, seed=3, n_database=50, n_queries=10, query_per_class=2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not set(a["query_sources"].ravel()) & set(a["db_sources"].ravel())  # disjoint pools
    for mos, lab, src in zip(a["db_images"], a["db_labels"], a["db_sources"]):
        assert np.array_equal(np.flatnonzero(lab), np.unique(labels[src]))
        assert np.array_equal(mos[:4, :4], imgs[src[0]]) and np.array_equal(mos[4:, 4:], imgs[src[3]])
    assert a["db_images"].shape == (50, 8, 8, 3)


@pytest.mark.shared_data
def test_scene_reader_on_the_real_files():
    from tests.conftest import SHARED

    X, Y, n_train = multilabel.read_scene(SHARED / "scene")
    assert X.shape == (2407, 294) and Y.shape == (2407, 6) and n_train == 1211
    assert 0 <= X.min() and X.max() <= 1 and set(np.unique(Y)) == {0, 1}


def test_scene_reader_names_a_bad_file(tmp_path):
    (tmp_path / "scene-train.arff").write_text("1,2,3\n")
    (tmp_path / "scene-test.arff").write_text("1,2,3\n")
    with pytest.raises(PseudosupError, match="scene-train.arff: 3 columns"):
        multilabel.read_scene(tmp_path)


def test_blocked_pca_projection_and_pair_distances_equal_their_one_shot_definitions():
    from pseudosup.methods.hashing import base

    X = data(1000, 12, seed=5).astype(np.float32)
    X64 = X.astype(np.float64)
    mean, W = base.pca(X, 5, chunk=97)          # blocks that do not divide n
    vals, vecs = np.linalg.eigh(np.cov(X64 - X64.mean(0), rowvar=False))
    ref = vecs[:, np.argsort(vals)[::-1][:5]]
    ref *= np.sign(ref[np.abs(ref).argmax(0), np.arange(5)])
    assert np.allclose(mean, X64.mean(0), rtol=1e-12) and np.allclose(W, ref, atol=1e-9)
    assert np.allclose(base.project(X, mean, W, chunk=97), (X64 - mean) @ W, rtol=1e-12, atol=1e-12)
    pairs = np.random.default_rng(0).integers(0, 1000, (500, 2))
    naive = np.sqrt(((X64[pairs[:, 0]] - X64[pairs[:, 1]]) ** 2).sum(axis=1))
    assert np.array_equal(ldph.pair_distances(X, pairs, chunk=7), naive)
