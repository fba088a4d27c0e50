"""The deep unsupervised hashers on frozen features (SDC, sdc_rnn, sdc_graph, MLS3RDUH,
Bi-half, GreedyHash):
determinism, model files, their losses against naive definitions, bit balance, a case
with a known answer, and that labels never reach them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from pseudosup import codes as C
from pseudosup.io import PseudosupError, load_npz, save_npz
from pseudosup.methods import registry

HEADS = ["sdc", "sdc_rnn", "sdc_graph", "mls3rduh", "bihalf", "greedyhash"]
FAST = {"epochs": 6, "batch_size": 32, "lr": 1e-3}


def clusters(n_per=60, groups=4, d=24, noise=0.35, seed=0):
    """Items around `groups` orthogonal directions (non-negative, like ReLU features):
    the right answer of retrieval is the item's own group."""
    rng = np.random.default_rng(seed)
    centres = np.eye(d)[:groups] * 3 + 0.5
    X = np.repeat(centres, n_per, axis=0) + noise * rng.standard_normal((groups * n_per, d))
    return np.abs(X).astype(np.float32), np.repeat(np.arange(groups), n_per)


@pytest.fixture(autouse=True)
def one_thread():
    import torch
    torch.set_num_threads(1)


@pytest.mark.parametrize("name", HEADS)
def test_same_seed_same_codes_and_the_model_file_round_trips(name, tmp_path):
    X, _ = clusters()
    cls = registry.get(name)
    a, b = cls(16, FAST, seed=3).fit(X), cls(16, FAST, seed=3).fit(X)
    assert np.array_equal(a.encode(X), b.encode(X))
    save_npz(tmp_path / "m.npz", {"hasher": name}, **a.arrays())
    _, arrays = load_npz(tmp_path / "m.npz")
    c = cls.from_arrays(16, FAST, 3, arrays)
    assert np.array_equal(a.encode(X), c.encode(X))
    assert a.encode(X).shape == (len(X), 2) and a.encode(X).dtype == np.uint8
    other = cls(16, FAST, seed=4).fit(X)
    assert not np.array_equal(a.project(X), other.project(X))


@pytest.mark.parametrize("name", HEADS)
def test_training_loss_decreases_and_groups_are_retrieved(name):
    X, groups = clusters()
    # centred, the groups' cosines are -1/3 between and about 1 within: codes can match
    # them exactly with balanced bits (uncentred, Bi-half's balance fights the targets)
    model = registry.get(name)(16, {**FAST, "epochs": 40, "center": True}, seed=0).fit(X)
    losses = [h["loss"] for h in model.history if "loss" in h]
    assert losses[-1] < losses[0]
    bits = C.unpack(model.encode(X), 16).astype(np.int8)
    dist = (bits[:, None, :] != bits[None, :, :]).sum(-1).astype(float)
    np.fill_diagonal(dist, np.inf)
    # each item's 10 nearest codes (ties broken by index) come from its own group
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :10]
    assert (groups[nearest] == groups[:, None]).mean() > 0.95


# GreedyHash has no balance term: on these non-negative features many of its bits are
# constant (seen), so it is not held to this
@pytest.mark.parametrize("name", ["sdc", "sdc_rnn", "sdc_graph", "bihalf"])
def test_bits_are_roughly_balanced(name):
    X, _ = clusters(n_per=100)
    bits = C.unpack(registry.get(name)(16, {**FAST, "epochs": 20}, seed=1).fit(X).encode(X), 16)
    # 4 balanced groups: a bit set for 0 or 4 of them carries nothing; most bits split them
    assert np.mean(np.abs(bits.mean(0) - 0.5) < 0.4) >= 0.75


def test_calibration_targets_are_the_beta_quantiles():
    from scipy import stats

    from pseudosup.methods.hashing.sdc import calibration_targets

    t = calibration_targets(32, 5.0, 5.0, clip_at_zero=False)
    for i in (0, 7, 31):
        assert t[i] == pytest.approx(2 * stats.beta.ppf((2 * i + 1) / 64, 5, 5) - 1)
    assert np.all(np.diff(t) > 0) and np.allclose(t, -t[::-1])  # symmetric for a = b
    assert np.array_equal(calibration_targets(32, 5, 5, True), np.maximum(t, 0))


def test_sdc_calibration_loss_equals_its_naive_definition():
    import torch

    from pseudosup.methods.hashing.sdc import calibration_targets

    model = registry.get("sdc")(8, {"quan": 0.0})
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((10, 6)).astype(np.float32))
    v = torch.from_numpy(rng.standard_normal((10, 8)).astype(np.float32))
    rec, _ = model._sdc_terms(x, v)
    xn, vn = x.numpy(), v.numpy()

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    feat = [cos(xn[i], xn[i + 5]) for i in range(5)]
    code = [cos(vn[i], vn[i + 5]) for i in range(5)]
    target = calibration_targets(5, 5, 5, False)
    naive = np.mean([abs(code[i] - target[r]) for r, i in enumerate(np.argsort(feat, kind="stable"))])
    assert float(rec) == pytest.approx(naive, abs=1e-5)


