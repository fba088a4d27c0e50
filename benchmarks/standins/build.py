"""Build FULL-SIZE stand-ins of the paper datasets, in their original archive formats,
from the real data of ../shared/data (never the real datasets: each manifest says what
its files are made of).

    python benchmarks/standins/build.py sift-1m [--out /work/standins] [--shared ../shared/data]
    python benchmarks/standins/build.py holidays --small --out /tmp/standin-small   # a quick check

Writes <out>/files/<dataset>/<archive> and <out>/built/<dataset>.json (the manifest
without URLs: path, sha256, size, counts, description). benchmarks/standins/serve.py
publishes the files on 127.0.0.1 and writes the manifests with URLs that
`PSEUDOSUP_STANDINS` points the pipeline at. A dataset already built is kept (its
manifest is written last, after an atomic rename of the archive), so an interrupted
build resumes where it stopped.

Stand-ins:
- sift-1m: sift.tar.gz (TEXMEX layout: sift/sift_{base,query,learn}.fvecs,
  sift/sift_groundtruth.ivecs), 1,000,000 base, 10,000 query, 100,000 learn vectors:
  REAL OpenCV SIFT descriptors (integral values, like SIFT-1M) of the 10,000 CIFAR-10
  test images upscaled 4x (bicubic), from disjoint image groups (queries, learn and base
  never share an image), exact L2 top-100 ground truth by brute force (faiss IndexFlatL2;
  the distances of these integral vectors are exact in float32).
- cifar-10: cifar-10-python.tar.gz (the official python pickles: 5 data batches and a test
  batch of 10,000 images, batches.meta), 60,000 images: the 10,000 REAL CIFAR-10 test
  images (JPEG copies in ../shared/data) and five seeded variants of each (flip, crop,
  shift, colour jitter), shuffled (seed) into the six batches; labels kept. Variants of
  one image may fall in both queries and database: retrieval is easier than on CIFAR-10
  (the stand-in measures time and memory, not accuracy).
- gist-1m: gist.tar.gz (TEXMEX layout), 1,000,000 base, 1,000 query, 500,000 learn
  960-d vectors: SEEDED SYNTHETIC (no real GIST source here): non-negative vectors from
  1,000 cluster centres with a shared rank-64 structure and noise, written in chunks;
  exact L2 top-100 ground truth (faiss IndexFlatL2).
- oxford5k / paris6k: the official archives' layout with the REAL ground truth files
  (gnd_*.pkl of ../shared/data: image names, queries, ok/junk, boxes); the images are the
  10 real Oxford photos of ../shared/data and seeded views of 37 real photos (each query
  landmark's ok/junk images are views of one photo, the rest views of the others).
- mirflickr-25k: mirflickr25k.zip + the v080 annotations zip: 25,000 real CIFAR-10 test
  images and variants, upscaled to 500 x 375, labels derived from their classes.
- ukbench: ukbench.zip, 10,200 views (640 x 480) in 2,550 groups of 4, each group a
  random region of one of the 37 real photos.
- holidays / holidays-rotated: jpg1.tar.gz + jpg2.tar.gz (jpg/NNNNNN.jpg), 1,491 views
  (1024 x 768, some portrait) in 500 groups of seeded sizes 2-13, each group a random
  region of one of the 37 real photos; -rotated: the same images, every second one of a
  group stored turned by 90 degrees, and holidays_rotations.txt turning them upright.
- nus-wide / nus-wide-lowlevel: the official list archives (ConceptsList.zip,
  ImageList.zip, Groundtruth.zip) for 269,648 items = the real CIFAR-10 test images and
  seeded variants, labels over the real 81 concepts derived from their classes; nus-wide:
  the images as 500 x 375 JPEG files in <out>/files/nus-wide/Flickr (the manifest's
  options.images), nus-wide-lowlevel: NUS_WID_Low_Level_Features.rar with the five
  Normalized_*.dat matrices computed from the images' pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from pseudosup.data.loaders.texmex import write_vecs  # noqa: E402
from pseudosup.io import atomic_path  # noqa: E402

SIFT_SETTINGS = {"upscale": 4, "contrastThreshold": 0.005, "edgeThreshold": 20}
SIFT_COUNTS = {"base": 1_000_000, "query": 10_000, "learn": 100_000}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_tar_gz(path: Path, compresslevel: int) -> Iterator[tarfile.TarFile]:
    """A .tar.gz written to `path` through atomic_path (renamed into place when complete).
    The gzip header keeps the name the archives have always recorded, `.<name>.part` (the
    temporary's name before atomic_path), not atomic_path's temporary (which holds the
    process id): an archive's bytes, but for the gzip time stamp, and its size stay as they were."""
    with (atomic_path(path) as tmp, open(tmp, "wb") as f,
          tarfile.open(f".{path.name}.part", "w:gz", fileobj=f, compresslevel=compresslevel) as tf):
        yield tf


def cifar_test_gray(shared: Path) -> list[np.ndarray]:
    """The 10,000 real CIFAR-10 test JPEGs of ../shared/data as grey images, in name order."""
    from PIL import Image

    with tarfile.open(shared / "cifar10-test-jpg.tar") as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)
        return [np.asarray(Image.open(tf.extractfile(m)).convert("L")) for m in members]


def sift_per_image(images: list[np.ndarray]) -> list[np.ndarray]:
    """OpenCV SIFT descriptors of each image (upscaled; settings in SIFT_SETTINGS)."""
    import cv2

    s = SIFT_SETTINGS
    sift = cv2.SIFT_create(contrastThreshold=s["contrastThreshold"], edgeThreshold=s["edgeThreshold"])
    out = []
    for i, img in enumerate(images):
        big = cv2.resize(img, None, fx=s["upscale"], fy=s["upscale"], interpolation=cv2.INTER_CUBIC)
        _, d = sift.detectAndCompute(big, None)
        out.append(np.zeros((0, 128), np.float32) if d is None else d.astype(np.float32))
        if (i + 1) % 2000 == 0:
            print(f"  SIFT: {i + 1:,}/{len(images):,} images", flush=True)
    return out


def take(per_image: list[np.ndarray], order: np.ndarray, n: int, what: str) -> tuple[np.ndarray, int]:
    """The first n descriptors of the images in `order`; also how many images that used."""
    rows, used, got = [], 0, 0
    for i in order:
        if got >= n:
            break
        rows.append(per_image[i])
        got += len(per_image[i])
        used += 1
    if got < n:
        raise SystemExit(f"only {got:,} SIFT descriptors for the {what} ({n:,} wanted): lower contrastThreshold")
    return np.concatenate(rows)[:n], used


