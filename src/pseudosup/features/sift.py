"""Local SIFT descriptors (OpenCV) with RootSIFT.

Detector + descriptor: OpenCV's SIFT (Lowe 2004) on the grey image, after shrinking
it so its longer side is at most `max_side`; at most `max_keypoints` keypoints (the
strongest by response). For tiny images (CIFAR, Fashion-MNIST) the detector finds
almost nothing, so `dense` places keypoints on a regular grid (every `step` pixels,
diameter `size`) after upscaling the shorter side to `min_side`.

RootSIFT (Arandjelović & Zisserman 2012): each descriptor is L1-normalised and
square-rooted, so the Euclidean distance between RootSIFTs is the Hellinger kernel
distance between the SIFT histograms; the result has unit L2 norm.

An image with no keypoint gives an empty (0, 128) array: its bag of words is the
zero vector, counted as `zero_keypoints` in the sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .images import resize_max_side, upscale_to


@dataclass(frozen=True)
class SiftConfig:
    max_side: int | None = 1024
    max_keypoints: int = 2000
    root: bool = True
    dense_step: int | None = None   # dense grid spacing in pixels (None = detector)
    dense_size: float = 8.0         # keypoint diameter on the dense grid
    min_side: int = 1               # upscale tiny images to this shorter side first
    contrast_threshold: float = 0.04
    edge_threshold: float = 10.0

    @classmethod
    def from_params(cls, cfg: dict) -> "SiftConfig":
        dense = cfg.get("dense") or {}
        return cls(max_side=cfg.get("max_side", 1024), max_keypoints=cfg.get("max_keypoints", 2000),
                   root=cfg.get("root", True), dense_step=dense.get("step"), dense_size=dense.get("size", 8.0),
                   min_side=dense.get("min_side", 1) if dense else 1,
                   contrast_threshold=cfg.get("contrast_threshold", 0.04),
                   edge_threshold=cfg.get("edge_threshold", 10.0))


def rootsift(desc: np.ndarray) -> np.ndarray:
    """L1-normalise, then square root (rows of zeros stay zero)."""
    desc = np.asarray(desc, dtype=np.float32)
    l1 = np.abs(desc).sum(axis=1, keepdims=True)
    return np.sqrt(desc / np.maximum(l1, 1e-12))


def dense_keypoints(h: int, w: int, step: int, size: float):
    import cv2

    half = int(np.ceil(size / 2))
    ys = range(half, max(half + 1, h - half + 1), step)
    xs = range(half, max(half + 1, w - half + 1), step)
    return [cv2.KeyPoint(float(x), float(y), float(size)) for y in ys for x in xs]


class Sift:
    """Describe grey uint8 images; one OpenCV SIFT object per instance (not shared
    between threads: make one per thread)."""

    def __init__(self, cfg: SiftConfig):
        import cv2

        self.cfg = cfg
        self.sift = cv2.SIFT_create(nfeatures=0 if cfg.dense_step else cfg.max_keypoints,
                                    contrastThreshold=cfg.contrast_threshold, edgeThreshold=cfg.edge_threshold)

    def describe(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(descriptors (n, 128) float32, keypoint xy (n, 2) in the original image's pixels)."""
        cfg = self.cfg
        h0, w0 = grey.shape[:2]
        img = resize_max_side(grey, cfg.max_side)
        img, _ = upscale_to(img, cfg.min_side)
        if cfg.dense_step:
            kps, desc = self.sift.compute(img, dense_keypoints(*img.shape[:2], cfg.dense_step, cfg.dense_size))
        else:
            kps, desc = self.sift.detectAndCompute(img, None)
            if desc is not None and len(kps) > cfg.max_keypoints:  # OpenCV may keep ties beyond the cap
                keep = np.argsort([-k.response for k in kps], kind="stable")[:cfg.max_keypoints]
                kps, desc = [kps[i] for i in keep], desc[keep]
        if desc is None or len(kps) == 0:
            return np.zeros((0, 128), np.float32), np.zeros((0, 2), np.float32)
        xy = np.array([k.pt for k in kps], dtype=np.float32) * np.array([w0 / img.shape[1], h0 / img.shape[0]],
                                                                        dtype=np.float32)
        desc = rootsift(desc) if cfg.root else desc.astype(np.float32)
        return desc, xy
