"""Optional geometric verification of mined pairs by SIFT matching.

For a pair of images: OpenCV SIFT keypoints (RootSIFT descriptors), Lowe's ratio test
from the first image to the second plus a mutual-nearest-neighbour check, then a RANSAC fit of a
geometric model (homography by default; "affine" for a partial affine map,
"fundamental" for general 3-d viewpoint change) and the count of inliers. A pair is
verified when inliers >= `min_inliers`. OpenCV's RANSAC uses a fixed internal seed,
so the counts are reproducible.

This is independent of the BoW features (issue 4): it only needs the images.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from ..io import PseudosupError
from ..log import progress

MODELS = ("homography", "affine", "fundamental")


@dataclass
class VerifySettings:
    ratio: float = 0.8          # Lowe's ratio test
    min_inliers: int = 15       # verified when at least this many RANSAC inliers
    model: str = "homography"
    ransac_threshold: float = 8.0   # pixels (at max_side resolution)
    max_side: int = 640         # images are resized so that their longer side is at most this
    max_keypoints: int = 1500
    cache: int = 256            # images whose keypoints are kept in memory (shared among the threads)

    def __post_init__(self):
        if self.model not in MODELS:
            raise PseudosupError(f"mining.verify.model: '{self.model}' is not one of {list(MODELS)}")
        if not 0 < self.ratio < 1:
            raise PseudosupError(f"mining.verify.ratio: {self.ratio} must be in (0, 1)")


def _grey(image: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    img = np.asarray(image)
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    if img.dtype != np.uint8:
        raise PseudosupError(f"image of dtype {img.dtype}: expected uint8")
    scale = max_side / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    return img


def rootsift_keypoints(image: np.ndarray, s: VerifySettings) -> tuple[np.ndarray, np.ndarray]:
    """(points (m, 2) float32, RootSIFT descriptors (m, 128) float32) of one image."""
    import cv2

    sift = cv2.SIFT_create(nfeatures=s.max_keypoints)
    kps, desc = sift.detectAndCompute(_grey(image, s.max_side), None)
    if desc is None or len(kps) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    desc = desc / np.maximum(desc.sum(1, keepdims=True), 1e-12)  # L1, then sqrt: Hellinger kernel
    return np.array([k.pt for k in kps], np.float32), np.sqrt(desc).astype(np.float32)


def ratio_matches(da: np.ndarray, db: np.ndarray, ratio: float) -> np.ndarray:
    """(m, 2) index pairs (i, j): j is a_i's nearest in b, passes the ratio test against
    a_i's second nearest, and has a_i as its own nearest in a (mutual)."""
    if len(da) < 2 or len(db) < 2:
        return np.zeros((0, 2), np.int64)
    d2 = np.maximum((da ** 2).sum(1)[:, None] - 2 * da @ db.T + (db ** 2).sum(1)[None, :], 0)
    rows = np.arange(len(da))
    # best and second best by two minimum passes (a full sort per row costs 5x more);
    # among equal distances the lowest index is the best
    best = d2.argmin(axis=1)
    first = d2[rows, best]
    back = d2.argmin(axis=0)  # mutual check: a's best in b has a as its best
    d2[rows, best] = np.inf
    second = d2.min(axis=1)
    ok = (np.sqrt(first) < ratio * np.sqrt(second)) & (back[best] == rows)
    return np.stack([rows[ok], best[ok]], axis=1)


def count_inliers(pa: np.ndarray, pb: np.ndarray, s: VerifySettings) -> int:
    import cv2

    need = {"homography": 4, "affine": 3, "fundamental": 8}[s.model]
    if len(pa) < need:
        return 0
    if s.model == "homography":
        _, mask = cv2.findHomography(pa, pb, cv2.RANSAC, s.ransac_threshold)
    elif s.model == "affine":
        _, mask = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=s.ransac_threshold)
    else:
        _, mask = cv2.findFundamentalMat(pa, pb, cv2.FM_RANSAC, s.ransac_threshold / 4, 0.99)
    return 0 if mask is None else int(mask.sum())


class _KeypointCache:
    """Keypoints of recently used images (pairs are processed in locality_order)."""

    def __init__(self, read, s: VerifySettings):
        self.read, self.s, self.store = read, s, OrderedDict()

    def __call__(self, i: int):
        if i in self.store:
            self.store.move_to_end(i)
            return self.store[i]
        kp = rootsift_keypoints(self.read(i), self.s)
        self.store[i] = kp
        if len(self.store) > self.s.cache:
            self.store.popitem(last=False)
        return kp


def locality_order(pairs: np.ndarray, n: int) -> np.ndarray:
    """An order of the pairs in which both images of a pair were seen recently: images
    renumbered by reverse Cuthill-McKee on the pair graph (small bandwidth: mined pairs
    form small, sparse components), pairs sorted by their renumbered images. With it the
    keypoint cache computes each image about once, instead of once per pair whose
    second image lies far from the first in the input numbering."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    if not len(pairs):
        return np.array([], np.int64)
    graph = sp.csr_matrix((np.ones(len(pairs), np.int32), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    perm = reverse_cuthill_mckee((graph + graph.T).tocsr(), symmetric_mode=True)
    pos = np.empty(n, np.int64)
    pos[perm] = np.arange(n)
    a, b = pos[pairs[:, 0]], pos[pairs[:, 1]]
    return np.lexsort((np.maximum(a, b), np.minimum(a, b)))


def verify_pairs(images, pairs: np.ndarray, s: VerifySettings | None = None, threads: int = 1) -> np.ndarray:
    """RANSAC inlier counts of each pair (rows of `pairs` index `images`).

    `images` is an image source (len, [i] -> uint8 HxW or HxWx3). Pairs pointing
    outside it are rejected before any work. With threads > 1 the ordered pairs are cut
    into one contiguous run per thread, each with its own share of the keypoint cache (a
    pair's count does not depend on which thread computes it); BLAS then runs on one
    thread inside each."""
    s = s or VerifySettings()
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    n = len(images)
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= n):
        bad = pairs[(pairs < 0).any(1) | (pairs >= n).any(1)][0]
        raise PseudosupError(f"pair {bad.tolist()} references an image outside the {n} images of the source; "
                             "the pairs were mined on another dataset or split")
    inliers = np.zeros(len(pairs), np.int64)
    lock = threading.Lock()  # image sources (archive readers) need not be thread-safe
    bar_lock = threading.Lock()

    def read(i: int):
        with lock:
            return images[int(i)]

    def run(chunk: np.ndarray, bar, cache_size: int) -> None:
        cache = _KeypointCache(read, replace(s, cache=cache_size))
        for p in chunk:
            (pa, da), (pb, db) = cache(int(pairs[p, 0])), cache(int(pairs[p, 1]))
            m = ratio_matches(da, db, s.ratio)
            inliers[p] = count_inliers(pa[m[:, 0]], pb[m[:, 1]], s) if len(m) else 0
            with bar_lock:
                bar.update(1)

    order = locality_order(pairs, n)
    chunks = [c for c in np.array_split(order, max(1, threads)) if len(c)]
    with progress(None, desc="geometric verification", total=len(order)) as bar:
        if len(chunks) > 1:
            from threadpoolctl import threadpool_limits

            share = max(2, s.cache // len(chunks))
            with threadpool_limits(1), ThreadPoolExecutor(len(chunks)) as pool:
                list(pool.map(lambda c: run(c, bar, share), chunks))
        elif chunks:
            run(chunks[0], bar, s.cache)
    return inliers
