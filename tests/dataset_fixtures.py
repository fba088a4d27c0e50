"""Small files in the exact formats of the real datasets' downloads (never the real
data: random contents, tiny sizes), and Dataset objects that fetch them from the
local test servers through the same factories as the registry entries."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from pseudosup.data.loaders.texmex import write_vecs


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 0
    tf.addfile(info, io.BytesIO(data))


def jpeg(seed: int, size=(24, 32)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


# --- TEXMEX -----------------------------------------------------------------------------

def texmex_arrays(nb=600, nq=20, nl=100, d=16, k=10, seed=0) -> dict:
    """Integral-valued vectors like SIFT, plus the exact L2 top-k ground truth."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 60, (nb, d)).astype(np.float32)
    query = rng.integers(0, 60, (nq, d)).astype(np.float32)
    learn = rng.integers(0, 60, (nl, d)).astype(np.float32)
    dist = ((query[:, None, :].astype(np.float64) - base[None]) ** 2).sum(-1)
    gt = np.argsort(dist, axis=1, kind="stable")[:, :k].astype(np.int32)
    return {"base": base, "query": query, "learn": learn, "groundtruth": gt}


def texmex_tarball(dest: Path, prefix: str, arrays: dict) -> Path:
    """<prefix>.tar.gz holding <prefix>/<prefix>_{base,query,learn}.fvecs and _groundtruth.ivecs."""
    work = dest.parent / f"_{prefix}_files"
    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tf:
        for role in ("base", "query", "learn", "groundtruth"):
            ext = "ivecs" if role == "groundtruth" else "fvecs"
            path = work / f"{prefix}_{role}.{ext}"
            write_vecs(path, arrays[role])
            tf.add(path, arcname=f"{prefix}/{prefix}_{role}.{ext}")
    return dest


def texmex_dataset(name: str, prefix: str, urls, arrays: dict, **digests):
    from pseudosup.data.texmex import TexmexDataset, texmex_archive, texmex_roles
    counts = {r: len(arrays[r]) for r in ("base", "query", "learn")}
    d, k = arrays["base"].shape[1], arrays["groundtruth"].shape[1]
    return TexmexDataset(
        name=name, kind="vectors", relevance="groundtruth", description="fixture", homepage="", license="",
        files=(texmex_archive(prefix, tuple(urls), counts, d, k, **digests),), role_files=texmex_roles(prefix),
        counts={**counts, "groundtruth": counts["query"]}, dim=d, top_k=k)


# --- CIFAR-10 ---------------------------------------------------------------------------

