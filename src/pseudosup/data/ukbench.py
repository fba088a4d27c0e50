"""UKBench (Nister & Stewenius, CVPR 2006): 10,200 images of 2,550 objects, 4 each.

The zip holds full/ukbench00000.jpg .. full/ukbench10199.jpg (and thumbnails, not
used); images 4g..4g+3 show object g. Items are the full-size images by number;
labels(raw) = object (group) ids. Protocol: every image is a query; the N-S score is
the number of its group's 4 images (itself included) among the top 4 results,
averaged (4 = perfect).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import PseudosupError
from .loaders.archive import MemberImages, ZipMembers
from .registry import Dataset, InstanceGroundTruth, RemoteFile, register

NAME = re.compile(r"(?:^|/)full/ukbench(\d{5})\.jpg$")


@dataclass
class UKBench(Dataset):
    expected_images: int | None = 10_200
    archive: str = "ukbench.zip"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _items(self, raw: Path):
        raw = Path(raw)
        if raw not in self._cache:
            members = ZipMembers(raw / self.archive)
            found = sorted((int(m.group(1)), n) for n in members.names if (m := NAME.search(n)))
            numbers = [k for k, _ in found]
            if numbers != list(range(len(numbers))) or len(numbers) % 4:
                raise PseudosupError(f"{raw / self.archive}: full-size images are not ukbench00000.jpg .. "
                                     "numbered without gaps in groups of 4; not the UKBench archive")
            if self.expected_images is not None and len(numbers) != self.expected_images:
                raise PseudosupError(f"{raw / self.archive}: {len(numbers)} images, expected {self.expected_images}")
            self._cache[raw] = ([n for _, n in found], members)
        return self._cache[raw]

    def num_items(self, raw: Path) -> int:
        return len(self._items(raw)[0])

    def labels(self, raw: Path) -> np.ndarray:
        """Object (group) id per item: item i shows object i // 4."""
        return np.arange(self.num_items(raw), dtype=np.int64) // 4

    def image_source(self, raw: Path) -> MemberImages:
        names, members = self._items(raw)
        return MemberImages(members, names, ids=[n.rsplit("/", 1)[-1] for n in names])

    def groundtruth(self, raw: Path) -> InstanceGroundTruth:
        n = self.num_items(raw)
        groups = np.arange(n, dtype=np.int64).reshape(-1, 4)
        return InstanceGroundTruth(np.arange(n, dtype=np.int64), [groups[i // 4] for i in range(n)],
                                   [np.empty(0, np.int64)] * n, None, query_is_result=True)


@register("ukbench")
def _ukbench() -> Dataset:
    return UKBench(
        name="ukbench", kind="images", relevance="instance",
        description="UKBench: 10,200 images, 2,550 objects x 4 views; every image is a query (N-S score)",
        homepage="https://archive.org/details/ukbench", license="free for research",
        files=(RemoteFile("ukbench.zip", ("https://archive.org/download/ukbench/ukbench.zip",), check="zip",
                          checksum_note="the original site (vis.uky.edu) is gone and the archive.org copy's "
                                        "checksum could not be looked up here; verified by the CRC of every "
                                        "zip member and the 10,200 full-size images numbered without gaps"),))
