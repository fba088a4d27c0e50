"""GIST (Oliva & Torralba 2001), vectorised over batches of images in the frequency domain.

Written from the published description of the Oliva–Torralba MATLAB reference
(LMgist) and its parameters:

1. Resize: the shorter side to `image_size`, then a centred square crop (CIFAR's
   32x32 images are used as they are). Intensities are stretched to 0..255 per image
   (x - min) * 255 / (max - min); a constant image stays all zero (the reference
   divides by zero there and returns NaN: we return the zero descriptor instead).
2. Prefiltering (`fc_prefilt` = 4): log(1 + x), symmetric padding by 5 pixels, minus
   its Gaussian low-pass (sigma = fc / sqrt(log 2) in frequency units), divided by
   0.2 + the local standard deviation (the same low-pass of the squared result,
   averaged over channels). It whitens the spectrum and equalises local contrast.
3. Gabor bank on the image padded symmetrically by `boundary` (32) pixels, size
   N x N: for scale i (0-based) with K orientations, filter j is
   exp(-3.5 (r / N / f_i - 1)^2 - 2 b pi dtheta^2), f_i = 0.3 / 1.85^i,
   b = 16 K^2 / 32^2, dtheta = angle - (-pi j / K) wrapped to [-pi, pi].
4. Magnitude of each filtered image, padding cropped, averaged over a `blocks` x
   `blocks` grid. Descriptor = channel-major, then filter (scale-major), then block
   (column-major, as MATLAB's reshape): 4 scales x 8 orientations x 16 blocks = 512-d
   grey; the GIST-1M colour variant uses orientations (8, 8, 4) on R, G, B:
   3 x 20 x 16 = 960-d.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft as sfft

from ..log import progress
from .images import Fetcher

GREY_512 = {"orientations": (8, 8, 8, 8), "colour": False}
COLOUR_960 = {"orientations": (8, 8, 4), "colour": True}


def dim(orientations, blocks: int = 4, colour: bool = False) -> int:
    return (3 if colour else 1) * sum(orientations) * blocks * blocks


@lru_cache(maxsize=8)
def gabor_bank(orientations: tuple[int, ...], n: int) -> np.ndarray:
    """(n_filters, n, n) float32 transfer functions, zero frequency at [0, 0].

    Frequencies are those of the DFT bins (k, or k - n past the middle): for even n
    this is the reference's fftshift of -n/2 .. n/2 - 1; odd n (which the reference
    never meets) gets the symmetric range."""
    f = np.fft.fftfreq(n) * n
    fx, fy = np.meshgrid(f, f)  # fx varies along columns, fy along rows
    radius = np.hypot(fx, fy)
    angle = np.arctan2(fy, fx)
    out = []
    for i, k in enumerate(orientations):
        f0, b = 0.3 / 1.85 ** i, 16.0 * k * k / 32.0 ** 2
        for j in range(k):
            d = angle + np.pi * j / k
            d = (d + np.pi) % (2 * np.pi) - np.pi
            out.append(np.exp(-10 * 0.35 * (radius / n / f0 - 1) ** 2 - 2 * b * np.pi * d ** 2))
    return np.stack(out).astype(np.float32)


@lru_cache(maxsize=8)
def _lowpass(n: int, fc: float) -> np.ndarray:
    f = np.fft.fftfreq(n) * n
    fx, fy = np.meshgrid(f, f)
    s1 = fc / np.sqrt(np.log(2))
    return np.exp(-(fx ** 2 + fy ** 2) / s1 ** 2).astype(np.float32)


def stretch(x: np.ndarray) -> np.ndarray:
    """Per image (axis 0) intensities to 0..255; constant images become 0."""
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    x = x - lo
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    return np.where(hi > 0, x * (255.0 / np.where(hi > 0, hi, 1.0)), 0.0).astype(np.float32)


def prefilter(x: np.ndarray, fc: float = 4.0, workers: int = 1) -> np.ndarray:
    """(B, C, H, W) float -> whitened, contrast-normalised (B, C, H, W)."""
    w = 5
    x = np.log1p(x)
    x = np.pad(x, ((0, 0), (0, 0), (w, w), (w, w)), mode="symmetric")
    sn, sm = x.shape[-2:]
    n = max(sn, sm)
    n += n % 2
    x = np.pad(x, ((0, 0), (0, 0), (0, n - sn), (0, n - sm)), mode="symmetric")
    g = _lowpass(n, fc)
    out = x - sfft.ifft2(sfft.fft2(x, workers=workers) * g, workers=workers).real
    local = np.sqrt(np.abs(sfft.ifft2(sfft.fft2(out.mean(axis=1, keepdims=True) ** 2, workers=workers) * g,
                                      workers=workers)))
    out = out / (0.2 + local)
    return out[..., w:sn - w, w:sm - w].astype(np.float32)


def block_means(x: np.ndarray, blocks: int) -> np.ndarray:
    """(..., H, W) -> (..., blocks * blocks): means over a blocks x blocks grid with
    MATLAB's boundaries fix(linspace(0, H, blocks + 1)), column-major order."""
    h, w = x.shape[-2:]
    rows = np.fix(np.linspace(0, h, blocks + 1)).astype(int)
    cols = np.fix(np.linspace(0, w, blocks + 1)).astype(int)
    s = np.add.reduceat(np.add.reduceat(x, rows[:-1], axis=-2), cols[:-1], axis=-1)
    s = s / (np.diff(rows)[:, None] * np.diff(cols)[None, :])
    return np.swapaxes(s, -1, -2).reshape(*x.shape[:-2], blocks * blocks)  # column-major


