"""`cifar10-mosaic2x2`: a seeded multi-label image set made of 2x2 mosaics of CIFAR-10
test images, so that DSRH's image path runs end to end on real pixels here.

Each mosaic is 4 CIFAR-10 test images (32x32) drawn uniformly at random (without
replacement within a mosaic) and tiled 2x2 into a 64x64 image; its labels are the classes
present (1 to 4 of the 10; multi-hot). Queries and database are built from *disjoint*
pools of source images (`query_per_class` images per class form the query pool), so no
query shares a source image with any database mosaic. Relevance level = number of
shared classes (DSRH's similarity level). It is a synthetic derivative of CIFAR-10, not
a standard benchmark: results on it are named `cifar10-mosaic2x2` and never reported as
CIFAR-10 or NUS-WIDE numbers.
"""

from __future__ import annotations

import numpy as np

from ..io import PseudosupError

NAME = "cifar10-mosaic2x2"


def build_mosaics(images: np.ndarray, labels: np.ndarray, n: int, seed: int, pool: np.ndarray | None = None,
                  grid: int = 2, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` mosaics of grid x grid images drawn from `pool` (indices into images; default
    all). Returns (mosaics (n, grid*h, grid*w, c) uint8, multi-hot labels (n, classes)
    uint8, sources (n, grid*grid) int64 indices into `images`)."""
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise PseudosupError(f"{NAME}: expected uint8 images (n, h, w, c), got {images.dtype} {images.shape}")
    if len(labels) != len(images):
        raise PseudosupError(f"{NAME}: {len(images)} images but {len(labels)} labels")
    pool = np.arange(len(images)) if pool is None else np.asarray(pool, dtype=np.int64)
    k = grid * grid
    if len(pool) < k:
        raise PseudosupError(f"{NAME}: a pool of {len(pool)} images cannot fill a {grid}x{grid} mosaic")
    rng = np.random.default_rng(seed)
    sources = np.stack([rng.choice(pool, k, replace=False) for _ in range(n)]) if n else np.zeros((0, k), np.int64)
    _, h, w, c = images.shape
    tiles = images[sources].reshape(n, grid, grid, h, w, c)
    mosaics = tiles.transpose(0, 1, 3, 2, 4, 5).reshape(n, grid * h, grid * w, c)
    classes = int(n_classes or labels.max() + 1)
    multi = np.zeros((n, classes), dtype=np.uint8)
    np.put_along_axis(multi, labels[sources], 1, axis=1)
    return np.ascontiguousarray(mosaics), multi, sources


def mosaic_protocol(images: np.ndarray, labels: np.ndarray, seed: int = 0, n_database: int = 5000,
                    n_queries: int = 500, query_per_class: int = 100) -> dict[str, np.ndarray]:
    """Queries and database of `cifar10-mosaic2x2` (the database is also the training
    set): `query_per_class` source images per class (seeded) form the query pool, the
    rest the database pool. Same seed, same images -> identical arrays."""
    labels = np.asarray(labels).astype(np.int64)
    rng = np.random.default_rng(seed)
    qpool = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), query_per_class, replace=False)
                                    for c in np.unique(labels)]))
    dbpool = np.setdiff1d(np.arange(len(labels)), qpool)
    classes = int(labels.max() + 1)
    qm, ql, qs = build_mosaics(images, labels, n_queries, seed + 1, qpool, n_classes=classes)
    dm, dl, ds = build_mosaics(images, labels, n_database, seed + 2, dbpool, n_classes=classes)
    return {"query_images": qm, "query_labels": ql, "query_sources": qs,
            "db_images": dm, "db_labels": dl, "db_sources": ds}


def read_cifar10_test_jpg(tar_path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The 10,000 CIFAR-10 test images of `cifar10-test-jpg.tar` (test/<class>/NNNN.jpg),
    decoded to RGB uint8 (10000, 32, 32, 3) in sorted member order, with labels = index of
    the class folder in sorted order. For benchmarks; the pipeline reads the registered
    dataset `cifar10-test-jpg` instead."""
    import tarfile

    import cv2

    names, imgs, labs = [], [], []
    with tarfile.open(tar_path) as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")),
                         key=lambda m: m.name)
        classes = sorted({m.name.split("/")[-2] for m in members})
        for m in members:
            buf = np.frombuffer(tf.extractfile(m).read(), dtype=np.uint8)
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            if img is None:
                raise PseudosupError(f"{tar_path}: {m.name} is not a decodable JPEG")
            imgs.append(img[:, :, ::-1])
            labs.append(classes.index(m.name.split("/")[-2]))
            names.append(m.name)
    return np.stack(imgs), np.array(labs, dtype=np.int64), classes
