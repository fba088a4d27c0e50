"""Build FULL-SIZE stand-ins of the paper datasets, in their original archive formats,
from the real data of ../shared/data (never the real datasets: each manifest says what
its files are made of).

    python benchmarks/standins/build.py sift-1m [--out /work/standins] [--shared ../shared/data]

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
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from pseudosup.data.loaders.texmex import write_vecs  # noqa: E402

SIFT_SETTINGS = {"upscale": 4, "contrastThreshold": 0.005, "edgeThreshold": 20}
SIFT_COUNTS = {"base": 1_000_000, "query": 10_000, "learn": 100_000}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


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
    path, tmp = dest / f"{prefix}.tar.gz", dest / f".{prefix}.tar.gz.part"
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tf:
        for role in ("base", "groundtruth", "learn", "query"):
            ext = "ivecs" if role == "groundtruth" else "fvecs"
            f = work / f"{prefix}_{role}.{ext}"
            write_vecs(f, arrays[role])
            tf.add(f, arcname=f"{prefix}/{prefix}_{role}.{ext}")
            f.unlink()
    os.replace(tmp, path)
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
    path, tmp = dest / "cifar-10-python.tar.gz", dest / ".cifar-10-python.tar.gz.part"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]

    def add(tf, name: str, payload: bytes):
        tar_add(tf, f"cifar-10-batches-py/{name}", payload)

    with tarfile.open(tmp, "w:gz", compresslevel=6) as tf:
        for b, name in enumerate(names):
            sl = slice(b * 10_000, (b + 1) * 10_000)
            batch = {b"batch_label": name.encode(), b"labels": alllab[sl].tolist(),
                     b"data": allimg[sl].transpose(0, 3, 1, 2).reshape(-1, 3072),
                     b"filenames": [f"standin_{b}_{i}.png".encode() for i in range(10_000)]}
            add(tf, name, pickle.dumps(batch, protocol=2))
        add(tf, "batches.meta", pickle.dumps({b"label_names": [c.encode() for c in CIFAR_CLASSES],
                                              b"num_cases_per_batch": 10_000, b"num_vis": 3072}, protocol=2))
        add(tf, "readme.html", b"<p>STAND-IN of CIFAR-10 built by pseudosup benchmarks/standins/build.py</p>\n")
    os.replace(tmp, path)
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
    path, tmp = dest / "gist.tar.gz", dest / ".gist.tar.gz.part"
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tf:
        for role in ("base", "groundtruth", "learn", "query"):
            f = work / f"gist_{role}.{'ivecs' if role == 'groundtruth' else 'fvecs'}"
            tf.add(f, arcname=f"gist/{f.name}")
            f.unlink()
    os.replace(tmp, path)
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
    path, tmp = dest / "oxbuild_images-v1.tgz", dest / ".oxbuild_images-v1.tgz.part"
    with tarfile.open(tmp, "w:gz", compresslevel=1) as tf:   # JPEGs do not compress
        for i, (name, payload) in enumerate(building_images(gnd, shared, seed, shared / "oxford5k" / "jpg")):
            tar_add(tf, f"{name}.jpg", payload)
            _progress(i, len(gnd["imlist"]), "oxford5k images")
    os.replace(tmp, path)
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
        path, tmp = dest / f"paris_{k}-v1.tgz", dest / f".paris_{k}-v1.tgz.part"
        with tarfile.open(tmp, "w:gz", compresslevel=1) as tf:
            for i in range(half) if k == 1 else range(half, len(gnd["imlist"])):
                name, payload = next(images)
                landmark = name[len("paris_"):].rsplit("_", 1)[0]
                tar_add(tf, f"paris/{landmark}/{name}.jpg", payload)
                _progress(i, len(gnd["imlist"]), "paris6k images")
        os.replace(tmp, path)
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
    path, tmp = dest / "ukbench.zip", dest / ".ukbench.zip.part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
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
    os.replace(tmp, path)
    description = (f"FULL-SIZE STAND-IN of UKBench: {4 * groups:,} JPEGs of 640 x 480 in ukbench.zip (full/ and "
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
    path, tmp = dest / IMAGES_ZIP, dest / f".{IMAGES_ZIP}.part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for k, i in enumerate(pick):
            # Flickr photos are about 500 x 375; upscaled, the CNN sees what it sees on CIFAR-10
            img = cv2.resize(pool[i], (500, 375), interpolation=cv2.INTER_CUBIC)
            z.writestr(f"{IMAGE_DIR}/im{k + 1}.jpg", jpeg(img))
            z.writestr(f"{IMAGE_DIR}/meta/tags/tags{k + 1}.txt", "")
            _progress(k, n, "mirflickr images")
    os.replace(tmp, path)
    ann = dest / ANNOTATIONS_ZIP
    with zipfile.ZipFile(dest / f".{ANNOTATIONS_ZIP}.part", "w") as z:
        z.writestr("README.txt", "STAND-IN annotations derived from CIFAR-10 classes (pseudosup benchmarks/standins)\n")
        for j, c in enumerate(CONCEPTS):
            z.writestr(f"{c}.txt", "".join(f"{i + 1}\n" for i in np.flatnonzero(potential[:, j])))
        for j, c in enumerate(RELEVANT_CONCEPTS):
            z.writestr(f"{c}{RELEVANT_SUFFIX}.txt", "".join(f"{i + 1}\n" for i in np.flatnonzero(relevant[:, j])))
    os.replace(dest / f".{ANNOTATIONS_ZIP}.part", ann)
    description = (f"FULL-SIZE STAND-IN of MIRFLICKR-25K: {n:,} JPEGs of 500 x 375 = the 10,000 REAL CIFAR-10 test "
                   "images and seeded variants (flip, crop), upscaled, in the official zip layout; the 24 + 14 label "
                   "files DERIVED from the CIFAR-10 classes (each class implies 2-3 MIRFLICKR concepts, plus 3 % "
                   f"seeded extra concepts per image; _r1 = a seeded 60 % of each; seed {seed}). Not MIRFLICKR-25K.")
    doc = {"dataset": "mirflickr-25k", "description": description, "files": {IMAGES_ZIP: path, ANNOTATIONS_ZIP: ann}}
    return doc if n == 25_000 else {**doc, "counts": {"images": n}}


BUILDERS = {"sift-1m": build_sift_1m, "cifar-10": build_cifar_10, "gist-1m": build_gist_1m,
            "oxford5k": build_oxford5k, "paris6k": build_paris6k, "ukbench": build_ukbench,
            "mirflickr-25k": build_mirflickr_25k}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+", choices=sorted(BUILDERS))
    ap.add_argument("--out", type=Path, default=Path("/work/standins"))
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name in args.datasets:
        built = args.out / "built" / f"{name}.json"
        if built.exists():
            print(f"{name}: built already ({built}); delete it to rebuild")
            continue
        dest = args.out / "files" / name
        dest.mkdir(parents=True, exist_ok=True)
        print(f"{name}: building in {dest}", flush=True)
        t0 = time.time()
        doc = BUILDERS[name](args.shared, dest, args.seed)
        doc["files"] = {f: {"path": str(p), "sha256": sha256(p), "size": p.stat().st_size}
                        for f, p in doc["files"].items()}
        doc["build_seconds"] = round(time.time() - t0, 1)
        built.parent.mkdir(parents=True, exist_ok=True)
        tmp = built.with_suffix(".part")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, built)
        print(f"{name}: {doc['build_seconds']:.0f} s -> {built}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