def cifar_tarball(dest: Path, per_batch=20, seed=0) -> tuple[Path, np.ndarray, np.ndarray]:
    """cifar-10-python.tar.gz: cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta},
    pickled dicts with bytes keys, data (n, 3072) uint8 channel-major, labels a list."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (6 * per_batch, 32, 32, 3), dtype=np.uint8)
    labels = np.tile(np.arange(10), 6 * per_batch // 10 + 1)[: 6 * per_batch]
    rng.shuffle(labels)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    with tarfile.open(dest, "w:gz") as tf:
        for b, name in enumerate(names):
            sl = slice(b * per_batch, (b + 1) * per_batch)
            d = {b"batch_label": name.encode(), b"labels": labels[sl].tolist(),
                 b"data": images[sl].transpose(0, 3, 1, 2).reshape(per_batch, 3072),
                 b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)]}
            _tar_add(tf, f"cifar-10-batches-py/{name}", pickle.dumps(d, protocol=2))
        meta = {b"label_names": [c.encode() for c in ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                                      "frog", "horse", "ship", "truck")]}
        _tar_add(tf, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
    return dest, images, labels


# --- Holidays, Oxford, UKBench -------------------------------------------------------------

HOLIDAYS_GROUPS = {1000: 3, 1001: 2, 1002: 4, 1003: 2}  # group -> images


def holidays_names() -> list[str]:
    return [f"{g * 100 + i:06d}.jpg" for g, n in HOLIDAYS_GROUPS.items() for i in range(n)]


def holidays_archives(dest_dir: Path) -> list[Path]:
    """jpg1.tar.gz / jpg2.tar.gz holding jpg/NNNNNN.jpg, the groups split across both."""
    names = holidays_names()
    out = []
    for k, part in enumerate((names[: len(names) // 2], names[len(names) // 2:]), 1):
        path = dest_dir / f"jpg{k}.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            for n in part:
                _tar_add(tf, f"jpg/{n}", jpeg(int(n[:6])))
        out.append(path)
    return out


def oxford_fixture(dest_dir: Path, n_db=12, n_q=3) -> tuple[Path, Path, dict]:
    """oxbuild_images-v1.tgz (jpgs at the top level) and gnd_oxford5k.pkl (imlist,
    qimlist, gnd with bbx/ok/junk), queries being database images as in Oxford."""
    rng = np.random.default_rng(0)
    imlist = [f"landmark_{i:06d}" for i in range(n_db)]
    qimlist = [imlist[i] for i in (0, 4, 8)][:n_q]
    gnd = []
    for j in range(n_q):
        others = np.setdiff1d(np.arange(n_db), [4 * j])
        gnd.append({"bbx": [2.4, 3.6, 20.5, 17.2], "ok": sorted(rng.choice(others, 3, replace=False).tolist()),
                    "junk": [int(others[-1 - j])]})
    doc = {"imlist": imlist, "qimlist": qimlist, "gnd": gnd, "qidx": [0, 4, 8][:n_q]}
    gnd_path = dest_dir / "gnd_oxford5k.pkl"
    gnd_path.write_bytes(pickle.dumps(doc, protocol=2))
    tgz = dest_dir / "oxbuild_images-v1.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for i, stem in enumerate(imlist):
            _tar_add(tf, f"{stem}.jpg", jpeg(100 + i))
    return tgz, gnd_path, doc


def ukbench_zip(dest: Path, n=8) -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for i in range(n):
            z.writestr(f"full/ukbench{i:05d}.jpg", jpeg(200 + i))
            z.writestr(f"thumbnails/ukbench{i:05d}.jpg", jpeg(300 + i, (8, 8)))
        z.writestr("index.html", "<html></html>")
    return dest


# --- NUS-WIDE ---------------------------------------------------------------------------

NUS_CONCEPTS = ("animal", "beach", "clouds", "person", "sky", "water")


def nuswide_fixture(dest_dir: Path, n=80, seed=0) -> dict:
    """Groundtruth.zip (Groundtruth/AllLabels/Labels_<c>.txt), ImageList.zip
    (ImageList/Imagelist.txt with Windows paths), ConceptsList.zip (Concepts81.txt),
    an images directory laid out as the list, and the low-level .dat matrices."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(NUS_CONCEPTS))) < [0.5, 0.05, 0.6, 0.7, 0.8, 0.4]).astype(np.uint8)
    labels[labels.sum(1) == 0, 4] = 1
    folders = [NUS_CONCEPTS[i % len(NUS_CONCEPTS)] for i in range(n)]
    ids = [f"{f}/{i:04d}_{1000 + i}.jpg" for i, f in enumerate(folders)]
    with zipfile.ZipFile(dest_dir / "Groundtruth.zip", "w") as z:
        for c, name in enumerate(NUS_CONCEPTS):
            z.writestr(f"Groundtruth/AllLabels/Labels_{name}.txt", "".join(f"{v}\n" for v in labels[:, c]))
            z.writestr(f"Groundtruth/TrainTestLabels/Labels_{name}_Train.txt", "0\n")
    with zipfile.ZipFile(dest_dir / "ImageList.zip", "w") as z:
        z.writestr("ImageList/Imagelist.txt", "".join(f"C:\\ImageData\\Flickr\\{i.replace('/', chr(92))}\r\n"
                                                      for i in ids))
    with zipfile.ZipFile(dest_dir / "ConceptsList.zip", "w") as z:
        z.writestr("ConceptsList/Concepts81.txt", "".join(f"{c}\r\n" for c in NUS_CONCEPTS))
    images = dest_dir / "Flickr"
    for k, i in enumerate(ids):
        (images / i).parent.mkdir(parents=True, exist_ok=True)
        (images / i).write_bytes(jpeg(400 + k, (16, 16)))
    dats = {}
    for key, d in (("CH", 64), ("CORR", 144), ("EDH", 73), ("WT", 128), ("CM55", 225)):
        m = rng.random((n, d)).astype(np.float32)
        (dest_dir / f"Normalized_{key}.dat").write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in m) + "\n")
        dats[key] = m
    return {"labels": labels, "ids": ids, "images": images, "dats": dats}


# --- hostile and broken files --------------------------------------------------------------

def evil_tarball(dest: Path, how: str) -> Path:
    """A tar.gz whose member escapes the target: "dotdot", "absolute" or "symlink"."""
    with tarfile.open(dest, "w:gz") as tf:
        _tar_add(tf, "sift/ok.txt", b"fine")
        if how == "dotdot":
            _tar_add(tf, "sift/../../evil.txt", b"escaped")
        elif how == "absolute":
            _tar_add(tf, "/tmp/pseudosup-evil.txt", b"escaped")
        elif how == "symlink":
            info = tarfile.TarInfo("sift/link")
            info.type, info.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
            tf.addfile(info)
    return dest


# --- MIRFLICKR-25K -----------------------------------------------------------------------------

