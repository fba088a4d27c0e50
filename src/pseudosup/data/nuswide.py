"""NUS-WIDE (Chua et al., CIVR 2009): 269,648 Flickr images, 81 concepts (multi-label).

Items follow ImageList/Imagelist.txt; an item's id is its path below `Flickr\\`
(e.g. `actor/0001_2124494179.jpg`). labels(raw) is a multi-hot uint8 (n, 81) matrix,
columns in the order of Concepts81.txt, read from Groundtruth/AllLabels/Labels_<c>.txt.

The images themselves are distributed only as Flickr URLs, so there are two datasets:

- `nus-wide`: your copy of the images. Set params `datasets.nus-wide.images` to a
  directory laid out like the image list (`<concept folder>/<file>.jpg`, i.e. the
  `Flickr/` folder of the authors' image archive). The download stage fetches the
  official lists and labels and packs your images into one indexed images.tar.
  Images the list names but you lack make it fail, listing how many, unless
  `datasets.nus-wide.allow_missing: true`: they are then recorded in missing.json
  and left out of the protocol splits (which then say how many were left out).
- `nus-wide-lowlevel`: the official low-level features (64-d colour histogram,
  144-d colour correlogram, 73-d edge direction histogram, 128-d wavelet texture,
  225-d block-wise colour moments = 634-d, the `Normalized_*.dat` files) as vectors,
  stored as one float32 lowlevel.npy. They come in a RAR archive; the download stage
  extracts it with `bsdtar` (Debian: libarchive-tools) when available, else extract
  it yourself and put the five Normalized_*.dat files in the mirror directory.

No checksums are published for these files: they are verified by a full format
check (zip CRCs, required members, row counts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import PseudosupError, atomic_path, write_json
from .imagefolder import pack_files
from .loaders.archive import MemberImages, TarMembers, ZipMembers
from .registry import Dataset, Member, RemoteFile, register

NUS = "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/"
NEXTCENTER = "http://dl.nextcenter.org/public/nuswide/"
NOTE = "no checksum published; verified by the CRC of every zip member and the members the loader needs"
LOWLEVEL = (("CH", 64), ("CORR", 144), ("EDH", 73), ("WT", 128), ("CM55", 225))
MISSING = "missing.json"


def nus_zip(name: str, urls: tuple[str, ...] | None = None) -> RemoteFile:
    return RemoteFile(name, urls or (NUS + name, NEXTCENTER + name), check="zip", checksum_note=NOTE)


def image_id(line: str) -> str:
    """`C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg` -> `actor/0001_2124494179.jpg`."""
    p = line.strip().replace("\\", "/")
    return p.split("Flickr/", 1)[-1]


def _member(z: ZipMembers, suffix: str) -> str:
    hits = [n for n in z.names if n == suffix or n.endswith("/" + suffix)]
    if len(hits) != 1:
        raise PseudosupError(f"{z.path}: expected one member ending in '{suffix}', found {len(hits)}; "
                             "not the expected NUS-WIDE file")
    return hits[0]


@dataclass
class NusWide(Dataset):
    expected_images: int | None = 269_648
    expected_concepts: int | None = 81
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def concepts(self, raw: Path) -> list[str]:
        z = ZipMembers(Path(raw) / "ConceptsList.zip")
        names = [c.strip() for c in z.read(_member(z, "Concepts81.txt")).decode("latin1").splitlines() if c.strip()]
        if self.expected_concepts is not None and len(names) != self.expected_concepts:
            raise PseudosupError(f"{z.path}: {len(names)} concepts, expected {self.expected_concepts}")
        return names

    def ids(self, raw: Path) -> list[str]:
        key = ("ids", Path(raw))
        if key not in self._cache:
            z = ZipMembers(Path(raw) / "ImageList.zip")
            lines = z.read(_member(z, "Imagelist.txt")).decode("latin1").splitlines()
            ids = [image_id(x) for x in lines if x.strip()]
            if self.expected_images is not None and len(ids) != self.expected_images:
                raise PseudosupError(f"{z.path}: {len(ids)} images listed, expected {self.expected_images}")
            self._cache[key] = ids
        return self._cache[key]

    def num_items(self, raw: Path) -> int:
        return len(self.ids(raw))

    def labels(self, raw: Path) -> np.ndarray:
        """Multi-hot uint8 (n, 81): column c = concept c of Concepts81.txt."""
        key = ("labels", Path(raw))
        if key not in self._cache:
            n, z = self.num_items(raw), ZipMembers(Path(raw) / "Groundtruth.zip")
            cols = []
            for c in self.concepts(raw):
                name = _member(z, f"AllLabels/Labels_{c}.txt")
                col = np.array(z.read(name).split(), dtype=np.int64)
                if len(col) != n or not np.isin(col, (0, 1)).all():
                    raise PseudosupError(f"{z.path}:{name}: {len(col)} values (0/1 expected for each of {n} images)")
                cols.append(col.astype(np.uint8))
            self._cache[key] = np.stack(cols, axis=1)
        return self._cache[key].copy()

    def missing(self, raw: Path) -> np.ndarray:
        """Items whose image was not provided (nus-wide with allow_missing), sorted."""
        path = Path(raw) / MISSING
        return np.asarray(json.loads(path.read_text())["items"], dtype=np.int64) if path.exists() \
            else np.empty(0, np.int64)


LISTS = (nus_zip("Groundtruth.zip"), nus_zip("ImageList.zip"), nus_zip("ConceptsList.zip"))


@dataclass
class NusWideImages(NusWide):
    def available(self, paths: dict | None = None) -> tuple[bool, str]:
        src = self.options.get("images")
        if not src:
            return False, ("NUS-WIDE images are distributed as Flickr URLs only: set params "
                           "datasets.nus-wide.images to your copy (<concept>/<file>.jpg as in Imagelist.txt)")
        if not Path(src).is_dir():
            return False, f"datasets.nus-wide.images: {src} is not a directory"
        return True, f"lists and labels downloadable; images from {src}"

    def materialise_local(self, tmp: Path) -> dict:
        ok, why = self.available()
        if not ok:
            raise PseudosupError(why)
        src = Path(self.options["images"])
        ids = self.ids(tmp)
        have = np.array([(src / i).is_file() for i in ids])
        missing = np.flatnonzero(~have)
        if len(missing) and not self.options.get("allow_missing"):
            raise PseudosupError(f"datasets.nus-wide.images: {len(missing)} of {len(ids)} listed images are not in "
                                 f"{src} (e.g. {ids[missing[0]]}); provide them, or set "
                                 "datasets.nus-wide.allow_missing: true to leave them out of the splits")
        pack_files(src, [ids[i] for i in np.flatnonzero(have)], tmp / "images.tar")
        write_json(tmp / MISSING, {"items": missing.tolist(), "ids": [ids[i] for i in missing]})
        return {"images": {"source": str(src), "provided": int(have.sum()), "missing": int(len(missing))}}

    def image_source(self, raw: Path) -> MemberImages:
        members = TarMembers(Path(raw) / "images.tar")
        return MemberImages(members, self.ids(raw))


@dataclass
class NusWideLowLevel(NusWide):
    def materialise_local(self, tmp: Path) -> dict:
        """The five Normalized_*.dat text matrices -> one float32 lowlevel.npy (n, 634)."""
        n = self.num_items(tmp)
        blocks, start = {}, 0
        out = np.empty((n, sum(d for _, d in LOWLEVEL)), dtype=np.float32)
        for key, d in LOWLEVEL:
            path = tmp / f"Normalized_{key}.dat"
            out[:, start:start + d] = read_dat(path, n, d)
            blocks[key] = [start, start + d]
            start += d
            path.unlink()  # the text copy stays in the cache/mirror; the raw dir keeps the binary one
        with atomic_path(tmp / "lowlevel.npy") as t, open(t, "wb") as f:
            np.save(f, out)
        write_json(tmp / "lowlevel.json", {"rows": n, "blocks": blocks,
                                          "source": "Normalized_{CH,CORR,EDH,WT,CM55}.dat, in this order"})
        return {"lowlevel": {"shape": list(out.shape), "blocks": blocks}}

    def vectors(self, raw: Path) -> np.ndarray:
        path = Path(raw) / "lowlevel.npy"
        if not path.exists():
            raise PseudosupError(f"{path}: file not found; run the download stage")
        v = np.load(path, mmap_mode="r")
        if v.shape[0] != self.num_items(raw):
            raise PseudosupError(f"{path}: {v.shape[0]} rows for {self.num_items(raw)} images")
        return v

    def feature_blocks(self, raw: Path) -> dict[str, tuple[int, int]]:
        return {k: tuple(v) for k, v in json.loads((Path(raw) / "lowlevel.json").read_text())["blocks"].items()}


def read_dat(path: Path, n: int, d: int) -> np.ndarray:
    """A whitespace-separated text matrix of n rows and d columns (a trailing column
    that is constant is tolerated and dropped)."""
    try:
        m = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except ValueError as e:
        raise PseudosupError(f"{path}: not a numeric text matrix ({e})") from None
    if m.shape[1] == d + 1 and np.all(m[:, -1] == m[0, -1]):
        m = m[:, :d]
    if m.shape != (n, d):
        raise PseudosupError(f"{path}: {m.shape[0]} x {m.shape[1]} values, expected {n} x {d}")
    return m


LOWLEVEL_RAR = RemoteFile(
    "NUS_WID_Low_Level_Features.rar", (NUS + "NUS_WID_Low_Level_Features.rar", NEXTCENTER + "Low_Level_Features.rar"),
    check="rar", unpack="extract", checksum_note="no checksum published; the extracted matrices are checked by "
                                                 "row and column counts",
    members=tuple(Member(f"Normalized_{k}.dat", f"Normalized_{k}.dat", check="text") for k, _ in LOWLEVEL))


@register("nus-wide")
def _nus_wide() -> Dataset:
    return NusWideImages(
        name="nus-wide", kind="images", relevance="multilabel",
        description="NUS-WIDE: 269,648 Flickr images, 81 concepts (multi-label); your copy of the images",
        homepage="https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html",
        license="research use (NUS terms); images under their Flickr owners' terms", files=LISTS,
        notes="the images are distributed as Flickr URLs only: set params datasets.nus-wide.images to your copy")


@register("nus-wide-lowlevel")
def _nus_wide_lowlevel() -> Dataset:
    return NusWideLowLevel(
        name="nus-wide-lowlevel", kind="vectors", relevance="multilabel",
        description="NUS-WIDE official low-level features: 634-d (CH 64, CORR 144, EDH 73, WT 128, CM55 225) "
                    "for the 269,648 images, 81 concepts",
        homepage="https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html",
        license="research use (NUS terms)", files=LISTS + (LOWLEVEL_RAR,))
