"""Oxford5k and Paris6k buildings (Philbin et al. 2007, 2008), with the ground truth in
the cnnimageretrieval `gnd_<name>.pkl` layout (Radenovic, Tolias & Chum).

The pickle holds `imlist` (database image names, no extension), `qimlist` (the 55
query image names) and `gnd`: per query, `bbx` (x1, y1, x2, y2 of the query region),
`ok` (good + ok images) and `junk` (indices into imlist).

Items: the database images in imlist order (items 0..n-1), then the 55 queries
(items n..n+54). A query item is its image cropped to `bbx` (the standard protocol)
unless image_source(raw, crop_queries=False). groundtruth(raw) gives `ok`/`junk`
as item indices (= database positions) and the boxes; junk images are removed from
each ranking before computing AP (revisitop compute_map, trapezoid rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..io import PseudosupError
from .loaders.archive import MemberImages, open_members
from .loaders.safe_pickle import load_pickle
from .registry import Dataset, InstanceGroundTruth, RemoteFile, register, tar_name

VGG = "https://www.robots.ox.ac.uk/~vgg/data/"
CNNIR = "http://cmp.felk.cvut.cz/cnnimageretrieval/data/test/"
IMAGES_NOTE = ("the VGG page publishes no checksum; verified by a full read of the tgz (every member "
               "decompressed, names checked) and by every ground-truth image being present")
GND_NOTE = ("sha256 of the copy in ../shared/data/oxford5k (from GitHub luanvu2307/diffusion @ 2da9d7b, whose "
            "download script fetches this URL); not confirmed against the server itself")


@dataclass
class Buildings(Dataset):
    gnd_file: str = ""
    image_dirs: tuple[str, ...] = ()     # archives (or directories) in the raw dir holding the jpgs
    expected: tuple[int, int] | None = None  # (database images, queries)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def gnd(self, raw: Path) -> dict:
        path = Path(raw) / self.gnd_file
        if path in self._cache:
            return self._cache[path]
        doc = load_pickle(path, encoding="latin1")
        try:
            imlist, qimlist, gnd = list(doc["imlist"]), list(doc["qimlist"]), list(doc["gnd"])
            for g in gnd:
                g["bbx"], g["ok"], g["junk"]  # noqa: B018 (presence check)
        except (KeyError, TypeError):
            raise PseudosupError(f"{path}: not a cnnimageretrieval ground-truth file (needs imlist, qimlist, "
                                 "gnd with bbx/ok/junk)") from None
        if len(gnd) != len(qimlist):
            raise PseudosupError(f"{path}: {len(gnd)} ground-truth entries for {len(qimlist)} queries")
        if self.expected and (len(imlist), len(qimlist)) != self.expected:
            raise PseudosupError(f"{path}: {len(imlist)} images and {len(qimlist)} queries, expected "
                                 f"{self.expected[0]} and {self.expected[1]}; not the {self.name} ground truth")
        for j, g in enumerate(gnd):
            for key in ("ok", "junk"):
                idx = np.asarray(g[key], dtype=np.int64)
                if len(idx) and (idx.min() < 0 or idx.max() >= len(imlist)):
                    raise PseudosupError(f"{path}: query {j} '{key}' indices outside the {len(imlist)} images")
        self._cache[path] = {"imlist": imlist, "qimlist": qimlist, "gnd": gnd}
        return self._cache[path]

    def resized(self, counts: dict) -> "Buildings":
        """Other sizes (a stand-in's): {"database": n, "queries": nq}."""
        if set(counts) - {"database", "queries"}:
            raise PseudosupError(f"{self.name}: unknown counts {sorted(set(counts) - {'database', 'queries'})} "
                                 "(it has: database, queries)")
        if not counts:
            return self
        want = (int(counts.get("database", self.expected[0])), int(counts.get("queries", self.expected[1])))
        return replace(self, expected=want, _cache={})

    def num_items(self, raw: Path) -> int:
        g = self.gnd(raw)
        return len(g["imlist"]) + len(g["qimlist"])

    def parts(self, raw: Path) -> dict[str, tuple[int, int]]:
        n, nq = len(self.gnd(raw)["imlist"]), len(self.gnd(raw)["qimlist"])
        return {"database": (0, n), "queries": (n, n + nq)}

    def _locate(self, raw: Path) -> dict[str, tuple[object, str]]:
        where = {}
        for d in self.image_dirs:
            members = open_members(Path(raw) / d)
            for n in members.names:
                base = n.rsplit("/", 1)[-1]
                if base.lower().endswith(".jpg"):
                    where[base[:-4]] = (members, n)
        return where

    def image_source(self, raw: Path, crop_queries: bool = True, allow_missing: bool = False) -> MemberImages:
        """Database images then query images (cropped to their box by default).
        Every image named by the ground truth must be present, unless allow_missing
        (then reading a missing one raises)."""
        g = self.gnd(raw)
        stems = g["imlist"] + g["qimlist"]
        where = self._locate(raw)
        missing = [s for s in stems if s not in where]
        if missing and not allow_missing:
            raise PseudosupError(f"{raw}: {len(set(missing))} ground-truth images are not in the raw archives "
                                 f"(e.g. {missing[0]}.jpg); incomplete download: rerun the download stage")
        n, boxes = len(g["imlist"]), [gg["bbx"] for gg in g["gnd"]]

        def crop(i: int, img: np.ndarray) -> np.ndarray:
            return crop_box(img, boxes[i - n]) if crop_queries and i >= n else img

        return MemberImages(_ByStem(where, raw), stems, ids=[f"{s}.jpg" for s in g["imlist"]]
                            + [f"{s}.jpg#query{j}" for j, s in enumerate(g["qimlist"])], transform=crop)

    def groundtruth(self, raw: Path) -> InstanceGroundTruth:
        g = self.gnd(raw)
        n, nq = len(g["imlist"]), len(g["qimlist"])
        return InstanceGroundTruth(
            queries=np.arange(n, n + nq, dtype=np.int64),
            ok=[np.asarray(x["ok"], dtype=np.int64) for x in g["gnd"]],
            junk=[np.asarray(x["junk"], dtype=np.int64) for x in g["gnd"]],
            boxes=np.asarray([x["bbx"] for x in g["gnd"]], dtype=np.float64), query_is_result=False)


def crop_box(img: np.ndarray, bbx) -> np.ndarray:
    """The query region x1, y1, x2, y2 (pixels, rounded like PIL's crop), clipped to the image."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in bbx)
    x1, x2 = max(0, min(w, x1)), max(0, min(w, x2))
    y1, y2 = max(0, min(h, y1)), max(0, min(h, y2))
    if x2 <= x1 or y2 <= y1:
        raise PseudosupError(f"query box {list(bbx)} is empty inside a {w}x{h} image")
    return np.ascontiguousarray(img[y1:y2, x1:x2])


class _ByStem:
    def __init__(self, where: dict, raw: Path):
        self.where, self.path = where, raw

    def read(self, stem: str) -> bytes:
        if stem not in self.where:
            raise PseudosupError(f"{self.path}: image {stem}.jpg is not in the raw archives")
        members, name = self.where[stem]
        return members.read(name)


@register("oxford5k")
def _oxford5k() -> Dataset:
    tgz = RemoteFile("oxbuild_images-v1.tgz", (VGG + "oxbuildings/oxbuild_images-v1.tgz",
                                               "https://thor.robots.ox.ac.uk/oxbuildings/oxbuild_images-v1.tgz"),
                     check="tar.gz", unpack="tar", checksum_note=IMAGES_NOTE)
    gnd = RemoteFile("gnd_oxford5k.pkl", (CNNIR + "oxford5k/gnd_oxford5k.pkl",), size=141_140,
                     sha256="c84e5eb68524fd46aab5c0e80b90f970d7bf677507aeb8cddd6b12990d4bc19e", checksum_note=GND_NOTE)
    return Buildings(
        name="oxford5k", kind="images", relevance="instance",
        description="Oxford Buildings: 5,063 images, 55 queries with boxes (11 landmarks x 5); "
                    "relevant = good + ok, junk ignored",
        homepage=VGG + "oxbuildings/", license="Oxford Buildings terms (Flickr images, research use)",
        files=(tgz, gnd), gnd_file="gnd_oxford5k.pkl", image_dirs=(tar_name(tgz.name),), expected=(5063, 55))


@register("paris6k")
def _paris6k() -> Dataset:
    tgzs = tuple(RemoteFile(f"paris_{i}-v1.tgz", (VGG + f"parisbuildings/paris_{i}-v1.tgz",),
                            check="tar.gz", unpack="tar", checksum_note=IMAGES_NOTE) for i in (1, 2))
    gnd = RemoteFile("gnd_paris6k.pkl", (CNNIR + "paris6k/gnd_paris6k.pkl",), size=254_083,
                     sha256="def916cf4f197a182d9a7840cdb6294489fa57c2121f9742a1bcc6f2209bb345", checksum_note=GND_NOTE)
    return Buildings(
        name="paris6k", kind="images", relevance="instance",
        description="Paris Buildings: 6,392 images (the 20 corrupt files of the archives are not in the "
                    "ground truth), 55 queries with boxes; relevant = good + ok, junk ignored",
        homepage=VGG + "parisbuildings/", license="Paris Buildings terms (Flickr images, research use)",
        files=tgzs + (gnd,), gnd_file="gnd_paris6k.pkl", image_dirs=tuple(tar_name(t.name) for t in tgzs),
        expected=(6392, 55))
