"""Multi-label sets available here, for DSRH and the multi-label metrics.

`scene` (Boutell et al. 2004): 2,407 images described by 294 colour moments, 6 labels
(beach, sunset, fallfoliage, field, mountain, urban); read from
paths.shared_data/scene (never downloaded). Items are the 1,211 training rows, then the
1,196 test rows. A vector dataset: `vectors(raw)` gives the features.

`cifar10-mosaic2x2` (DERIVED here, not a standard benchmark): 2x2 mosaics of CIFAR-10
test images (the cifar10-test-jpg JPEGs), labels = the classes present. Built by
`data.mosaics.mosaic_protocol` with seed 0: 5,000 database mosaics, then
500 query mosaics drawn from a disjoint pool of source images. Items: the database
mosaics (0..4999), then the queries (5000..5499).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import PseudosupError
from .cifar import CIFAR10_TEST_JPG, CLASSES
from .registry import Dataset, RemoteFile, register

SCENE_LABELS = ("beach", "sunset", "fallfoliage", "field", "mountain", "urban")
SCENE_FILES = (
    RemoteFile("scene-train.arff", size=None,
               sha256="f716ec783880be7c8a247d99efbe8b461ed8d7c97cbd8a13f1ee742614e06d06",
               checksum_note="sha256 of ../shared/data/scene/scene-train.arff (local source)"),
    RemoteFile("scene-test.arff", size=None,
               sha256="6e605a802b8acedfa7ea70f1b7b856a321a1eb95d4c1c6e732d6ac1663b91c58",
               checksum_note="sha256 of ../shared/data/scene/scene-test.arff (local source)"),
)
SCENE_TRAIN = 1_211


def read_scene(directory) -> tuple[np.ndarray, np.ndarray, int]:
    """The Boutell `scene` multi-label set (../shared/data/scene): training rows then test
    rows; 294 colour-moment features (float32) and 6 binary labels (uint8) per row, from
    headerless CSV files despite the .arff names. Returns (X, Y, n_train)."""
    parts = []
    for name in ("scene-train.arff", "scene-test.arff"):
        path = Path(directory) / name
        try:
            a = np.loadtxt(path, delimiter=",", ndmin=2)
        except (OSError, ValueError) as e:
            raise PseudosupError(f"{path}: cannot read the scene set ({e}); expected headerless CSV rows of "
                                 "294 features and 6 labels") from None
        if a.shape[1] != 300:
            raise PseudosupError(f"{path}: {a.shape[1]} columns per row, expected 300 (294 features + 6 labels)")
        parts.append(a)
    X = np.concatenate([p[:, :294] for p in parts]).astype(np.float32)
    Y = np.concatenate([p[:, 294:] for p in parts]).astype(np.uint8)
    return X, Y, len(parts[0])


@dataclass
class Scene(Dataset):
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _load(self, raw: Path):
        raw = Path(raw)
        if raw not in self._cache:
            self._cache[raw] = read_scene(raw)
        return self._cache[raw]

    def num_items(self, raw: Path) -> int:
        return len(self._load(raw)[0])

    def vectors(self, raw: Path) -> np.ndarray:
        return self._load(raw)[0]

    def labels(self, raw: Path) -> np.ndarray:
        return self._load(raw)[1].copy()

    def parts(self, raw: Path) -> dict[str, tuple[int, int]]:
        n_train = self._load(raw)[2]
        return {"train": (0, n_train), "test": (n_train, self.num_items(raw))}


@register("scene")
def _scene() -> Dataset:
    return Scene(
        name="scene", kind="vectors", relevance="multilabel",
        description="Boutell 'scene': 1,211 training + 1,196 test rows of 294 colour moments, 6 labels "
                    "(multi-hot); local files",
        homepage="../shared/data/README.md", license="none stated (public benchmark)",
        files=SCENE_FILES, classes=SCENE_LABELS, shared="scene",
        notes="local only: read from paths.shared_data/scene (never downloaded)")


@dataclass
class CifarMosaic(Dataset):
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _load(self, raw: Path) -> tuple[np.ndarray, np.ndarray, int]:
        """(images, labels, number of database mosaics): database first, then queries."""
        raw = Path(raw)
        if raw not in self._cache:
            from .mosaics import mosaic_protocol
            from .registry import get

            source = get("cifar10-test-jpg")  # same tar, same layout in this raw directory
            m = mosaic_protocol(source.images(raw), source.labels(raw), seed=self.seed)
            self._cache[raw] = (np.concatenate([m["db_images"], m["query_images"]]),
                                np.concatenate([m["db_labels"], m["query_labels"]]),
                                len(m["db_images"]))
        return self._cache[raw]

    def num_items(self, raw: Path) -> int:
        return len(self._load(raw)[0])

    def images(self, raw: Path) -> np.ndarray:
        return self._load(raw)[0]

    def labels(self, raw: Path) -> np.ndarray:
        return self._load(raw)[1].copy()

    def parts(self, raw: Path) -> dict[str, tuple[int, int]]:
        # sizes come from mosaic_protocol's output so the two cannot drift apart
        n_db = self._load(raw)[2]
        return {"database": (0, n_db), "queries": (n_db, self.num_items(raw))}


@register("cifar10-mosaic2x2")
def _mosaic() -> Dataset:
    return CifarMosaic(
        name="cifar10-mosaic2x2", kind="images", relevance="multilabel",
        description="DERIVED multi-label set: 5,000 + 500 seeded 2x2 mosaics (64x64) of CIFAR-10 test JPEGs, "
                    "labels = classes present; queries and database from disjoint source images",
        homepage="../shared/data/README.md", license="CIFAR terms",
        files=(CIFAR10_TEST_JPG,), classes=CLASSES, shared="",
        notes="local only: built from paths.shared_data/cifar10-test-jpg.tar (never downloaded)")
