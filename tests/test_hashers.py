"""Hashers: determinism, round-trips of model files, ITQ's objective, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pseudosup import codes as C
from pseudosup.io import PseudosupError, load_npz, save_npz
from pseudosup.methods import registry


def data(n=600, d=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 3.0


@pytest.mark.parametrize("name", ["lsh", "pcah", "itq"])
def test_same_seed_same_codes_and_model_file_round_trip(name, tmp_path):
    X = data()
    cls = registry.get(name)
    a, b = cls(16, {}, seed=1).fit(X), cls(16, {}, seed=1).fit(X)
    assert np.array_equal(a.encode(X), b.encode(X))
    save_npz(tmp_path / "m.npz", {"hasher": name}, **a.arrays())
    meta, arrays = load_npz(tmp_path / "m.npz")
    c = cls.from_arrays(16, {}, 1, arrays)
    assert meta["hasher"] == name and np.array_equal(a.encode(X), c.encode(X))
    codes = a.encode(X)
    assert codes.shape == (len(X), 2) and codes.dtype == np.uint8


def quantization_loss(model, X):
    V = model.project(X)
    return float(((np.sign(V) - V / np.abs(V).mean()) ** 2).mean())


def test_itq_rotation_lowers_quantization_error_vs_pca():
    X = data(2000, 32)
    pcah = registry.get("pcah")(16).fit(X)
    itq = registry.get("itq")(16, {"n_iter": 50}).fit(X)
    # Same subspace, rotated: ITQ's objective ||B - V R||^2 must be lower.
    Vp, Vi = pcah.project(X), itq.project(X)
    assert np.allclose((Vp ** 2).sum(1), (Vi ** 2).sum(1))
    def loss(V):
        return float(((np.where(V >= 0, 1, -1) - V) ** 2).sum())
    assert loss(Vi) < loss(Vp)


def test_pcah_bits_are_balanced_on_centred_gaussian():
    X = data(5000, 16)
    bits = C.unpack(registry.get("pcah")(8).fit(X).encode(X), 8)
    assert np.all(np.abs(bits.mean(0) - 0.5) < 0.05)


@pytest.mark.parametrize("X, bits, msg", [
    (data(100, 8), 16, "only 8"),
    (np.full((50, 8), np.nan), 4, "NaN"),
    (np.zeros((0, 8)), 4, "non-empty"),
])
def test_bad_training_data_is_a_clear_error(X, bits, msg):
    with pytest.raises(PseudosupError, match=msg):
        registry.get("itq")(bits).fit(X)


def test_unknown_hasher():
    with pytest.raises(PseudosupError, match="unknown hasher 'nope'"):
        registry.get("nope")


def test_dimension_mismatch_at_encode_time():
    m = registry.get("lsh")(8).fit(data(50, 6))
    with pytest.raises(PseudosupError, match="expects 6"):
        m.encode(data(10, 7))