def exact_top100(query: np.ndarray, base: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    out = np.empty((len(query), 100), np.int32)
    for lo in range(0, len(query), 1000):
        out[lo:lo + 1000] = index.search(query[lo:lo + 1000], 100)[1]
    return out


def build_sift_1m(shared: Path, dest: Path, seed: int) -> dict:
    t0 = time.time()
    per_image = sift_per_image(cifar_test_gray(shared))
    order = np.random.default_rng(seed).permutation(len(per_image))
    query, nq = take(per_image, order, SIFT_COUNTS["query"], "queries")
    learn, nl = take(per_image, order[nq:], SIFT_COUNTS["learn"], "learn set")
    base, nb = take(per_image, order[nq + nl:], SIFT_COUNTS["base"], "base")
    print(f"  {sum(map(len, per_image)):,} descriptors from {len(per_image):,} images; images used: "
          f"query {nq:,}, learn {nl:,}, base {nb:,} ({time.time() - t0:.0f} s)", flush=True)
    gt = exact_top100(query, base)
    print(f"  ground truth ({time.time() - t0:.0f} s)", flush=True)
    archive = write_texmex(dest, "sift", {"base": base, "query": query, "learn": learn, "groundtruth": gt})
    s = SIFT_SETTINGS
    description = (f"FULL-SIZE STAND-IN of SIFT-1M: REAL OpenCV SIFT descriptors of the 10,000 CIFAR-10 test images "
                   f"(../shared/data/cifar10-test-jpg.tar) upscaled {s['upscale']}x, contrastThreshold "
                   f"{s['contrastThreshold']}, edgeThreshold {s['edgeThreshold']}; images shuffled (seed {seed}) "
                   f"into disjoint groups: {nq:,} images for the queries, {nl:,} for the learn set, {nb:,} for the "
                   f"base; exact L2 top-100 ground truth (faiss IndexFlatL2). Not SIFT-1M.")
    return {"dataset": "sift-1m", "description": description, "counts": dict(SIFT_COUNTS),
            "files": {archive.name: archive}}


def write_texmex(dest: Path, prefix: str, arrays: dict) -> Path:
    """<prefix>.tar.gz with <prefix>/<prefix>_<role>.{fvecs,ivecs}, like the TEXMEX archives."""
    work = dest / f"_{prefix}"
    work.mkdir(parents=True, exist_ok=True)
    path = dest / f"{prefix}.tar.gz"
    with atomic_tar_gz(path, compresslevel=1) as tf:
        for role in ("base", "groundtruth", "learn", "query"):
            ext = "ivecs" if role == "groundtruth" else "fvecs"
            f = work / f"{prefix}_{role}.{ext}"
            write_vecs(f, arrays[role])
            tf.add(f, arcname=f"{prefix}/{prefix}_{role}.{ext}")
            f.unlink()
    work.rmdir()
    return path


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar_test_rgb(shared: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 real CIFAR-10 test JPEGs (32x32 RGB) and their labels, in name order."""
    from PIL import Image

    images, labels = [], []
    with tarfile.open(shared / "cifar10-test-jpg.tar") as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)
        for m in members:
            images.append(np.asarray(Image.open(tf.extractfile(m)).convert("RGB")))
            labels.append(CIFAR_CLASSES.index(m.name.split("/")[-2]))
    return np.stack(images), np.array(labels, np.int64)


def cifar_variant(images: np.ndarray, v: int, rng: np.random.Generator) -> np.ndarray:
    """Variant v (1..5) of every image: 1 flip, 2 crop 28 + resize, 3 shift by up to 3
    pixels, 4 brightness/contrast jitter, 5 flip + jitter."""
    from PIL import Image

    x = images.astype(np.float32)
    if v in (1, 5):
        x = x[:, :, ::-1]
    if v == 2:
        out = np.empty_like(images)
        for i, img in enumerate(images):
            a, b = rng.integers(0, 5, 2)
            out[i] = np.asarray(Image.fromarray(img[a:a + 28, b:b + 28]).resize((32, 32), Image.BICUBIC))
        return out
    if v == 3:
        dy, dx = rng.integers(-3, 4, (2, len(x)))
        x = np.stack([np.roll(img, (a, b), axis=(0, 1)) for img, a, b in zip(x, dy, dx)])
    if v in (4, 5):
        gain = rng.uniform(0.8, 1.2, (len(x), 1, 1, 1))
        bias = rng.uniform(-20, 20, (len(x), 1, 1, 1))
        x = (x - 128) * gain + 128 + bias
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def build_cifar_10(shared: Path, dest: Path, seed: int) -> dict:
    import pickle

    images, labels = cifar_test_rgb(shared)
    rng = np.random.default_rng(seed)
    allimg = np.concatenate([images] + [cifar_variant(images, v, rng) for v in range(1, 6)])
    alllab = np.tile(labels, 6)
    # the test batch holds 1,000 images of each class, as CIFAR-10's does
    order = rng.permutation(len(allimg))
    test = np.concatenate([order[alllab[order] == c][:1000] for c in range(10)])
    order = np.concatenate([order[~np.isin(order, test)], rng.permutation(test)])
    allimg, alllab = allimg[order], alllab[order]
    path = dest / "cifar-10-python.tar.gz"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]

    def add(tf, name: str, payload: bytes):
        tar_add(tf, f"cifar-10-batches-py/{name}", payload)

    with atomic_tar_gz(path, compresslevel=6) as tf:
        for b, name in enumerate(names):
            sl = slice(b * 10_000, (b + 1) * 10_000)
            batch = {b"batch_label": name.encode(), b"labels": alllab[sl].tolist(),
                     b"data": allimg[sl].transpose(0, 3, 1, 2).reshape(-1, 3072),
                     b"filenames": [f"standin_{b}_{i}.png".encode() for i in range(10_000)]}
            add(tf, name, pickle.dumps(batch, protocol=2))
        add(tf, "batches.meta", pickle.dumps({b"label_names": [c.encode() for c in CIFAR_CLASSES],
                                              b"num_cases_per_batch": 10_000, b"num_vis": 3072}, protocol=2))
        add(tf, "readme.html", b"<p>STAND-IN of CIFAR-10 built by pseudosup benchmarks/standins/build.py</p>\n")
    description = ("FULL-SIZE STAND-IN of CIFAR-10: 60,000 32x32 images = the 10,000 REAL CIFAR-10 test images "
                   "(../shared/data/cifar10-test-jpg.tar, JPEG copies) and five seeded variants of each (flip, crop, "
                   f"shift, colour jitter), labels kept, shuffled (seed {seed}) into the official six batches. "
                   "Variants of one image can be query and database item: easier than CIFAR-10. Not CIFAR-10.")
    return {"dataset": "cifar-10", "description": description, "files": {path.name: path}}


GIST_COUNTS = {"base": 1_000_000, "query": 1_000, "learn": 500_000}


class GistSource:
    """Seeded synthetic 960-d GIST-like vectors: x = |c_k + L z + e|, c_k one of 1,000
    gamma-distributed centres, L a shared 960 x 64 loading matrix, z, e Gaussian."""

    def __init__(self, seed: int, dim: int = 960, clusters: int = 1000, rank: int = 64):
        rng = np.random.default_rng(seed)
        self.centres = rng.gamma(2.0, 0.04, (clusters, dim)).astype(np.float32)
        self.loading = (rng.standard_normal((rank, dim)) * 0.01).astype(np.float32)
        self.rng = rng

    def draw(self, n: int) -> np.ndarray:
        k = self.rng.integers(0, len(self.centres), n)
        z = self.rng.standard_normal((n, len(self.loading)), dtype=np.float32)
        e = self.rng.standard_normal((n, self.centres.shape[1]), dtype=np.float32) * 0.01
        return np.abs(self.centres[k] + z @ self.loading + e)


def write_fvecs_chunks(path: Path, chunks) -> None:
    """An .fvecs file from an iterator of (n, d) float32 chunks (the whole array never in memory)."""
    with open(path, "wb") as f:
        for x in chunks:
            rec = np.empty((len(x), x.shape[1] + 1), np.float32)
            rec[:, 0] = np.array([x.shape[1]], np.int32).view(np.float32)[0]
            rec[:, 1:] = x
            rec.tofile(f)


def build_gist_1m(shared: Path, dest: Path, seed: int, counts: dict | None = None, chunk: int = 50_000) -> dict:
    import faiss

    counts = counts or GIST_COUNTS
    src = GistSource(seed)
    work = dest / "_gist"
    work.mkdir(parents=True, exist_ok=True)
    query = src.draw(counts["query"])
    index = faiss.IndexFlatL2(query.shape[1])
    dist = np.full((len(query), 100), np.inf, np.float32)
    ids = np.full((len(query), 100), -1, np.int64)

    def base_chunks():
        # the exact top-100 is merged chunk by chunk (faiss.ResultHeap semantics by hand)
        done = 0
        while done < counts["base"]:
            x = src.draw(min(chunk, counts["base"] - done))
            index.reset()
            index.add(x)
            d, i = index.search(query, min(100, len(x)))
            alld, alli = np.hstack([dist, d]), np.hstack([ids, i + done])
            order = np.lexsort((alli, alld), axis=1)[:, :100]   # ties by the lower base index
            dist[:], ids[:] = np.take_along_axis(alld, order, 1), np.take_along_axis(alli, order, 1)
            done += len(x)
            if done % 200_000 == 0:
                print(f"  base: {done:,}/{counts['base']:,}", flush=True)
            yield x

    write_fvecs_chunks(work / "gist_base.fvecs", base_chunks())
    write_fvecs_chunks(work / "gist_learn.fvecs",
                       (src.draw(min(chunk, counts["learn"] - lo)) for lo in range(0, counts["learn"], chunk)))
    write_vecs(work / "gist_query.fvecs", query)
    write_vecs(work / "gist_groundtruth.ivecs", ids.astype(np.int32))
    path = dest / "gist.tar.gz"
    with atomic_tar_gz(path, compresslevel=1) as tf:
        for role in ("base", "groundtruth", "learn", "query"):
            f = work / f"gist_{role}.{'ivecs' if role == 'groundtruth' else 'fvecs'}"
            tf.add(f, arcname=f"gist/{f.name}")
            f.unlink()
    work.rmdir()
    description = (f"FULL-SIZE STAND-IN of GIST-1M: SEEDED SYNTHETIC 960-d vectors (seed {seed}; no real GIST "
                   "source here): |c_k + L z + e| with 1,000 gamma(2, 0.04) centres, a shared rank-64 loading "
                   "(scale 0.01) and noise 0.01; exact L2 top-100 ground truth (faiss IndexFlatL2, ties by index). "
                   "Not GIST-1M.")
    return {"dataset": "gist-1m", "description": description, "counts": dict(counts), "files": {path.name: path}}


# --- instance benchmarks: the REAL ground truth, images derived from real photos -------------

def photos(shared: Path) -> list[np.ndarray]:
    """The 37 real photos of copydays-style-synth (../shared/data, scikit-image, scikit-learn)."""
    from pseudosup.data.instance_bench import source_photos

    return [p.image for p in source_photos(shared)]


def view(photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator, crop: float = 0.6) -> np.ndarray:
    """A seeded view of a photo at (width, height): a random crop (side >= `crop` of the
    photo's), a small rotation, a colour change, then resized (aspect not kept)."""
    import cv2

    h, w = photo.shape[:2]
    ch, cw = int(h * rng.uniform(crop, 1)), int(w * rng.uniform(crop, 1))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    img = photo[y:y + ch, x:x + cw]
    m = cv2.getRotationMatrix2D((cw / 2, ch / 2), rng.uniform(-8, 8), 1.0)
    img = cv2.warpAffine(img, m, (cw, ch), borderMode=cv2.BORDER_REFLECT)
    img = np.clip(img.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if cw > size[0] else cv2.INTER_LINEAR)


def jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def tar_add(tf: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(payload), 0
    tf.addfile(info, io.BytesIO(payload))


def building_images(gnd: dict, shared: Path, seed: int, real_dir: Path | None):
    """(name, jpeg bytes) of every image of an Oxford/Paris ground truth: images that a
    landmark's queries name (ok, junk, the queries) are views of that landmark's photo,
    all others views of the remaining photos (distractors); landscape 1024 x 768 or
    portrait 768 x 1024, as the real images, a query's wide enough for its box. The real
    Oxford photos of ../shared/data are used as they are."""
    pics = photos(shared)
    landmarks = sorted({q.rsplit("_", 1)[0] for q in gnd["qimlist"]})
    owner = np.full(len(gnd["imlist"]), -1)
    need = {}
    for q, qi, g in zip(gnd["qimlist"], gnd["qidx"], gnd["gnd"]):
        lm = landmarks.index(q.rsplit("_", 1)[0])
        owner[list(g["ok"]) + list(g["junk"]) + [qi]] = lm
        x2, y2 = g["bbx"][2], g["bbx"][3]
        need[qi] = (1024, 768) if x2 <= 1024 and y2 <= 768 else (768, 1024) if x2 <= 768 else (1024, 1024)
    rng = np.random.default_rng(seed)
    spare = len(pics) - len(landmarks)
    for i, name in enumerate(gnd["imlist"]):
        real = real_dir / f"{name}.jpg" if real_dir else None
        if real is not None and real.is_file():
            yield name, real.read_bytes()
            continue
        size = need.get(i) or ((1024, 768) if rng.random() < 0.7 else (768, 1024))
        photo = pics[owner[i]] if owner[i] >= 0 else pics[len(landmarks) + rng.integers(spare)]
        yield name, jpeg(view(photo, size, rng, crop=0.6 if owner[i] >= 0 else 0.3))


def _progress(i: int, n: int, what: str) -> None:
    if (i + 1) % 1000 == 0 or i + 1 == n:
        print(f"  {what}: {i + 1:,}/{n:,}", flush=True)


def build_oxford5k(shared: Path, dest: Path, seed: int) -> dict:
    import pickle

    gnd_src = shared / "oxford5k" / "gnd_oxford5k.pkl"
    gnd = pickle.loads(gnd_src.read_bytes())
    path = dest / "oxbuild_images-v1.tgz"
    with atomic_tar_gz(path, compresslevel=1) as tf:   # JPEGs do not compress
        for i, (name, payload) in enumerate(building_images(gnd, shared, seed, shared / "oxford5k" / "jpg")):
            tar_add(tf, f"{name}.jpg", payload)
            _progress(i, len(gnd["imlist"]), "oxford5k images")
    (dest / "gnd_oxford5k.pkl").write_bytes(gnd_src.read_bytes())
    description = ("FULL-SIZE STAND-IN of Oxford5k: the REAL ground truth gnd_oxford5k.pkl (5,063 images, 55 queries, "
                   "ok/junk/boxes; ../shared/data) over 5,063 JPEGs (1024 x 768 or 768 x 1024) of which 10 are real "
                   "Oxford photos (../shared/data/oxford5k/jpg) and the others seeded views (crop, rotation, colour) "
                   "of 37 real photos: each query landmark's ok/junk images are views of one photo, all other images "
                   f"views of the rest (seed {seed}). Measures time and memory; not Oxford5k.")
    return {"dataset": "oxford5k", "description": description,
            "files": {"oxbuild_images-v1.tgz": path, "gnd_oxford5k.pkl": dest / "gnd_oxford5k.pkl"}}


def build_paris6k(shared: Path, dest: Path, seed: int) -> dict:
    import pickle

    gnd_src = shared / "oxford5k" / "gnd_paris6k.pkl"
    gnd = pickle.loads(gnd_src.read_bytes())
    half = len(gnd["imlist"]) // 2
    files = {}
    images = building_images(gnd, shared, seed, None)
    for k in (1, 2):
        path = dest / f"paris_{k}-v1.tgz"
        with atomic_tar_gz(path, compresslevel=1) as tf:
            for i in range(half) if k == 1 else range(half, len(gnd["imlist"])):
                name, payload = next(images)
                landmark = name[len("paris_"):].rsplit("_", 1)[0]
                tar_add(tf, f"paris/{landmark}/{name}.jpg", payload)
                _progress(i, len(gnd["imlist"]), "paris6k images")
        files[path.name] = path
    (dest / "gnd_paris6k.pkl").write_bytes(gnd_src.read_bytes())
    files["gnd_paris6k.pkl"] = dest / "gnd_paris6k.pkl"
    description = ("FULL-SIZE STAND-IN of Paris6k: the REAL ground truth gnd_paris6k.pkl (6,392 images, 55 queries; "
                   "../shared/data) over 6,392 JPEGs (1024 x 768 or 768 x 1024) in paris_1-v1.tgz / paris_2-v1.tgz "
                   "(paris/<landmark>/<name>.jpg), seeded views of 37 real photos: each query landmark's ok/junk "
                   f"images are views of one photo, all others views of the rest (seed {seed}). Not Paris6k.")
    return {"dataset": "paris6k", "description": description, "files": files}


UKBENCH_GROUPS = 2_550


def build_ukbench(shared: Path, dest: Path, seed: int, groups: int = UKBENCH_GROUPS) -> dict:
    import zipfile

    pics = photos(shared)
    rng = np.random.default_rng(seed)
    path = dest / "ukbench.zip"
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for g in range(groups):
            # one object per group: a random region of a photo, seen four times
            photo = pics[g % len(pics)]
            h, w = photo.shape[:2]
            side = int(min(h, w) * rng.uniform(0.35, 0.7))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            obj = photo[y:y + side, x:x + side]
            for v in range(4):
                img = view(obj, (640, 480), rng, crop=0.8)
                z.writestr(f"full/ukbench{4 * g + v:05d}.jpg", jpeg(img))
                z.writestr(f"thumbnails/ukbench{4 * g + v:05d}.jpg", jpeg(img[::4, ::4]))
            _progress(4 * g + 3, 4 * groups, "ukbench images")
        z.writestr("index.html", "<html><p>STAND-IN of UKBench built by pseudosup benchmarks/standins/build.py</p></html>")
    description = (f"{_size_word(groups == UKBENCH_GROUPS)} STAND-IN of UKBench: {4 * groups:,} JPEGs of 640 x 480 in ukbench.zip (full/ and "
                   f"thumbnails/), {groups:,} groups of 4: a random square region of one of 37 real photos, "
                   f"seen as four seeded views (crop, rotation, colour; seed {seed}). Not UKBench.")
    doc = {"dataset": "ukbench", "description": description, "files": {"ukbench.zip": path}}
    return doc if groups == UKBENCH_GROUPS else {**doc, "counts": {"images": 4 * groups}}


# --- MIRFLICKR-25K: real CIFAR-10 images, labels derived from their classes ------------------

# the MIRFLICKR concepts each CIFAR-10 class implies (the potential label set; _r1 = the
# relevant subset). Shared by every image of the class, so multi-label relevance follows
# the image content; a few seeded extra concepts per image make the sets differ.
MIR_FROM_CLASS = {"airplane": ("transport", "sky", "structures"), "automobile": ("car", "transport"),
                  "bird": ("bird", "animals"), "cat": ("animals", "indoor"), "deer": ("animals", "plant_life", "tree"),
                  "dog": ("dog", "animals"), "frog": ("animals", "water", "plant_life"),
                  "horse": ("animals", "plant_life"), "ship": ("transport", "sea", "water"),
                  "truck": ("car", "transport", "structures")}


def build_mirflickr_25k(shared: Path, dest: Path, seed: int, n: int = 25_000) -> dict:
    import zipfile

    import cv2

    from pseudosup.data.mirflickr import (
        ANNOTATIONS_ZIP,
        CONCEPTS,
        IMAGE_DIR,
        IMAGES_ZIP,
        RELEVANT_CONCEPTS,
        RELEVANT_SUFFIX,
    )

    images, labels = cifar_test_rgb(shared)
    rng = np.random.default_rng(seed)
    # 25,000 = the 10,000 real test images and seeded variants, in a seeded order
    pool = np.concatenate([images] + [cifar_variant(images, v, rng) for v in (1, 2)])
    pool_labels = np.tile(labels, 3)
    pick = rng.permutation(len(pool))[:n]
    potential = np.zeros((n, len(CONCEPTS)), np.uint8)
    for k, c in enumerate(pool_labels[pick]):
        potential[k, [CONCEPTS.index(x) for x in MIR_FROM_CLASS[CIFAR_CLASSES[c]]]] = 1
    potential |= (rng.random(potential.shape) < 0.03).astype(np.uint8)
    cols = [CONCEPTS.index(c) for c in RELEVANT_CONCEPTS]
    relevant = potential[:, cols] & (rng.random((n, len(cols))) < 0.6)
    path = dest / IMAGES_ZIP
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for k, i in enumerate(pick):
            # Flickr photos are about 500 x 375; upscaled, the CNN sees what it sees on CIFAR-10
            img = cv2.resize(pool[i], (500, 375), interpolation=cv2.INTER_CUBIC)
            z.writestr(f"{IMAGE_DIR}/im{k + 1}.jpg", jpeg(img))
            z.writestr(f"{IMAGE_DIR}/meta/tags/tags{k + 1}.txt", "")
            _progress(k, n, "mirflickr images")
    ann = dest / ANNOTATIONS_ZIP
    with atomic_path(ann) as tmp, zipfile.ZipFile(tmp, "w") as z:
        z.writestr("README.txt", "STAND-IN annotations derived from CIFAR-10 classes (pseudosup benchmarks/standins)\n")
        for j, c in enumerate(CONCEPTS):
            z.writestr(f"{c}.txt", "".join(f"{i + 1}\n" for i in np.flatnonzero(potential[:, j])))
        for j, c in enumerate(RELEVANT_CONCEPTS):
            z.writestr(f"{c}{RELEVANT_SUFFIX}.txt", "".join(f"{i + 1}\n" for i in np.flatnonzero(relevant[:, j])))
    description = (f"{_size_word(n == 25_000)} STAND-IN of MIRFLICKR-25K: {n:,} JPEGs of 500 x 375 = the 10,000 REAL CIFAR-10 test "
                   "images and seeded variants (flip, crop), upscaled, in the official zip layout; the 24 + 14 label "
                   "files DERIVED from the CIFAR-10 classes (each class implies 2-3 MIRFLICKR concepts, plus 3 % "
                   f"seeded extra concepts per image; _r1 = a seeded 60 % of each; seed {seed}). Not MIRFLICKR-25K.")
    doc = {"dataset": "mirflickr-25k", "description": description, "files": {IMAGES_ZIP: path, ANNOTATIONS_ZIP: ann}}
    return doc if n == 25_000 else {**doc, "counts": {"images": n}}


def _size_word(full: bool) -> str:
    """How a manifest's description names the stand-in: only a build at the real size is FULL-SIZE."""
    return "FULL-SIZE" if full else "SMALL (reduced size)"


def _atomic_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


# --- INRIA Holidays: groups of seeded views of real photos ----------------------------------

HOLIDAYS_GROUPS, HOLIDAYS_IMAGES = 500, 1_491
HOLIDAYS_SIZE = (1024, 768)   # Holidays photos are large (a few megapixels); views are 1024 x 768 / 768 x 1024


def holidays_group_sizes(groups: int, images: int, rng: np.random.Generator) -> np.ndarray:
    """Seeded group sizes in 2..13 summing to `images`: 2 + (a geometric draw - 1), i.e.
    mostly 2-4 like Holidays' (mean 2.98), then images moved one at a time to fit the sum."""
    if not 2 * groups <= images <= 13 * groups:
        raise SystemExit(f"holidays: {images} images cannot form {groups} groups of 2-13")
    sizes = np.minimum(1 + rng.geometric(0.5, groups), 13)
    while (gap := images - int(sizes.sum())) != 0:
        free = np.flatnonzero(sizes < 13 if gap > 0 else sizes > 2)
        sizes[rng.choice(free, min(abs(gap), len(free)), replace=False)] += np.sign(gap)
    return sizes


def holidays_group(photo: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One Holidays-like group: `size` seeded views of one random region of a photo (the
    same scene seen again), 80 % landscape 1024 x 768, the rest portrait."""
    h, w = photo.shape[:2]
    f = rng.uniform(0.5, 0.85)
    ch, cw = int(h * f), int(w * f)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    scene = photo[y:y + ch, x:x + cw]
    return [view(scene, HOLIDAYS_SIZE if rng.random() < 0.8 else HOLIDAYS_SIZE[::-1], rng, crop=0.7)
            for _ in range(size)]


def holidays_images(pics: list[np.ndarray], sizes: np.ndarray, seed: int, rotated: bool, lines: list[str]):
    """(name, jpeg bytes) of every image in name order. rotated: every second image of a
    group stored turned by 90 degrees, its line ('<name> <clockwise degrees>') appended to
    `lines`; the turns come from their own generator, so the images are those of `holidays`."""
    rng, turns = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])
    for g, size in enumerate(sizes):
        for i, img in enumerate(holidays_group(pics[rng.integers(len(pics))], size, rng)):
            name = f"{(1000 + g) * 100 + i:06d}.jpg"
            if rotated and i % 2:
                turn = int(turns.choice((1, 3)))   # stored turned anticlockwise (1) or clockwise (3)
                img = np.ascontiguousarray(np.rot90(img, turn))
                lines.append(f"{name} {90 * turn}")
            yield name, jpeg(img)


def build_holidays(shared: Path, dest: Path, seed: int, groups: int = HOLIDAYS_GROUPS,
                   images: int = HOLIDAYS_IMAGES, rotated: bool = False) -> dict:
    """jpg1.tar.gz / jpg2.tar.gz (jpg/NNNNNN.jpg, group = number // 100, numbers from
    100000 as in Holidays; the first half of the groups in jpg1); rotated: also
    holidays_rotations.txt."""
    sizes = holidays_group_sizes(groups, images, np.random.default_rng(seed))
    lines: list[str] = []
    stream = holidays_images(photos(shared), sizes, seed, rotated, lines)
    files, done = {}, 0
    for k, count in ((1, sizes[:groups // 2].sum()), (2, sizes[groups // 2:].sum())):
        path = dest / f"jpg{k}.tar.gz"
        with atomic_tar_gz(path, compresslevel=1) as tf:   # JPEGs do not compress
            for _ in range(count):
                name, payload = next(stream)
                tar_add(tf, f"jpg/{name}", payload)
                _progress(done, images, "holidays images")
                done += 1
        files[path.name] = path
    return holidays_manifest(files, dest, seed, sizes, lines if rotated else None)


def holidays_manifest(files: dict, dest: Path, seed: int, sizes: np.ndarray, lines: list[str] | None) -> dict:
    full = (len(sizes), int(sizes.sum())) == (HOLIDAYS_GROUPS, HOLIDAYS_IMAGES)
    w, h = HOLIDAYS_SIZE
    description = (f"{_size_word(full)} STAND-IN of INRIA Holidays: {int(sizes.sum()):,} JPEGs of {w} x {h} (20 % "
                   f"{h} x {w}) named NNNNNN.jpg in {len(sizes):,} groups (group = number // 100, from 100000; "
                   f"seeded sizes {sizes.min()}-{sizes.max()}, mean {sizes.mean():.2f}) in jpg1.tar.gz / jpg2.tar.gz "
                   "(jpg/<name>); each group = seeded views (crop, rotation up to 8 degrees, colour) of one random "
                   f"region of one of 37 real photos, so groups of the same photo may overlap (seed {seed}).")
    name = "holidays"
    if lines is not None:
        name = "holidays-rotated"
        files["holidays_rotations.txt"] = _atomic_text(dest / "holidays_rotations.txt", "\n".join(lines) + "\n")
        description += (f" Every second image of a group ({len(lines):,}) is stored turned by 90 degrees one way or "
                        "the other (seeded); holidays_rotations.txt ('<name> <clockwise degrees>') turns them upright.")
    doc = {"dataset": name, "description": description + " Not Holidays.", "files": files}
    return doc if full else {**doc, "counts": {"images": int(sizes.sum()), "groups": len(sizes)}}


def build_holidays_rotated(shared: Path, dest: Path, seed: int, **sizes) -> dict:
    return build_holidays(shared, dest, seed, rotated=True, **sizes)


# --- NUS-WIDE: real CIFAR-10 images, labels derived from their classes ----------------------

NUS_IMAGES, NUS_TRAIN = 269_648, 161_789   # NUS-WIDE's items and its official training part
NUS_CONCEPTS = ("airport", "animal", "beach", "bear", "birds", "boats", "book", "bridge", "buildings", "cars",
                "castle", "cat", "cityscape", "clouds", "computer", "coral", "cow", "dancing", "dog", "earthquake",
                "elk", "fire", "fish", "flags", "flowers", "food", "fox", "frost", "garden", "glacier", "grass",
                "harbor", "horses", "house", "lake", "leaf", "map", "military", "moon", "mountain", "nighttime",
                "ocean", "person", "plane", "plants", "police", "protest", "railroad", "rainbow", "reflection",
                "road", "rocks", "running", "sand", "sign", "sky", "snow", "soccer", "sports", "statue", "street",
                "sun", "sunset", "surf", "swimmers", "tattoo", "temple", "tiger", "tower", "town", "toy", "train",
                "tree", "valley", "vehicle", "water", "waterfall", "wedding", "whales", "window", "zebra")
# the NUS-WIDE concepts each CIFAR-10 class implies (18 concepts in all, shared by every
# image of the class, so relevance follows the image content; the first names the image's
# folder). 2 % seeded extras per concept and item make label sets differ and give every
# concept items: the protocol's 21 most frequent are these 18 and 3 extras-only ones
# (about 5,500 items each at full size, enough for 100 queries + 500 training items).
NUS_FROM_CLASS = {"airplane": ("plane", "sky", "vehicle"), "automobile": ("cars", "vehicle", "road"),
                  "bird": ("birds", "animal", "tree"), "cat": ("cat", "animal", "window"),
                  "deer": ("animal", "grass", "plants"), "dog": ("dog", "animal", "grass"),
                  "frog": ("animal", "water", "plants"), "horse": ("horses", "animal", "grass"),
                  "ship": ("boats", "water", "ocean"), "truck": ("vehicle", "road", "buildings")}
NUS_EXTRA = 0.02
NUS_SIZE = (500, 375)   # NUS-WIDE's Flickr images are about 500 x 375, like MIRFLICKR's


def nus_plan(cifar_labels: np.ndarray, n: int, seed: int) -> dict:
    """What each of the n items is: a CIFAR-10 test image (`source`) in variant round
    `round` (0 = the image itself), its id <folder>/<number>_<photo id>.jpg (listed folder by
    folder, as Imagelist.txt is), its 81 labels and whether it is in the training part."""
    rng = np.random.default_rng(seed)
    m = len(cifar_labels)
    pick = rng.choice((n // m + 2) * m, n, replace=False)   # a seeded subset of the rounds' images
    folder = np.array([NUS_FROM_CLASS[CIFAR_CLASSES[c]][0] for c in cifar_labels[pick % m]])
    order = np.argsort(folder, kind="stable")
    pick, folder = pick[order], folder[order]
    photo = 1_000_000_000 + 1000 * np.arange(n) + rng.integers(0, 1000, n)   # Flickr-like ids, unique
    ids, count = [], {}
    for f, p in zip(folder, photo):
        count[f] = count.get(f, 0) + 1
        ids.append(f"{f}/{count[f]:04d}_{p}.jpg")
    implied = np.zeros((len(CIFAR_CLASSES), len(NUS_CONCEPTS)), np.uint8)
    for c, name in enumerate(CIFAR_CLASSES):
        implied[c, [NUS_CONCEPTS.index(x) for x in NUS_FROM_CLASS[name]]] = 1
    labels = implied[cifar_labels[pick % m]] | (rng.random((n, len(NUS_CONCEPTS)), np.float32) < NUS_EXTRA)
    train = np.zeros(n, bool)
    train[rng.permutation(n)[:round(n * NUS_TRAIN / NUS_IMAGES)]] = True
    return {"source": pick % m, "round": pick // m, "ids": ids, "labels": labels.astype(np.uint8), "train": train}


def _lines01(col: np.ndarray) -> bytes:
    """A 0/1 column as the text of a Labels_<concept>.txt file, one value a line."""
    out = np.full(2 * len(col), ord("\n"), np.uint8)
    out[0::2] = col + ord("0")
    return out.tobytes()


def _zip(dest: Path, name: str, members: dict[str, bytes | str]) -> Path:
    import zipfile

    path = dest / name
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for member, payload in members.items():
            z.writestr(member, payload)
    return path


def write_nus_lists(dest: Path, plan: dict) -> dict[str, Path]:
    """ConceptsList.zip, ImageList.zip (Windows paths, CRLF, and the train/test lists) and
    Groundtruth.zip (AllLabels and TrainTestLabels, one 0/1 a line), as NUS-WIDE's."""
    def win(ids):
        return "".join("C:\\ImageData\\Flickr\\" + i.replace("/", "\\") + "\r\n" for i in ids)

    ids, labels, train = plan["ids"], plan["labels"], plan["train"]
    truth = {}
    for c, name in enumerate(NUS_CONCEPTS):
        truth[f"Groundtruth/AllLabels/Labels_{name}.txt"] = _lines01(labels[:, c])
        truth[f"Groundtruth/TrainTestLabels/Labels_{name}_Train.txt"] = _lines01(labels[train, c])
        truth[f"Groundtruth/TrainTestLabels/Labels_{name}_Test.txt"] = _lines01(labels[~train, c])
    split = {"ImageList/Imagelist.txt": win(ids),
             "ImageList/TrainImagelist.txt": win(i for i, t in zip(ids, train) if t),
             "ImageList/TestImagelist.txt": win(i for i, t in zip(ids, train) if not t)}
    return {"ConceptsList.zip": _zip(dest, "ConceptsList.zip",
                                     {"ConceptsList/Concepts81.txt": "".join(c + "\r\n" for c in NUS_CONCEPTS)}),
            "ImageList.zip": _zip(dest, "ImageList.zip", split),
            "Groundtruth.zip": _zip(dest, "Groundtruth.zip", truth)}


def nus_round(images: np.ndarray, r: int, seed: int) -> np.ndarray:
    """Round r of the CIFAR-10 test images: 0 the images, 1-5 cifar_variant 1-5, later
    rounds a variant 1-5 then cropped, shifted or jittered again (no two rounds alike)."""
    if r == 0:
        return images
    rng = np.random.default_rng([seed, r])
    x = cifar_variant(images, 1 + (r - 1) % 5, rng)
    return x if r <= 5 else cifar_variant(x, 2 + (r - 6) % 3, rng)


def nus_rounds(images: np.ndarray, plan: dict, seed: int):
    """(r, the items of round r, the round's images), round by round: one round in memory at a time."""
    for r in np.unique(plan["round"]):
        yield int(r), np.flatnonzero(plan["round"] == r), nus_round(images, int(r), seed)


def write_nus_images(images: np.ndarray, plan: dict, dest: Path, seed: int) -> Path:
    """<dest>/Flickr/<folder>/<file>.jpg for every item, upscaled to NUS_SIZE (bicubic);
    written into a temporary sibling directory, renamed when complete."""
    import cv2

    out = dest / "Flickr"
    with atomic_path(out) as tmp:
        for f in {i.split("/")[0] for i in plan["ids"]}:
            (tmp / f).mkdir(parents=True)
        done = 0
        for _, items, imgs in nus_rounds(images, plan, seed):
            for k in items:
                img = cv2.resize(imgs[plan["source"][k]], NUS_SIZE, interpolation=cv2.INTER_CUBIC)
                (tmp / plan["ids"][k]).write_bytes(jpeg(img))
                _progress(done, len(plan["ids"]), "nus-wide images")
                done += 1
    return out


def nus_protocol(n: int) -> dict:
    """The 21-concept protocol's counts scaled to a reduced n (100 queries and 500 training
    items per concept need the full size); {} at full size."""
    if n == NUS_IMAGES:
        return {}
    return {"per_query": max(5, round(100 * n / NUS_IMAGES)), "per_train": max(20, round(500 * n / NUS_IMAGES))}


def nus_description(what: str, n: int, seed: int) -> str:
    return (f"{_size_word(n == NUS_IMAGES)} STAND-IN of {what}: the official list archives (ConceptsList.zip with "
            f"the real 81 concept names, ImageList.zip, Groundtruth.zip) for {n:,} items = the 10,000 REAL CIFAR-10 "
            "test images (../shared/data/cifar10-test-jpg.tar) and seeded variants (flip, crop, shift, colour "
            "jitter); labels DERIVED from the CIFAR-10 classes (each class implies 3 NUS-WIDE concepts, 18 in all, "
            f"plus {NUS_EXTRA:.0%} seeded extra concepts per item), so every item has one of the 21 most frequent "
            f"concepts (NUS-WIDE: 195,834 of 269,648); seeded train/test lists (seed {seed}).")


def build_nus_wide(shared: Path, dest: Path, seed: int, n: int = NUS_IMAGES) -> dict:
    images, cifar_labels = cifar_test_rgb(shared)
    plan = nus_plan(cifar_labels, n, seed)
    files = write_nus_lists(dest, plan)
    flickr = write_nus_images(images, plan, dest, seed)
    w, h = NUS_SIZE
    description = nus_description("NUS-WIDE", n, seed) + (
        f" The images: {n:,} JPEGs of {w} x {h} (upscaled, bicubic) in {flickr} (<folder>/<file>.jpg as "
        "Imagelist.txt names them), given to the pipeline as the images directory (options.images). Not NUS-WIDE.")
    doc = {"dataset": "nus-wide", "description": description, "files": files,
           "options": {"images": str(flickr.resolve())}}
    return doc if n == NUS_IMAGES else {**doc, "counts": {"images": n}, "protocol": nus_protocol(n)}


# the official low-level features, computed here from each item's 32 x 32 CIFAR-10 pixels
# (its JPEG is those pixels upscaled) in the spirit of NUS-WIDE's, in [0, 1] (CM55's
# third-moment roots are signed)
NUS_LOWLEVEL = (("CH", 64), ("CORR", 144), ("EDH", 73), ("WT", 128), ("CM55", 225))


def _per_image_hist(codes: np.ndarray, bins: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Histogram of each row of `codes` (n, m) over `bins` values (weighted counts if given)."""
    n = len(codes)
    flat = (codes + bins * np.arange(n)[:, None]).ravel()
    w = None if weights is None else weights.ravel()
    return np.bincount(flat, w, minlength=n * bins).reshape(n, bins).astype(np.float32)


def colour_histogram(x: np.ndarray) -> np.ndarray:
    """CH, 64-d: RGB quantised to 4 x 4 x 4, fractions of the pixels."""
    q = (x // 64).astype(np.int64)
    codes = (q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).reshape(len(x), -1)
    return _per_image_hist(codes, 64) / codes.shape[1]


def colour_correlogram(x: np.ndarray) -> np.ndarray:
    """CORR, 144-d: 36 colours (RGB 4 x 3 x 3) x distances 1, 3, 5, 7: the chance that the
    pixel d to the right / below a pixel of colour c has colour c too (auto-correlogram)."""
    q = (x[..., 0] // 64).astype(np.int64) * 9 + (x[..., 1] // 86) * 3 + x[..., 2] // 86
    out = []
    for d in (1, 3, 5, 7):
        pairs = [(q[:, :, :-d], q[:, :, d:]), (q[:, :-d], q[:, d:])]
        first = np.concatenate([a.reshape(len(q), -1) for a, _ in pairs], 1)
        same = np.concatenate([(a == b).reshape(len(q), -1) for a, b in pairs], 1)
        out.append(_per_image_hist(first, 36, same.astype(np.float64)) / np.maximum(_per_image_hist(first, 36), 1))
    return np.concatenate(out, 1)


def edge_direction_histogram(x: np.ndarray) -> np.ndarray:
    """EDH, 73-d: Sobel edge directions of the grey image in 72 bins of 5 degrees, and the
    non-edge pixels, as fractions of the pixels."""
    g = x.astype(np.float32).mean(-1)
    gx = (g[:, :-2, 2:] + 2 * g[:, 1:-1, 2:] + g[:, 2:, 2:]) - (g[:, :-2, :-2] + 2 * g[:, 1:-1, :-2] + g[:, 2:, :-2])
    gy = (g[:, 2:, :-2] + 2 * g[:, 2:, 1:-1] + g[:, 2:, 2:]) - (g[:, :-2, :-2] + 2 * g[:, :-2, 1:-1] + g[:, :-2, 2:])
    angle = ((np.degrees(np.arctan2(gy, gx)) + 180) // 5).astype(np.int64) % 72
    codes = np.where(np.hypot(gx, gy) > 100, angle, 72).reshape(len(x), -1)
    return _per_image_hist(codes, 73) / codes.shape[1]


def _haar(x: np.ndarray) -> list[np.ndarray]:
    """One 2-D Haar step of (n, h, w): the LL, LH, HL, HH sub-bands."""
    a, b, c, d = x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]
    return [(a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2]


def wavelet_texture(x: np.ndarray) -> np.ndarray:
    """WT, 128-d: a 2-level Haar wavelet packet (16 sub-bands) of R, G, B and grey, the
    mean absolute value and the standard deviation of each sub-band (/ 4: the LL-LL band of
    pixels in [0, 1] is in [0, 4])."""
    out = []
    for ch in (*np.moveaxis(x.astype(np.float32) / 255, -1, 0), x.astype(np.float32).mean(-1) / 255):
        for band in (b2 for b1 in _haar(ch) for b2 in _haar(b1)):
            out += [np.abs(band).mean((1, 2)), band.std((1, 2))]
    return np.stack(out, 1) / 4


def colour_moments(x: np.ndarray) -> np.ndarray:
    """CM55, 225-d: 5 x 5 blocks x Lab channels x (mean, standard deviation, cube root of
    the third central moment)."""
    import cv2

    lab = cv2.cvtColor(x.reshape(-1, x.shape[2], 3), cv2.COLOR_RGB2LAB).reshape(x.shape).astype(np.float32) / 255
    ys, xs = np.linspace(0, x.shape[1], 6).astype(int), np.linspace(0, x.shape[2], 6).astype(int)
    out = []
    for i in range(5):
        for j in range(5):
            block = lab[:, ys[i]:ys[i + 1], xs[j]:xs[j + 1]].reshape(len(x), -1, 3)
            mean = block.mean(1)
            out += [mean, block.std(1), np.cbrt(((block - mean[:, None]) ** 3).mean(1))]
    return np.concatenate(out, 1)


LOWLEVEL_FUNCTIONS = {"CH": colour_histogram, "CORR": colour_correlogram, "EDH": edge_direction_histogram,
                      "WT": wavelet_texture, "CM55": colour_moments}


def nus_lowlevel(images: np.ndarray, plan: dict, seed: int, chunk: int = 2000) -> dict[str, np.ndarray]:
    """The five feature matrices (n rows each, in item order), computed round by round, in
    chunks of images (the correlogram's pair arrays are large)."""
    n = len(plan["ids"])
    out = {key: np.empty((n, d), np.float32) for key, d in NUS_LOWLEVEL}
    for r, items, imgs in nus_rounds(images, plan, seed):
        for lo in range(0, len(items), chunk):
            part = items[lo:lo + chunk]
            for key, _ in NUS_LOWLEVEL:
                out[key][part] = LOWLEVEL_FUNCTIONS[key](imgs[plan["source"][part]])
        print(f"  low-level features: round {r} ({len(items):,} items)", flush=True)
    return out


def write_dat(path: Path, m: np.ndarray, chunk: int = 10_000) -> Path:
    """A Normalized_*.dat text matrix: one row a line, values separated by spaces."""
    with open(path, "w") as f:
        for lo in range(0, len(m), chunk):
            np.savetxt(f, m[lo:lo + chunk], fmt="%.6f")
    return path


def write_rar4(path: Path, members: dict[str, Path]) -> Path:
    """A RAR 1.5-4.x archive of stored (uncompressed) members, as `rar a -m0` writes it (no
    rar tool is packaged here; bsdtar reads it), streamed from files: a marker and an
    archive header, per member a file header (sizes, CRC32) then its bytes, an end block."""
    import shutil
    import struct
    import zlib

    def block(kind: int, flags: int, body: bytes) -> bytes:
        head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head

    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(b"Rar!\x1a\x07\x00" + block(0x73, 0, b"\x00" * 6))
        for name, src in members.items():
            size, crc = src.stat().st_size, 0
            if size >= 1 << 32:
                raise SystemExit(f"{src}: {size:,} bytes; this writer has no RAR large-file headers")
            with open(src, "rb") as f:
                for piece in iter(lambda: f.read(1 << 22), b""):
                    crc = zlib.crc32(piece, crc)
            fname = name.encode()
            body = struct.pack("<IIBIIBBHI", size, size, 0, crc, 0x21, 20, 0x30, len(fname), 0x20) + fname
            out.write(block(0x74, 0x8000, body))   # 0x8000: the data (packed size) follows the header
            with open(src, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
        out.write(block(0x7B, 0x4000, b""))
    return path


def build_nus_wide_lowlevel(shared: Path, dest: Path, seed: int, n: int = NUS_IMAGES) -> dict:
    images, cifar_labels = cifar_test_rgb(shared)
    plan = nus_plan(cifar_labels, n, seed)   # the items and labels of build_nus_wide (same seed)
    files = write_nus_lists(dest, plan)
    feats = nus_lowlevel(images, plan, seed)
    work = dest / "_lowlevel"
    work.mkdir(exist_ok=True)
    # one matrix at a time leaves memory (the rar is written from the text files)
    dats = {f"Normalized_{k}.dat": write_dat(work / f"Normalized_{k}.dat", feats.pop(k)) for k, _ in NUS_LOWLEVEL}
    files["NUS_WID_Low_Level_Features.rar"] = write_rar4(dest / "NUS_WID_Low_Level_Features.rar", dats)
    for p in dats.values():
        p.unlink()
    work.rmdir()
    dims = ", ".join(f"{k} {d}" for k, d in NUS_LOWLEVEL)
    description = nus_description("NUS-WIDE low-level features", n, seed) + (
        f" NUS_WID_Low_Level_Features.rar (stored RAR 4) holds Normalized_{{CH,CORR,EDH,WT,CM55}}.dat ({dims}; "
        "text, %.6f): features COMPUTED HERE from each item's 32 x 32 pixels, in the spirit of NUS-WIDE's, not "
        "its extractor: RGB 4x4x4 histogram, 36-colour auto-correlogram at distances 1/3/5/7, Sobel edge "
        "directions in 72 bins + non-edge, 2-level Haar packet mean/std of R, G, B, grey, 5x5 Lab block "
        "moments; values in [0, 1], CM55's third-moment roots in [-1, 1]. Not NUS-WIDE.")
    doc = {"dataset": "nus-wide-lowlevel", "description": description, "files": files}
    return doc if n == NUS_IMAGES else {**doc, "counts": {"images": n}, "protocol": nus_protocol(n)}


BUILDERS = {"sift-1m": build_sift_1m, "cifar-10": build_cifar_10, "gist-1m": build_gist_1m,
            "oxford5k": build_oxford5k, "paris6k": build_paris6k, "ukbench": build_ukbench,
            "mirflickr-25k": build_mirflickr_25k, "holidays": build_holidays,
            "holidays-rotated": build_holidays_rotated, "nus-wide": build_nus_wide,
            "nus-wide-lowlevel": build_nus_wide_lowlevel}
# --small: the size arguments of a quick check of a builder (its manifest then has `counts`
# and the scaled protocol, and says SMALL); stand-ins without a size argument have none
SMALL = {"holidays": {"groups": 20, "images": 60}, "holidays-rotated": {"groups": 20, "images": 60},
         "nus-wide": {"n": 3000}, "nus-wide-lowlevel": {"n": 3000}, "ukbench": {"groups": 20},
         "mirflickr-25k": {"n": 600}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+", choices=sorted(BUILDERS))
    ap.add_argument("--out", type=Path, default=Path("/work/standins"))
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true",
                    help=f"build at a small size to check a builder (use another --out): {SMALL}")
    args = ap.parse_args(argv)
    unsized = [d for d in args.datasets if args.small and d not in SMALL]
    if unsized:
        ap.error(f"--small: no small size for {unsized} (only {sorted(SMALL)})")
    for name in args.datasets:
        built = args.out / "built" / f"{name}.json"
        if built.exists():
            print(f"{name}: built already ({built}); delete it to rebuild")
            continue
        dest = args.out / "files" / name
        dest.mkdir(parents=True, exist_ok=True)
        print(f"{name}: building in {dest}", flush=True)
        t0 = time.time()
        doc = BUILDERS[name](args.shared, dest, args.seed, **(SMALL[name] if args.small else {}))
        doc["files"] = {f: {"path": str(p), "sha256": sha256(p), "size": p.stat().st_size}
                        for f, p in doc["files"].items()}
        doc["build_seconds"] = round(time.time() - t0, 1)
        with atomic_path(built) as tmp:   # the manifest last: its presence means the dataset is built
            tmp.write_text(json.dumps(doc, indent=1))
        print(f"{name}: {doc['build_seconds']:.0f} s -> {built}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
