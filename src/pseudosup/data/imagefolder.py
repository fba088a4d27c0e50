"""Image-folder datasets: images in class sub-folders (or a list file with labels).

The raw directory holds the images as one uncompressed tar (or zip) read member by
member, never thousands of loose files. Item order = member paths sorted; the class
of an item is its first folder below `root`; labels are the positions of the class
names in `classes` (sorted names unless the dataset fixes them). Without a `root`, a
single top folder that holds only folders (`train/<class>/<file>.jpg`, as most
archives are packed) is unwrapped, repeatedly: the classes are the folders below it.
Item ids are the member paths as stored (`train/cat/1.jpg`).

Your own images: name a dataset `folder-<anything>` and give its source in params:

    datasets:
      folder-mine:
        images: /path/to/images      # a directory of <class>/<file>.jpg, or a .tar/.tar.gz/.zip of it
        list: null                   # or a text file of "<relative path> <label>" lines

`pseudosup download --dataset folder-mine` packs the images into
data/raw/folder-mine/images.tar (deterministic bytes) plus items.json (ids, labels,
classes); everything downstream reads only that. Relevance is "same class", so fewer
than two classes is an error there (a single class would make every image relevant
to every query). Step by step: docs/datasets.md, "Your own images".
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import PseudosupError
from ..log import progress
from .loaders.archive import (IMAGE_EXTENSIONS, MemberImages, check_member_name, open_members,
                              to_plain_tar, write_tar_index)
from .registry import Dataset

ITEMS = "items.json"
MIN_CLASSES = 2


@dataclass
class ImageFolder(Dataset):
    archive: str = "images.tar"      # the archive (or directory) in the raw directory
    root: str = ""                   # only members under this prefix are items
    expected_count: int | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _items(self, raw: Path) -> tuple[list[str], np.ndarray, tuple[str, ...], object]:
        raw = Path(raw)
        if raw in self._cache:
            return self._cache[raw]
        members = open_members(raw / self.archive)
        items = raw / ITEMS
        if items.exists():
            doc = json.loads(items.read_text())
            names, labels, classes = doc["ids"], np.asarray(doc["labels"], dtype=np.int64), tuple(doc["classes"])
        else:
            names, labels, classes = self._from_folders(members, raw)
        if self.expected_count is not None and len(names) != self.expected_count:
            raise PseudosupError(f"{raw / self.archive}: {len(names)} images, expected {self.expected_count}; "
                                 "not the expected archive: rerun the download stage")
        self._cache[raw] = (names, labels, classes, members)
        return self._cache[raw]

    def _from_folders(self, members, raw: Path):
        names = [n for n in members.names if n.startswith(self.root) and n.lower().endswith(IMAGE_EXTENSIONS)]
        if not names:
            raise PseudosupError(f"{raw / self.archive}: no images under '{self.root or '/'}'")
        root = self.root or top_folder(names)
        cls = [n[len(root):].split("/") for n in names]
        if not self.root and all(len(parts) > 2 for parts in cls):
            # e.g. train/<class>/x.jpg beside val/<class>/x.jpg: the folders found are not classes
            tops = sorted({parts[0] for parts in cls})
            raise PseudosupError(f"{raw / self.archive}: every image sits two or more folders below "
                                 f"{tops} (e.g. '{names[0]}'), so those are not classes; lay the images out "
                                 "as <class>/<file>, or pack one part only (e.g. train/), or give a list file")
        flat = [n for n, parts in zip(names, cls) if len(parts) < 2]
        if flat:
            raise PseudosupError(f"{raw / self.archive}: '{flat[0]}' is not inside a class folder; put images "
                                 "in <class>/ sub-folders or give a list file")
        found = sorted({parts[0] for parts in cls})
        classes = tuple(self.classes) or tuple(found)
        unknown = sorted(set(found) - set(classes))
        if unknown or (self.classes and set(found) != set(classes)):
            raise PseudosupError(f"{raw / self.archive}: class folders {found}, expected {list(classes)}")
        pos = {c: i for i, c in enumerate(classes)}
        return names, np.array([pos[parts[0]] for parts in cls], dtype=np.int64), classes

    def num_items(self, raw: Path) -> int:
        return len(self._items(raw)[0])

    def item_ids(self, raw: Path) -> list[str]:
        """The member paths, in item order (what image_source(raw).ids gives)."""
        return list(self._items(raw)[0])

    def labels(self, raw: Path) -> np.ndarray:
        return self._items(raw)[1].copy()

    def class_names(self, raw: Path) -> tuple[str, ...]:
        return self._items(raw)[2]

    def image_source(self, raw: Path) -> MemberImages:
        names, _, _, members = self._items(raw)
        return MemberImages(members, names)

    def images(self, raw: Path) -> np.ndarray:
        """All images stacked (only when they all have the same size, e.g. CIFAR-10)."""
        src = self.image_source(raw)
        first = src[0]
        out = np.empty((len(src), *first.shape), dtype=np.uint8)
        for i in progress(range(len(src)), f"decoding {self.name}", unit="img"):
            img = src[i]
            if img.shape != first.shape:
                raise PseudosupError(f"{self.name}: image {src.ids[i]} is {img.shape}, image 0 is {first.shape}; "
                                     "sizes differ: use image_source(raw)")
            out[i] = img
        return out


@dataclass
class UserFolder(ImageFolder):
    """A `folder-<name>` dataset: built by the download stage from params options."""

    def available(self, paths: dict | None = None) -> tuple[bool, str]:
        src = self.options.get("images")
        if not src:
            return False, f"params datasets.{self.name}.images is not set (a directory or archive of images)"
        if not Path(src).exists():
            return False, f"datasets.{self.name}.images: {src} not found"
        return True, f"images from {src}"

    def materialise_local(self, tmp: Path) -> dict:
        ok, why = self.available()
        if not ok:
            raise PseudosupError(why)
        src = Path(self.options["images"])
        listing = self.options.get("list")
        if src.is_dir():
            names = _list_names(src, listing)
            pack_files(src, names, tmp / self.archive)
        elif src.suffix == ".zip":
            raise PseudosupError(f"datasets.{self.name}.images: {src}: give a directory or a tar archive "
                                 "(zip sources are not packed; unzip it first)")
        else:
            to_plain_tar(src, tmp / self.archive)
            names = sorted(n for n in open_members(tmp / self.archive).names if n.lower().endswith(IMAGE_EXTENSIONS))
        if listing:
            write_items(tmp / ITEMS, *_read_list(Path(listing), names))
        items = ImageFolder(self.name, "images", "", "", "", archive=self.archive)._items(tmp)
        check_classes(items[2], f"datasets.{self.name}.images: {src}")
        return {"images": {"source": str(src), "list": listing, "items": len(items[0]), "classes": list(items[2])}}


def top_folder(names: list[str]) -> str:
    """The prefix to unwrap: while every image sits at least two folders below one
    single top folder (`train/<class>/x.jpg`), that folder is a wrapper, not a class."""
    prefix = ""
    while True:
        rest = [n[len(prefix):] for n in names]
        tops = {r.split("/", 1)[0] for r in rest}
        if len(tops) != 1 or any(r.count("/") < 2 for r in rest):
            return prefix
        prefix += tops.pop() + "/"


def check_classes(classes, where: str) -> None:
    """Relevance is "same class": with one class every image is relevant to every query."""
    if len(classes) < MIN_CLASSES:
        found = ", ".join(f"'{c}'" for c in classes)
        raise PseudosupError(f"{where}: {len(classes)} class ({found}); relevance is the class, so at least "
                             f"{MIN_CLASSES} are needed: put the images in <class>/<file>.jpg folders (or give "
                             "a list file with their labels)")


def _list_names(src: Path, listing) -> list[str]:
    if listing:
        return [n for n, _ in _parse_list(Path(listing))]
    return sorted(p.relative_to(src).as_posix() for p in src.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _parse_list(path: Path) -> list[tuple[str, str]]:
    rows = []
    for k, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise PseudosupError(f"{path}:{k}: expected '<relative path> <label>', got {line!r}")
            rows.append((check_member_name(parts[0], path), parts[1]))
    if not rows:
        raise PseudosupError(f"{path}: empty list file")
    return rows


def _read_list(path: Path, names: list[str]):
    rows = _parse_list(path)
    missing = sorted(set(n for n, _ in rows) - set(names))
    if missing:
        raise PseudosupError(f"{path}: {len(missing)} listed images are not in the images (e.g. {missing[0]})")
    rows.sort()
    raw = [lab for _, lab in rows]
    if all(lab.lstrip("-").isdigit() for lab in raw):
        classes = sorted({int(lab) for lab in raw})
        labels = [int(lab) for lab in raw]
        return [n for n, _ in rows], labels, [str(c) for c in classes]
    classes = sorted(set(raw))
    pos = {c: i for i, c in enumerate(classes)}
    return [n for n, _ in rows], [pos[lab] for lab in raw], classes


def write_items(path: Path, ids: list[str], labels: list[int], classes: list[str]) -> None:
    from ..io import write_json
    write_json(path, {"ids": ids, "labels": [int(x) for x in labels], "classes": list(classes)})


def pack_files(src: Path, names: list[str], dest: Path) -> None:
    """Pack files of `src` (relative POSIX names) into an uncompressed tar with fixed
    metadata (same files -> same bytes -> same DVC hash), then index it."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in progress(sorted(names), f"packing {src}", unit="file"):
            path = src / check_member_name(name, src)
            if not path.is_file():
                raise PseudosupError(f"{path}: listed image not found")
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tf.addfile(info, io.BytesIO(data))
    write_tar_index(dest)


def user_folder(name: str) -> UserFolder:
    return UserFolder(name=name, kind="images", relevance="class",
                      description="your images (params datasets.<name>: images, list)",
                      homepage="", license="yours", files=(), archive="images.tar")