def gist_batch(imgs: np.ndarray, orientations=(8, 8, 8, 8), blocks: int = 4, fc: float = 4.0,
               boundary: int = 32, workers: int = 1) -> np.ndarray:
    """GIST of a batch of equal-size square images (B, H, W) or (B, H, W, C), uint8 or
    float; returns float32 (B, C * n_filters * blocks^2)."""
    x = np.asarray(imgs, dtype=np.float32)
    x = x[:, None] if x.ndim == 3 else np.moveaxis(x, -1, 1)
    x = prefilter(stretch(x), fc, workers)
    h, w = x.shape[-2:]
    x = np.pad(x, ((0, 0), (0, 0), (boundary, boundary), (boundary, boundary)), mode="symmetric")
    n = x.shape[-1]
    bank = gabor_bank(tuple(orientations), n)
    spec = sfft.fft2(x, workers=workers).astype(np.complex64)
    # inverse 2-D DFT one axis at a time, keeping only the rows, then the columns, of
    # the unpadded image: the same values as ifft2 + crop, with ~2/3 of the work
    resp = sfft.ifft(spec[:, :, None] * bank[None, None], axis=-2, workers=workers)[..., boundary:boundary + h, :]
    resp = np.abs(sfft.ifft(resp, axis=-1, workers=workers)[..., boundary:boundary + w])
    return block_means(resp, blocks).reshape(len(x), -1).astype(np.float32)


def _square(img: np.ndarray, size: int) -> np.ndarray:
    """Shorter side to `size` (bilinear), then centred square crop (LMgist's imresizecrop)."""
    import cv2

    h, w = img.shape[:2]
    if (h, w) != (size, size):
        s = size / min(h, w)
        nh, nw = max(size, int(round(h * s))), max(size, int(round(w * s)))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        top, left = (nh - size) // 2, (nw - size) // 2
        img = img[top:top + size, left:left + size]
    return img


def extract(source, orientations=(8, 8, 8, 8), colour: bool = False, image_size: int = 32, blocks: int = 4,
            fc: float = 4.0, boundary: int = 32, batch_size: int = 256, workers: int = 1,
            ids=None) -> tuple[np.ndarray, dict]:
    """GIST of every item of an image source; skipped items get zero rows."""
    fetcher = Fetcher(source, colour=colour)
    n = len(fetcher)
    out = np.zeros((n, dim(orientations, blocks, colour)), dtype=np.float32)
    # memory ~ batch x channels x filters x (size + 2 boundary)^2 complex64: cap it near 256 MB
    per_image = (3 if colour else 1) * sum(orientations) * (image_size + 2 * boundary) ** 2 * 8 * 2
    batch = max(1, min(batch_size, (256 << 20) // per_image))
    for a in progress(range(0, n, batch), desc="gist", total=-(-n // batch), unit="batch"):
        idx, imgs = [], []
        for i in range(a, min(a + batch, n)):
            img = fetcher.get(i)
            if img is not None:
                idx.append(i)
                imgs.append(_square(img, image_size))
        if imgs:
            out[idx] = gist_batch(np.stack(imgs), orientations, blocks, fc, boundary, workers)
    fetcher.check_any_left()
    return out, fetcher.report(ids)