def test_simclr_equals_the_naive_nt_xent():
    import torch

    from pseudosup.methods.hashing.sdc import simclr

    rng = np.random.default_rng(1)
    z1, z2 = (rng.standard_normal((4, 5)).astype(np.float32) for _ in range(2))
    loss = float(simclr(torch.from_numpy(z1), torch.from_numpy(z2), 0.3))
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    total = 0.0
    for i in range(8):
        j = (i + 4) % 8
        logits = [z[i] @ z[k] / 0.3 for k in range(8) if k != i]
        total += -(z[i] @ z[j] / 0.3) + math.log(sum(math.exp(s) for s in logits))
    assert loss == pytest.approx(total / 8, rel=1e-5)


def test_bihalf_codes_split_every_bit_in_half_with_the_authors_gradient():
    import torch

    from pseudosup.methods.hashing.bihalf import bihalf

    h = torch.randn(10, 6, requires_grad=True)
    b = bihalf(h, 6.0)
    assert torch.all(b.sum(0) == 0)  # 5 of 10 above the median in every column (no ties)
    g = torch.randn(10, 6)
    b.backward(g)
    assert torch.allclose(h.grad, g + 6.0 / 60 * (h.detach() - b.detach()))


def test_greedyhash_sign_passes_the_gradient_straight_through():
    import torch

    from pseudosup.methods.hashing.greedyhash import sign_straight_through

    h = torch.tensor([-0.3, 0.2, 1.5], requires_grad=True)
    b = sign_straight_through(h)
    assert b.tolist() == [-1.0, 1.0, 1.0]
    (b * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert h.grad.tolist() == [1.0, 2.0, 3.0]


def test_sdc_rnn_positives_are_reversible_neighbours_or_the_item_itself():
    from pseudosup.mining.knn import knn_graph

    X, _ = clusters(n_per=20)
    X[0] = 100 * np.eye(X.shape[1])[-1]  # an outlier: nobody has it among their neighbours
    model = registry.get("sdc_rnn")(8, {**FAST, "neighbours": 3})
    model._prepare(X, np.random.default_rng(0))
    _, nbr = knn_graph(X, 3, metric="cosine")
    rows = np.arange(len(X))
    pos = model._positives(rows, np.random.default_rng(1))
    for i, j in zip(rows, pos):
        if j == i:
            assert not any(i in nbr[k] and k in nbr[i] for k in range(len(X)) if k != i)
        else:
            assert j in nbr[i] and i in nbr[j]
    assert pos[0] == 0 and (pos != rows).sum() > len(X) // 2


@pytest.mark.parametrize("name", HEADS)
def test_labels_are_refused_and_bad_input_is_a_clear_error(name):
    X, groups = clusters()
    cls = registry.get(name)
    assert not registry.entry(name).supervised
    with pytest.raises(PseudosupError, match="takes no labels"):
        cls(16, FAST).fit(X, groups)
    with pytest.raises(PseudosupError, match="batch_size"):
        cls(16, FAST).fit(X[:10])
    bad = X.copy()
    bad[3, 5] = np.nan
    with pytest.raises(PseudosupError, match=r"columns \[5\]"):
        cls(16, FAST).fit(bad)
    with pytest.raises(PseudosupError, match="not fitted"):
        cls(16, FAST).encode(X)


LABEL_FREE = [m for m, cfg in __import__("yaml").safe_load(
    (__import__("pathlib").Path(__file__).parents[1] / "params.yaml").read_text())["methods"].items()
    if not registry.entry(cfg["hasher"]).supervised]


@pytest.mark.parametrize("method", LABEL_FREE)
def test_no_training_path_of_a_label_free_method_reads_the_labels(method, tmp_path):
    """The train stage, given a raw directory that does not exist: every label-free
    method of params.yaml trains without it (nothing reads the labels or images), while
    a supervised one fails naming it - so the check can fail."""
    from .conftest import ROOT, run_cli
    from .test_provenance import TINY, features_of, write_features

    X, path = features_of(tmp_path)
    write_features(path, X)
    missing = tmp_path / "no-raw-here"
    # the real params, but torch heads train 2 epochs: the paths that could read labels
    # are the same at any epoch count (the suite's time budget)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for cfg in params["methods"].values():
        if registry.entry(cfg["hasher"]).torch:
            cfg["epochs"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "workflow" / "schemas").mkdir(parents=True)
    (tmp_path / "workflow" / "schemas" / "params.schema.yaml").symlink_to(ROOT / "workflow/schemas/params.schema.yaml")

    def train(m):
        return run_cli("train", "--params", str(tmp_path / "params.yaml"), "--keys", "seed", f"methods.{m}",
                       "--method", m, "--bits", "8", "--features", str(path), "--split", str(TINY),
                       "--dataset", "fashion-mnist", "--raw", str(missing), "--out", str(tmp_path / "m.npz"),
                       check=False)
    proc = train(method)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not missing.exists()
    if method == LABEL_FREE[0]:
        supervised = train("dsrh")
        assert supervised.returncode != 0 and "no-raw-here" in supervised.stderr
