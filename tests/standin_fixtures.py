"""Tiny stand-ins of the paper datasets, in their exact original archive formats, built
from the real data of ../shared/data where it exists (SIFT descriptors of real photos,
CIFAR-10 test images, real photos and the Oxford ground truth), seeded synthetic
vectors only where no real source exists (GIST's 960-d). They are served by the local
test servers (tests/servers.py) and fetched by the real download code through a
stand-in manifest (src/pseudosup/data/standin.py), so that every paper experiment of
params.yaml runs end to end in CI (tests/test_standins.py). Never the real datasets:
each manifest's description says what its files are.

`build(name, dest, shared)` writes the files of one stand-in and returns its manifest
without URLs; `serve(manifests, http, ftp, out)` publishes the files and writes
<out>/<name>.json with the URLs (TEXMEX over FTP like the real ones, the rest HTTP).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from pseudosup.data.loaders.texmex import VecsFile, write_vecs

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 0
    tf.addfile(info, io.BytesIO(data))


def _jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _manifest(dataset: str, description: str, files: dict[str, Path], counts: dict | None = None) -> dict:
    out = {"dataset": dataset, "description": description,
           "files": {name: {"path": str(p), "sha256": _sha256(p), "size": p.stat().st_size}
                     for name, p in files.items()}}
    if counts:
        out["counts"] = counts
    return out


# --- TEXMEX -------------------------------------------------------------------------------

def _exact_topk(query: np.ndarray, base: np.ndarray, k: int) -> np.ndarray:
    """Exact L2 top-k, ties by the lower base index (float64 distances)."""
    q, b = query.astype(np.float64), base.astype(np.float64)
    d = (q * q).sum(1)[:, None] - 2 * q @ b.T + (b * b).sum(1)[None]   # exact for these integral / small values
    order = np.lexsort((np.broadcast_to(np.arange(len(base)), d.shape), d), axis=1)
    return order[:, :k].astype(np.int32)


def _texmex(dest: Path, prefix: str, arrays: dict) -> Path:
    path = dest / f"{prefix}.tar.gz"
    work = dest / f"_{prefix}"
    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for role in ("base", "query", "learn", "groundtruth"):
            ext = "ivecs" if role == "groundtruth" else "fvecs"
            f = work / f"{prefix}_{role}.{ext}"
            write_vecs(f, arrays[role])
            tf.add(f, arcname=f"{prefix}/{prefix}_{role}.{ext}")
    return path


def sift_1m(dest: Path, shared: Path) -> dict:
    """20,000 base (the LDPH protocol trains on the first 20,000), 50 query, 500 learn
    vectors: real SIFT descriptors of ../shared/data/sift-real-small."""
    base_all = VecsFile(shared / "sift-real-small" / "base.fvecs").load()
    query = VecsFile(shared / "sift-real-small" / "query.fvecs").load()[:50]
    base, learn = base_all[:20_000], base_all[40_000:40_500]
    arrays = {"base": base, "query": query, "learn": learn, "groundtruth": _exact_topk(query, base, 100)}
    return _manifest("sift-1m", "tiny TEXMEX tarball of real SIFT descriptors of photos (sift-real-small: "
                     "base = its first 20,000 base vectors, learn = base vectors 40,000..40,499, query = its first "
                     "50 queries), exact L2 top-100 ground truth", {"sift.tar.gz": _texmex(dest, "sift", arrays)},
                     {"base": 20_000, "query": 50, "learn": 500})


def gist_1m(dest: Path, shared: Path, seed: int = 0) -> dict:
    """SEEDED SYNTHETIC 960-d vectors (no real GIST source here): a non-negative mixture."""
    rng = np.random.default_rng(seed)
    centres = rng.gamma(2.0, 0.05, (20, 960))

    def draw(n):
        return np.abs(centres[rng.integers(0, 20, n)] + rng.normal(0, 0.03, (n, 960))).astype(np.float32)

    base, query, learn = draw(2_000), draw(20), draw(1_000)
    arrays = {"base": base, "query": query, "learn": learn, "groundtruth": _exact_topk(query, base, 100)}
    return _manifest("gist-1m", f"tiny TEXMEX tarball of SEEDED SYNTHETIC 960-d vectors (a non-negative mixture "
                     f"of 20 clusters, seed {seed}; no real GIST source here), exact L2 top-100 ground truth",
                     {"gist.tar.gz": _texmex(dest, "gist", arrays)},
                     {"base": 2_000, "query": 20, "learn": 1_000}) | {"protocol": {"train": 1_000}}


# --- CIFAR-10 -------------------------------------------------------------------------------

def cifar_test_images(shared: Path, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `per_class` real CIFAR-10 test JPEGs of each class (decoded), and labels."""
    images, labels = [], []
    with tarfile.open(shared / "cifar10-test-jpg.tar") as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)
        for c, name in enumerate(CLASSES):
            mine = [m for m in members if m.name.split("/")[-2] == name][:per_class]
            for m in mine:
                images.append(np.asarray(Image.open(tf.extractfile(m)).convert("RGB")))
                labels.append(c)
    return np.stack(images), np.array(labels, dtype=np.int64)