# Written out here (not imported from pseudosup.data.mirflickr), so the fixture is an independent
# statement of the archive's file names.
MIR_CONCEPTS = ("animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor", "lake",
                "male", "night", "people", "plant_life", "portrait", "river", "sea", "sky", "structures", "sunset",
                "transport", "tree", "water")
MIR_RELEVANT = ("baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people", "portrait",
                "river", "sea", "tree")
MIR_UNLABELLED = (3, 17, 29)  # 0-based items with none of the 24 labels


def mirflickr_images_zip(dest: Path, n: int = 40, skip: tuple[int, ...] = ()) -> Path:
    """mirflickr25k.zip: mirflickr/im1.jpg .. im<n>.jpg (image numbers in `skip` left out),
    per-image metadata under mirflickr/meta/ (tags, tags_raw, exif, exif_raw, license) and
    mirflickr/doc/, and directory entries, as the real archive is laid out (the metadata
    is not read: its inner file names beyond meta/tags/tags<k>.txt are as far as known)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for d in ("mirflickr/", "mirflickr/doc/", "mirflickr/meta/", "mirflickr/meta/tags/",
                  "mirflickr/meta/tags_raw/", "mirflickr/meta/exif/", "mirflickr/meta/exif_raw/",
                  "mirflickr/meta/license/"):
            z.writestr(zipfile.ZipInfo(d), b"")
        z.writestr("mirflickr/doc/common_tags.txt", "sky 1500\nwater 1200\nportrait 900\n")
        for k in range(1, n + 1):
            if k not in skip:
                z.writestr(f"mirflickr/im{k}.jpg", jpeg(500 + k, (10 + k % 7, 12 + k % 5)))
            z.writestr(f"mirflickr/meta/tags/tags{k}.txt", "sky\nwater\n")
            z.writestr(f"mirflickr/meta/tags_raw/tags{k}.txt", "Sky\nWater\n")
            z.writestr(f"mirflickr/meta/exif/exif{k}.txt", "-Make\nCanon\n")
            z.writestr(f"mirflickr/meta/exif_raw/exif{k}.txt", "-Make\nCanon\n")
            z.writestr(f"mirflickr/meta/license/license{k}.txt", "Attribution License\n")
    return dest


def mirflickr_label_lists(potential: np.ndarray, relevant: np.ndarray) -> dict[str, list[int]]:
    """Label file name -> the 1-based image numbers it lists (ascending)."""
    lists = {f"{c}.txt": (np.flatnonzero(potential[:, j]) + 1).tolist() for j, c in enumerate(MIR_CONCEPTS)}
    lists.update({f"{c}_r1.txt": (np.flatnonzero(relevant[:, j]) + 1).tolist() for j, c in enumerate(MIR_RELEVANT)})
    return lists


def mirflickr_annotations_zip(dest: Path, lists: dict[str, list], readme: bool = True) -> Path:
    """mirflickr25k_annotations_v080.zip: the label files at the top level, one image number
    per line, plus README.txt. `lists` values are written as given (ints or raw strings)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        if readme:
            z.writestr("README.txt", "MIRFLICKR-25000 annotations v080: <concept>.txt lists the images in which the "
                                     "concept is potentially present, <concept>_r1.txt those where it is relevant.\n")
        for name in sorted(lists):
            z.writestr(name, "".join(f"{v}\n" for v in lists[name]))
    return dest


def mirflickr_fixture(dest_dir: Path, n: int = 40, seed: int = 0) -> dict:
    """Both archives of MIRFLICKR-25K for `n` images in `dest_dir`, with random labels: the
    24 potential concepts (items MIR_UNLABELLED have none), the 14 relevant ones a subset of
    the potential ones. Returns the labels, the label lists and the paths."""
    rng = np.random.default_rng(seed)
    potential = (rng.random((n, len(MIR_CONCEPTS))) < 0.2).astype(np.uint8)
    empty = np.flatnonzero(potential.sum(1) == 0)
    potential[empty, rng.integers(0, len(MIR_CONCEPTS), len(empty))] = 1
    potential[list(MIR_UNLABELLED)] = 0
    cols = [MIR_CONCEPTS.index(c) for c in MIR_RELEVANT]
    relevant = (potential[:, cols] & (rng.random((n, len(cols))) < 0.6)).astype(np.uint8)
    lists = mirflickr_label_lists(potential, relevant)
    images = mirflickr_images_zip(dest_dir / "mirflickr25k.zip", n)
    annotations = mirflickr_annotations_zip(dest_dir / "mirflickr25k_annotations_v080.zip", lists)
    return {"n": n, "labels": potential, "relevant": relevant, "lists": lists, "images": images,
            "annotations": annotations}
