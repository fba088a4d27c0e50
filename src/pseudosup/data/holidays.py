"""INRIA Holidays (Jegou, Douze & Schmid, ECCV 2008): 1,491 photos in 500 groups.

File names are 6-digit numbers; the group is the number // 100 and the first image
of each group (the smallest number, xxxx00.jpg) is its query. Items are all images of
jpg1.tar.gz and jpg2.tar.gz sorted by file name; labels(raw) = group ids. Protocol
(INRIA's holidays_map): each group's first image queries all other images; the
query itself is excluded from its ranking; AP by the trapezoid rule.

`holidays-rotated`: the same images with a per-image rotation applied at read time,
from a list file `holidays_rotations.txt` you provide (lines "<file name> <degrees>",
degrees clockwise, a multiple of 90) — many Holidays photos are stored sideways. Its
public source is not known here, so it has no download URL: put the list in the
mirror directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import PseudosupError
from .loaders.archive import MemberImages, open_members
from .registry import Dataset, InstanceGroundTruth, RemoteFile, register, tar_name

FTP = "ftp://ftp.inrialpes.fr/pub/lear/douze/data/"
NOTE = ("INRIA publishes no checksum for the jpg archives; verified by a full read of the tar.gz "
        "(every member decompressed, names checked) and the image count (1,491 in 500 groups)")


def holidays_archives(urls_base: str = FTP, **kw) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(f"jpg{i}.tar.gz", (f"{urls_base}jpg{i}.tar.gz",), check="tar.gz", unpack="tar",
                            checksum_note=NOTE, **kw) for i in (1, 2))


@dataclass
class Holidays(Dataset):
    expected_images: int | None = 1491
    expected_groups: int | None = 500
    rotations_file: str | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _items(self, raw: Path):
        raw = Path(raw)
        if raw in self._cache:
            return self._cache[raw]
        owner = {}
        for f in self.files:
            if f.unpack != "tar":
                continue
            members = open_members(raw / tar_name(f.name))
            for n in members.names:
                base = n.rsplit("/", 1)[-1]
                if base.lower().endswith(".jpg"):
                    if base in owner:
                        raise PseudosupError(f"{raw}: image {base} appears twice in the archives")
                    owner[base] = (members, n)
        names = sorted(owner)
        bad = [n for n in names if not (len(n) == 10 and n[:6].isdigit())]
        if bad:
            raise PseudosupError(f"{raw}: unexpected file name {bad[0]} (Holidays images are NNNNNN.jpg)")
        groups = np.array([int(n[:6]) // 100 for n in names], dtype=np.int64)
        if self.expected_images is not None and (len(names) != self.expected_images
                                                 or len(np.unique(groups)) != self.expected_groups):
            raise PseudosupError(f"{raw}: {len(names)} images in {len(np.unique(groups))} groups, expected "
                                 f"{self.expected_images} in {self.expected_groups}; incomplete archives")
        self._cache[raw] = (names, groups, owner)
        return self._cache[raw]

    def num_items(self, raw: Path) -> int:
        return len(self._items(raw)[0])

    def labels(self, raw: Path) -> np.ndarray:
        """Group id per item (int64): relevant = same group."""
        return self._items(raw)[1].copy()

    def image_source(self, raw: Path) -> MemberImages:
        names, _, owner = self._items(raw)
        turn = self._rotations(raw, names) if self.rotations_file else None
        src = _MultiMembers(owner)
        return MemberImages(src, names, transform=(lambda i, img: np.rot90(img, -turn[i] // 90)) if turn else None)

    def _rotations(self, raw: Path, names: list[str]) -> list[int]:
        path = Path(raw) / self.rotations_file
        turn = dict.fromkeys(names, 0)
        for k, line in enumerate(path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts or line.startswith("#"):
                continue
            if len(parts) != 2 or parts[0] not in turn or not parts[1].lstrip("-").isdigit() or int(parts[1]) % 90:
                raise PseudosupError(f"{path}:{k}: expected '<Holidays file name> <degrees, a multiple of 90>', "
                                     f"got {line!r}")
            turn[parts[0]] = int(parts[1]) % 360
        return [turn[n] for n in names]

    def groundtruth(self, raw: Path) -> InstanceGroundTruth:
        groups = self._items(raw)[1]
        order = np.argsort(groups, kind="stable")
        starts = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1]])
        members = np.split(order, starts[1:])
        queries = np.array([m[0] for m in members], dtype=np.int64)  # names sorted: first = smallest number
        return InstanceGroundTruth(queries, [m[1:].astype(np.int64) for m in members],
                                   [np.empty(0, np.int64) for _ in members], None, query_is_result=False)


class _MultiMembers:
    """Members spread over several archives, addressed by file name."""

    def __init__(self, owner: dict):
        self.owner = owner
        self.path = "holidays archives"

    def read(self, name: str) -> bytes:
        members, member = self.owner[name]
        return members.read(member)


@register("holidays")
def _holidays() -> Dataset:
    return Holidays(
        name="holidays", kind="images", relevance="instance",
        description="INRIA Holidays: 1,491 personal holiday photos in 500 groups; the first of each group "
                    "is its query (500 queries)",
        homepage="https://thoth.inrialpes.fr/~jegou/data.php.html#holidays", license="free for research",
        files=holidays_archives())


@register("holidays-rotated")
def _holidays_rotated() -> Dataset:
    rot = RemoteFile("holidays_rotations.txt", check="text",
                     checksum_note="provided by the user: no public source known here; checked as text and "
                                   "every line against the image names")
    return Holidays(
        name="holidays-rotated", kind="images", relevance="instance",
        description="INRIA Holidays with per-image rotations applied (list holidays_rotations.txt)",
        homepage="https://thoth.inrialpes.fr/~jegou/data.php.html#holidays", license="free for research",
        files=holidays_archives() + (rot,), rotations_file="holidays_rotations.txt",
        notes="put holidays_rotations.txt (lines '<file name> <clockwise degrees>') in the mirror directory")