def cifar_10(dest: Path, shared: Path, per_batch: int = 120, seed: int = 0) -> dict:
    """cifar-10-python.tar.gz with 6 batches of `per_batch` REAL CIFAR-10 test images (JPEG
    copies), shuffled with a seed; the test batch holds per_batch / 10 of each class. The
    protocol's counts are scaled (10 queries, 50 training images per class for 120)."""
    images, labels = cifar_test_images(shared, 6 * per_batch // 10)
    rng = np.random.default_rng(seed)
    test = np.concatenate([np.flatnonzero(labels == c)[: per_batch // 10] for c in range(10)])
    train = np.setdiff1d(np.arange(len(labels)), test)
    order = np.concatenate([rng.permutation(train), rng.permutation(test)])
    images, labels = images[order], labels[order]
    path = dest / "cifar-10-python.tar.gz"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    with tarfile.open(path, "w:gz") as tf:
        for b, name in enumerate(names):
            sl = slice(b * per_batch, (b + 1) * per_batch)
            d = {b"batch_label": name.encode(), b"labels": labels[sl].tolist(),
                 b"data": images[sl].transpose(0, 3, 1, 2).reshape(-1, 3072),
                 b"filenames": [f"standin_{b}_{i}.png".encode() for i in range(per_batch)]}
            _tar_add(tf, f"cifar-10-batches-py/{name}", pickle.dumps(d, protocol=2))
        _tar_add(tf, "cifar-10-batches-py/batches.meta",
                 pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}, protocol=2))
    return _manifest("cifar-10", f"tiny CIFAR-10 python tarball: {6 * per_batch} REAL CIFAR-10 test images "
                     f"({6 * per_batch // 10} per class, JPEG copies from ../shared/data) with their labels, shuffled "
                     f"(seed {seed}) into 6 batches of {per_batch}, the last one {per_batch // 10} per class", {"cifar-10-python.tar.gz": path},
                     {"per_batch": per_batch}) | {"protocol": {"per_query": per_batch // 10 - 2,
                                                                 "per_train": 5 * (per_batch // 10 - 2)}}


# --- instance benchmarks: real photos and copies of them --------------------------------------

def photo_groups(shared: Path, groups: int, per_group: int, side: int = 320, seed: int = 0) -> list[list[np.ndarray]]:
    """`groups` real photos (../shared/data and the photos bundled with scikit-image /
    scikit-learn), each with per_group - 1 seeded copies (crop, rotation, scale...)."""
    from pseudosup.data.instance_bench import _resize_max, attack, source_photos

    rng = np.random.default_rng(seed)
    photos = source_photos(shared)[:groups]
    kinds = ("crop", "rotate", "scale", "crop")
    out = []
    for p in photos:
        img = _resize_max(p.image, side)
        out.append([img] + [_resize_max(attack(img, kinds[v % len(kinds)], rng)[0], side) for v in range(per_group - 1)])
    return out


def holidays(dest: Path, shared: Path, rotated: bool = False) -> dict:
    """jpg1.tar.gz / jpg2.tar.gz (jpg/NNNNNN.jpg, group = number // 100) of 12 real photos
    x 3 (the photo and two copies); rotated: some copies stored turned, and
    holidays_rotations.txt saying how to turn them upright."""
    groups = photo_groups(shared, 12, 3)
    files, lines = [], []
    for g, imgs in enumerate(groups):
        for i, img in enumerate(imgs):
            name = f"{(1000 + g) * 100 + i:06d}.jpg"
            if rotated and i == 1:
                img = np.rot90(img, 1)   # stored turned anticlockwise; the file turns it back clockwise
                lines.append(f"{name} 90")
            files.append((name, _jpeg(np.ascontiguousarray(img))))
    paths = {}
    for k, part in enumerate((files[: len(files) // 2], files[len(files) // 2:]), 1):
        paths[f"jpg{k}.tar.gz"] = dest / f"jpg{k}.tar.gz"
        with tarfile.open(paths[f"jpg{k}.tar.gz"], "w:gz") as tf:
            for name, data in part:
                _tar_add(tf, f"jpg/{name}", data)
    what = "12 real photos x 3 (the photo and two seeded copies)"
    if rotated:
        (dest / "holidays_rotations.txt").write_text("\n".join(lines) + "\n")
        paths["holidays_rotations.txt"] = dest / "holidays_rotations.txt"
        return _manifest("holidays-rotated", f"tiny Holidays archives: {what}, every second image stored turned "
                         "by 90 degrees, with holidays_rotations.txt", paths, {"images": 36, "groups": 12})
    return _manifest("holidays", f"tiny Holidays archives: {what}", paths, {"images": 36, "groups": 12})


def _buildings(dest: Path, shared: Path, name: str, seed: int) -> tuple[list[str], list[np.ndarray], dict]:
    """imlist, images and gnd of a tiny Oxford/Paris: 10 real photos x 3, 3 cropped queries."""
    groups = photo_groups(shared, 10, 3, seed=seed)
    imlist, images = [], []
    for g, imgs in enumerate(groups):
        for i, img in enumerate(imgs):
            imlist.append(f"{name}_{g:02d}_{i:06d}")
            images.append(img)
    queries = [0, 3, 6]  # the first photo of groups 0, 1, 2
    gnd = []
    for q in queries:
        h, w = images[q].shape[:2]
        g = q // 3
        gnd.append({"bbx": [w * 0.1, h * 0.1, w * 0.9, h * 0.9], "ok": [g * 3 + 1, g * 3 + 2],
                    "junk": [(g * 3 + 3) % len(imlist)]})
    doc = {"imlist": imlist, "qimlist": [imlist[q] for q in queries], "gnd": gnd, "qidx": queries}
    return imlist, images, doc


def oxford5k(dest: Path, shared: Path) -> dict:
    imlist, images, doc = _buildings(dest, shared, "standin", 0)
    (dest / "gnd_oxford5k.pkl").write_bytes(pickle.dumps(doc, protocol=2))
    with tarfile.open(dest / "oxbuild_images-v1.tgz", "w:gz") as tf:
        for stem, img in zip(imlist, images):
            _tar_add(tf, f"{stem}.jpg", _jpeg(img))
    return _manifest("oxford5k", "tiny Oxford5k: 10 real photos x 3 (photo and two seeded copies) in "
                     "oxbuild_images-v1.tgz, gnd_oxford5k.pkl with 3 cropped queries (ok = the copies, one junk)",
                     {"oxbuild_images-v1.tgz": dest / "oxbuild_images-v1.tgz",
                      "gnd_oxford5k.pkl": dest / "gnd_oxford5k.pkl"}, {"database": 30, "queries": 3})


def paris6k(dest: Path, shared: Path) -> dict:
    imlist, images, doc = _buildings(dest, shared, "paris_standin", 1)
    (dest / "gnd_paris6k.pkl").write_bytes(pickle.dumps(doc, protocol=2))
    half = len(imlist) // 2
    for k, sl in ((1, slice(0, half)), (2, slice(half, None))):
        with tarfile.open(dest / f"paris_{k}-v1.tgz", "w:gz") as tf:
            for stem, img in zip(imlist[sl], images[sl]):
                _tar_add(tf, f"paris/standin/{stem}.jpg", _jpeg(img))
    return _manifest("paris6k", "tiny Paris6k: 10 real photos x 3 (photo and two seeded copies) in "
                     "paris_1-v1.tgz / paris_2-v1.tgz (paris/<landmark>/<name>.jpg), gnd_paris6k.pkl with 3 "
                     "cropped queries", {"paris_1-v1.tgz": dest / "paris_1-v1.tgz",
                                         "paris_2-v1.tgz": dest / "paris_2-v1.tgz",
                                         "gnd_paris6k.pkl": dest / "gnd_paris6k.pkl"},
                     {"database": 30, "queries": 3})


def ukbench(dest: Path, shared: Path) -> dict:
    groups = photo_groups(shared, 8, 4, side=240, seed=2)
    path = dest / "ukbench.zip"
    with zipfile.ZipFile(path, "w") as z:
        for g, imgs in enumerate(groups):
            for i, img in enumerate(imgs):
                z.writestr(f"full/ukbench{4 * g + i:05d}.jpg", _jpeg(img))
                z.writestr(f"thumbnails/ukbench{4 * g + i:05d}.jpg", _jpeg(img[::8, ::8].copy()))
        z.writestr("index.html", "<html></html>")
    return _manifest("ukbench", "tiny UKBench zip: 8 real photos x 4 views (the photo and three seeded copies)",
                     {"ukbench.zip": path}, {"images": 32})


# --- multi-label image sets: real CIFAR-10 test images, SEEDED labels ------------------------

def _multilabel(n: int, k: int, p: float, seed: int) -> np.ndarray:
    """Seeded multi-hot labels, every item with at least one (no real labels exist here)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, k)) < p).astype(np.uint8)
    none = np.flatnonzero(labels.sum(1) == 0)
    labels[none, rng.integers(0, k, len(none))] = 1
    return labels


NUS_STANDIN_CONCEPTS = tuple(f"concept{c:02d}" for c in range(24))
NUS_LOWLEVEL = (("CH", 64), ("CORR", 144), ("EDH", 73), ("WT", 128), ("CM55", 225))


def _nus_lists(dest: Path, n: int, seed: int) -> tuple[dict[str, Path], list[str], np.ndarray]:
    """Groundtruth.zip, ImageList.zip and ConceptsList.zip of n images over 24 concepts."""
    labels = _multilabel(n, len(NUS_STANDIN_CONCEPTS), 0.25, seed)
    ids = [f"{NUS_STANDIN_CONCEPTS[i % 24]}/{i:04d}_{100000 + i}.jpg" for i in range(n)]
    with zipfile.ZipFile(dest / "Groundtruth.zip", "w") as z:
        for c, name in enumerate(NUS_STANDIN_CONCEPTS):
            z.writestr(f"Groundtruth/AllLabels/Labels_{name}.txt", "".join(f"{v}\n" for v in labels[:, c]))
            z.writestr(f"Groundtruth/TrainTestLabels/Labels_{name}_Train.txt", "0\n")
    with zipfile.ZipFile(dest / "ImageList.zip", "w") as z:
        z.writestr("ImageList/Imagelist.txt", "".join(f"C:\\ImageData\\Flickr\\{i.replace('/', chr(92))}\r\n"
                                                      for i in ids))
    with zipfile.ZipFile(dest / "ConceptsList.zip", "w") as z:
        z.writestr("ConceptsList/Concepts81.txt", "".join(f"{c}\r\n" for c in NUS_STANDIN_CONCEPTS))
    files = {f: dest / f for f in ("Groundtruth.zip", "ImageList.zip", "ConceptsList.zip")}
    return files, ids, labels


NUS_SCALED = {"per_query": 5, "per_train": 20}   # 21 concepts x (5 + 20) fit in 600 images


def nus_wide(dest: Path, shared: Path, n: int = 600, seed: int = 0) -> dict:
    """The three list archives and an images directory (the user's copy, params
    datasets.nus-wide.images) of n REAL CIFAR-10 test images with SEEDED labels."""
    files, ids, _ = _nus_lists(dest, n, seed)
    images, _ = cifar_test_images(shared, n // 10)
    for k, i in enumerate(ids):
        (dest / "Flickr" / i).parent.mkdir(parents=True, exist_ok=True)
        (dest / "Flickr" / i).write_bytes(_jpeg(images[k]))
    m = _manifest("nus-wide", f"tiny NUS-WIDE: the official list archives' layout for {n} REAL CIFAR-10 test images "
                  f"(the images directory) with SEEDED labels over 24 concepts (seed {seed}; no real labels here)",
                  files, {"images": n, "concepts": 24})
    return {**m, "protocol": NUS_SCALED, "options": {"images": str(dest / "Flickr")}}


def rar4(path: Path, members: dict[str, bytes]) -> Path:
    """A RAR 1.5-4.x archive of stored (uncompressed) members, as `rar a -m0` writes it
    (no rar tool is packaged here; bsdtar reads it)."""
    import struct
    import zlib

    def block(kind: int, flags: int, body: bytes) -> bytes:
        head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head

    out = [b"Rar!\x1a\x07\x00", block(0x73, 0, b"\x00" * 6)]
    for name, data in members.items():
        fname = name.encode()
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 0, zlib.crc32(data), 0x21, 20, 0x30,
                           len(fname), 0x20) + fname
        out += [block(0x74, 0x8000, body), data]
    out.append(block(0x7B, 0x4000, b""))
    path.write_bytes(b"".join(out))
    return path


def nus_wide_lowlevel(dest: Path, shared: Path, n: int = 600, seed: int = 0) -> dict:
    """The list archives and NUS_WID_Low_Level_Features.rar holding the five Normalized_*.dat
    text matrices: SEEDED SYNTHETIC features (no real low-level features here)."""
    files, _, _ = _nus_lists(dest, n, seed)
    rng = np.random.default_rng(seed + 1)
    dats = {f"Normalized_{key}.dat": "\n".join(" ".join(f"{v:.6f}" for v in row)
                                               for row in rng.random((n, d))).encode() + b"\n"
            for key, d in NUS_LOWLEVEL}
    files["NUS_WID_Low_Level_Features.rar"] = rar4(dest / "NUS_WID_Low_Level_Features.rar", dats)
    m = _manifest("nus-wide-lowlevel", f"tiny NUS-WIDE low-level features: the official archives' layout for {n} "
                  f"items, SEEDED SYNTHETIC 634-d features and labels over 24 concepts (seed {seed})",
                  files, {"images": n, "concepts": 24})
    return {**m, "protocol": NUS_SCALED}


MIR_STANDIN_CONCEPTS = ("animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor",
                        "lake", "male", "night", "people", "plant_life", "portrait", "river", "sea", "sky",
                        "structures", "sunset", "transport", "tree", "water")
MIR_STANDIN_RELEVANT = ("baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people",
                        "portrait", "river", "sea", "tree")


def mirflickr_25k(dest: Path, shared: Path, n: int = 600, seed: int = 0) -> dict:
    """mirflickr25k.zip (mirflickr/im1.jpg ..) of n REAL CIFAR-10 test images and the
    annotations zip with the 38 label files: SEEDED labels (no real labels here)."""
    images, _ = cifar_test_images(shared, n // 10)
    potential = _multilabel(n, 24, 0.15, seed)
    cols = [MIR_STANDIN_CONCEPTS.index(c) for c in MIR_STANDIN_RELEVANT]
    relevant = potential[:, cols] & (np.random.default_rng(seed + 1).random((n, len(cols))) < 0.6)
    with zipfile.ZipFile(dest / "mirflickr25k.zip", "w") as z:
        for k in range(n):
            z.writestr(f"mirflickr/im{k + 1}.jpg", _jpeg(images[k]))
            z.writestr(f"mirflickr/meta/tags/tags{k + 1}.txt", "")
    with zipfile.ZipFile(dest / "mirflickr25k_annotations_v080.zip", "w") as z:
        z.writestr("README.txt", "stand-in annotations (seeded)\n")
        for j, c in enumerate(MIR_STANDIN_CONCEPTS):
            z.writestr(f"{c}.txt", "".join(f"{i + 1}\n" for i in np.flatnonzero(potential[:, j])))
        for j, c in enumerate(MIR_STANDIN_RELEVANT):
            z.writestr(f"{c}_r1.txt", "".join(f"{i + 1}\n" for i in np.flatnonzero(relevant[:, j])))
    m = _manifest("mirflickr-25k", f"tiny MIRFLICKR-25K: both archives' layout for {n} REAL CIFAR-10 test images "
                  f"with SEEDED labels of the 24 + 14 concepts (seed {seed}; no real labels here)",
                  {"mirflickr25k.zip": dest / "mirflickr25k.zip",
                   "mirflickr25k_annotations_v080.zip": dest / "mirflickr25k_annotations_v080.zip"}, {"images": n})
    return {**m, "protocol": {"queries": 100, "train": 200}}


BUILDERS = {"sift-1m": sift_1m, "gist-1m": gist_1m, "cifar-10": cifar_10, "holidays": holidays,
            "holidays-rotated": lambda d, s: holidays(d, s, rotated=True), "oxford5k": oxford5k,
            "paris6k": paris6k, "ukbench": ukbench, "nus-wide": nus_wide, "nus-wide-lowlevel": nus_wide_lowlevel,
            "mirflickr-25k": mirflickr_25k}
FTP_DATASETS = ("sift-1m", "gist-1m")   # TEXMEX is served over FTP, like the real one


def build(name: str, dest: Path, shared: Path) -> dict:
    dest = Path(dest) / name
    dest.mkdir(parents=True, exist_ok=True)
    return BUILDERS[name](dest, Path(shared))


def serve(manifests: dict[str, dict], http, ftp, out: Path) -> Path:
    """Publish every file on the servers; write <out>/<dataset>.json with the URLs."""
    out.mkdir(parents=True, exist_ok=True)
    for name, m in manifests.items():
        server = ftp if name in FTP_DATASETS else http
        doc = {**m, "files": {}}
        for fname, entry in m["files"].items():
            url = server.add(f"{name}/{fname}", Path(entry["path"])) if server is http else _ftp_add(ftp, name, fname,
                                                                                                      entry["path"])
            doc["files"][fname] = {"url": url, "sha256": entry["sha256"], "size": entry["size"]}
        (out / f"{name}.json").write_text(json.dumps(doc, indent=1))
    return out


def _ftp_add(ftp, name: str, fname: str, path: str) -> str:
    (ftp.root / name).mkdir(parents=True, exist_ok=True)
    (ftp.root / name / fname).write_bytes(Path(path).read_bytes())
    return ftp.url(f"{name}/{fname}")
