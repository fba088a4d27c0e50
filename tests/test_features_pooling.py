"""CNN pooling, R-MAC regions and PCA-whitening against brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pseudosup.features import cnn, pooling


def _maps(seed=0, n=3, c=5, h=7, w=9):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h, w, generator=g) * 6
    x[0, 0] = 0  # a dead channel
    return x


def _brute(x: np.ndarray, method: str, p: float = 3.0, levels: int = 3) -> np.ndarray:
    """Loops over images, channels and pixels, straight from the definitions."""
    n, c, h, w = x.shape
    out = np.zeros((n, c))
    for i in range(n):
        for k in range(c):
            vals = [float(x[i, k, a, b]) for a in range(h) for b in range(w)]
            if method == "mac":
                out[i, k] = max(vals)
            elif method == "spoc":
                out[i, k] = sum(vals) / len(vals)
            elif method == "gem":
                out[i, k] = (sum(max(v, pooling.EPS) ** p for v in vals) / len(vals)) ** (1 / p)
        if method == "rmac":
            acc = np.zeros(c)
            for top, left, rh, rw in pooling.rmac_regions(h, w, levels):
                r = np.array([max(float(x[i, k, a, b]) for a in range(top, top + rh) for b in range(left, left + rw))
                              for k in range(c)])
                acc += r / max(np.linalg.norm(r), 1e-12)
            out[i] = acc
        norm = np.linalg.norm(out[i])
        out[i] = out[i] / norm if norm > 0 else 0
    return out


@pytest.mark.parametrize("method", pooling.POOLINGS)
def test_pooling_matches_brute_force(method):
    x = _maps()
    got = pooling.pool(x, method, p=3.0, levels=3).numpy()
    np.testing.assert_allclose(got, _brute(x.numpy(), method), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, rtol=1e-5)


def test_gem_limits_and_zero_maps():
    x = _maps()
    np.testing.assert_allclose(pooling.pool(x, "gem", p=1.0), pooling.pool(x, "spoc"), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(pooling.pool(x, "gem", p=200.0), pooling.pool(x, "mac"), atol=2e-2)
    z = torch.zeros(2, 4, 3, 3)
    for m in ("mac", "spoc", "rmac"):
        assert torch.equal(pooling.pool(z, m), torch.zeros(2, 4))  # zero, never NaN
    assert torch.isfinite(pooling.pool(z, "gem")).all()


def test_trainable_gem_gets_gradients():
    gem = pooling.GeM(3.0)
    x = _maps().requires_grad_()
    gem(x).sum().backward()
    assert gem.p.grad is not None and torch.isfinite(gem.p.grad) and torch.isfinite(x.grad).all()


def test_rmac_regions():
    # square map: level l has l x l squares of side floor(2 * 7 / (l + 1)); level 1 is the
    # whole map, which is also region 0, so it is not repeated
    regions = pooling.rmac_regions(7, 7, 3)
    assert regions[0] == (0, 0, 7, 7)
    sides = [r[2] for r in regions[1:]]
    assert len(regions) == 1 + 4 + 9 and sides.count(4) == 4 and sides.count(3) == 9
    for h, w in ((7, 7), (5, 12), (12, 5), (1, 1), (3, 30)):
        for top, left, rh, rw in pooling.rmac_regions(h, w, 3):
            assert 0 <= top and top + rh <= h and 0 <= left and left + rw <= w and rh >= 1
    # a wide map gets more regions along its long side
    wide = pooling.rmac_regions(6, 12, 1)
    assert len({r[1] for r in wide[1:]}) > 1 and len({r[0] for r in wide[1:]}) == 1


def test_whitening_decorrelates_the_learning_set_and_keeps_zero_rows():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 6)) @ rng.standard_normal((6, 6))
    w = cnn.fit_whitening(X, dim=4)
    Y = (X - w["mean"]) @ w["projection"]
    np.testing.assert_allclose(np.cov(Y, rowvar=False), np.eye(4), atol=1e-3)
    # brute force: principal directions from the SVD of the centred data
    _, s, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(w["projection"] * np.sqrt(w["eigenvalues"])), np.abs(vt[:4].T), atol=1e-4)
    Z = np.vstack([X[:3], np.zeros((1, 6))]).astype(np.float32)
    out = cnn.apply_whitening(Z, w)
    assert np.isfinite(out).all() and not out[3].any()
    np.testing.assert_allclose(np.linalg.norm(out[:3], axis=1), 1, rtol=1e-5)
    again = cnn.fit_whitening(X, dim=4)
    assert np.array_equal(again["projection"], w["projection"])  # deterministic signs


def test_torchvision_backbone_trunks_and_weight_errors(tmp_path):
    from pseudosup.io import PseudosupError

    b = cnn.load_backbone("mobilenet_v3_small", "random", seed=0)
    assert b.channels == 576 and b.source == {"weights": "random", "seed": 0}
    b2 = cnn.load_backbone("mobilenet_v3_small", "random", seed=0)
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(b.trunk(x), b2.trunk(x))  # seeded
    with pytest.raises(PseudosupError, match="not found"):
        cnn.load_backbone("mobilenet_v3_small", str(tmp_path / "missing.pth"))
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(PseudosupError, match="does not fit"):
        cnn.load_backbone("mobilenet_v3_small", str(tmp_path / "wrong.pth"))
    with pytest.raises(PseudosupError, match="unknown torchvision backbone"):
        cnn.load_backbone("no_such_net", "random")
    # a local state-dict file (what an offline user downloads) loads and is fingerprinted
    import torchvision
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    b3 = cnn.load_backbone("resnet18", str(tmp_path / "r18.pth"))
    assert len(b3.source["sha256"]) == 64 and b3.channels == 512
