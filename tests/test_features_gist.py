"""GIST: the vectorised implementation against a loop-per-filter reference written from
the definition, and invariants (intensity affine maps, constant images, orientation
and scale selectivity on gratings). The LEAR C implementation could not be installed
from a package registry (PyPI `pyleargist` 2.0.5 is Python-2 only), so it is not a
reference here."""

from __future__ import annotations

import numpy as np
import pytest

from pseudosup.features import gist


def _reference(img: np.ndarray, orientations=(8, 8, 8, 8), blocks=4, fc=4.0, boundary=32) -> np.ndarray:
    """One image, one channel at a time where possible, one filter at a time, explicit
    frequency coordinates (no fftshift) and explicit block loops."""
    x = img.astype(np.float64)
    x = x[:, :, None] if x.ndim == 2 else x
    x = x - x.min()
    x = x * 255 / x.max() if x.max() > 0 else x * 0
    # prefilter
    w = 5
    x = np.log(x + 1)
    x = np.pad(x, ((w, w), (w, w), (0, 0)), mode="symmetric")
    sn, sm = x.shape[:2]
    n = max(sn, sm) + max(sn, sm) % 2
    x = np.pad(x, ((0, n - sn), (0, n - sm), (0, 0)), mode="symmetric")
    fr = np.array([k if k < n / 2 else k - n for k in range(n)], dtype=np.float64)
    fy, fx = np.meshgrid(fr, fr, indexing="ij")
    s1 = fc / np.sqrt(np.log(2))
    gf = np.exp(-(fx ** 2 + fy ** 2) / s1 ** 2)
    out = np.stack([x[:, :, c] - np.real(np.fft.ifft2(np.fft.fft2(x[:, :, c]) * gf)) for c in range(x.shape[2])], 2)
    local = np.sqrt(np.abs(np.fft.ifft2(np.fft.fft2(out.mean(axis=2) ** 2) * gf)))
    out = (out / (0.2 + local[:, :, None]))[w:sn - w, w:sm - w]
    # Gabor energies
    h, wd = out.shape[:2]
    padded = np.pad(out, ((boundary, boundary), (boundary, boundary), (0, 0)), mode="symmetric")
    N = padded.shape[0]
    fr = np.array([k if k < N / 2 else k - N for k in range(N)], dtype=np.float64)
    fy, fx = np.meshgrid(fr, fr, indexing="ij")
    radius, angle = np.hypot(fx, fy), np.arctan2(fy, fx)
    rows = np.fix(np.linspace(0, h, blocks + 1)).astype(int)
    cols = np.fix(np.linspace(0, wd, blocks + 1)).astype(int)
    desc = []
    for c in range(padded.shape[2]):
        F = np.fft.fft2(padded[:, :, c])
        for i, k in enumerate(orientations):
            for j in range(k):
                d = angle + np.pi * j / k
                d = np.where(d < -np.pi, d + 2 * np.pi, np.where(d > np.pi, d - 2 * np.pi, d))
                G = np.exp(-10 * 0.35 * (radius / N / (0.3 / 1.85 ** i) - 1) ** 2 - 2 * (16 * k * k / 1024) * np.pi * d ** 2)
                e = np.abs(np.fft.ifft2(F * G))[boundary:boundary + h, boundary:boundary + wd]
                for bc in range(blocks):          # column-major, like MATLAB's reshape
                    for br in range(blocks):
                        desc.append(e[rows[br]:rows[br + 1], cols[bc]:cols[bc + 1]].mean())
    return np.array(desc)


def test_matches_the_loop_reference_grey_and_colour():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (32, 32)).astype(np.uint8)
    colour = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    got = gist.gist_batch(grey[None])[0]
    assert got.shape == (512,)
    np.testing.assert_allclose(got, _reference(grey), rtol=2e-4, atol=1e-5)
    got = gist.gist_batch(colour[None], (8, 8, 4))[0]
    assert got.shape == (960,) and gist.dim((8, 8, 4), 4, True) == 960
    np.testing.assert_allclose(got, _reference(colour, (8, 8, 4)), rtol=2e-4, atol=1e-5)
    # odd sizes and other grids go through the same code
    odd = rng.integers(0, 256, (21, 21)).astype(np.uint8)
    np.testing.assert_allclose(gist.gist_batch(odd[None], (4, 2), blocks=3, boundary=8)[0],
                               _reference(odd, (4, 2), blocks=3, boundary=8), rtol=2e-4, atol=1e-5)


def test_batch_equals_one_by_one():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (5, 32, 32)).astype(np.uint8)
    together = gist.gist_batch(imgs)
    alone = np.stack([gist.gist_batch(i[None])[0] for i in imgs])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)


def test_invariant_to_positive_affine_intensity_maps_and_constant_images_are_zero():
    rng = np.random.default_rng(2)
    img = rng.random((32, 32)) * 200
    base = gist.gist_batch(img[None])[0]
    np.testing.assert_allclose(gist.gist_batch((3.0 * img + 17)[None])[0], base, rtol=1e-4, atol=1e-6)
    for c in (0, 128, 255):
        z = gist.gist_batch(np.full((1, 32, 32), c, np.uint8))
        assert np.isfinite(z).all() and not z.any()  # the reference would give NaN here


@pytest.mark.parametrize("period, scale", [(6.0, 1), (11.0, 2)])
def test_gratings_excite_the_matching_scale_and_orientation(period, scale):
    yy, xx = np.mgrid[0:32, 0:32]
    vertical = 128 + 100 * np.sin(2 * np.pi * xx / period)   # varies along x: angle 0
    horizontal = 128 + 100 * np.sin(2 * np.pi * yy / period)  # varies along y: angle pi/2
    for img, orient in ((vertical, 0), (horizontal, 4)):
        e = gist.gist_batch(img[None])[0].reshape(4, 8, 16).mean(axis=2)  # scale x orientation
        assert np.unravel_index(e.argmax(), e.shape) == (scale, orient)


def test_block_means_match_loops():
    rng = np.random.default_rng(3)
    x = rng.random((2, 3, 13, 10))
    got = gist.block_means(x, 4)
    rows, cols = np.fix(np.linspace(0, 13, 5)).astype(int), np.fix(np.linspace(0, 10, 5)).astype(int)
    for a in range(2):
        for b in range(3):
            ref = [x[a, b, rows[r]:rows[r + 1], cols[c]:cols[c + 1]].mean() for c in range(4) for r in range(4)]
            np.testing.assert_allclose(got[a, b], ref)


def test_extract_resizes_crops_and_skips():
    rng = np.random.default_rng(4)
    src = [rng.integers(0, 256, (40, 64, 3)).astype(np.uint8), np.zeros((0, 5), np.uint8),
           rng.integers(0, 256, (32, 32)).astype(np.uint8)]
    X, report = gist.extract(src, image_size=32)
    assert X.shape == (3, 512) and np.isfinite(X).all()
    assert not X[1].any() and X[0].any() and X[2].any()
    assert report["n_skipped"] == 1 and "empty" in report["skipped"][0]["reason"]
