"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 28x28 grey images, 10 classes.

Items are the 60,000 training images (0..59999) followed by the 10,000 test images
(60000..69999).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .loaders.idx import read_idx
from .registry import Dataset, RemoteFile, register

BASE = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MIRROR = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"

# md5 of the official archives (the dataset's README); content_sha256 of the
# decompressed idx payloads, computed here from Debian's dataset-fashion-mnist files.
FILES = (
    RemoteFile("train-images-idx3-ubyte.gz", (BASE + "train-images-idx3-ubyte.gz", MIRROR + "train-images-idx3-ubyte.gz"),
               26421880, md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
               content_sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    RemoteFile("train-labels-idx1-ubyte.gz", (BASE + "train-labels-idx1-ubyte.gz", MIRROR + "train-labels-idx1-ubyte.gz"),
               29515, md5="25c81989df183df01b3e8a0aad5dffbe",
               content_sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    RemoteFile("t10k-images-idx3-ubyte.gz", (BASE + "t10k-images-idx3-ubyte.gz", MIRROR + "t10k-images-idx3-ubyte.gz"),
               4422102, md5="bef4ecab320f06d8554ea6380940ec79",
               content_sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    RemoteFile("t10k-labels-idx1-ubyte.gz", (BASE + "t10k-labels-idx1-ubyte.gz", MIRROR + "t10k-labels-idx1-ubyte.gz"),
               5148, md5="bb300cfdad3c16e7a12a480ee83cd310",
               content_sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
)

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

N_TRAIN, N_TEST = 60_000, 10_000


class FashionMNIST(Dataset):
    def num_items(self, raw: Path) -> int:
        return N_TRAIN + N_TEST

    def labels(self, raw: Path) -> np.ndarray:
        raw = Path(raw)
        train = read_idx(raw / "train-labels-idx1-ubyte.gz")
        test = read_idx(raw / "t10k-labels-idx1-ubyte.gz")
        self._check(raw, train, test)
        return np.concatenate([train, test]).astype(np.int64)

    def images(self, raw: Path) -> np.ndarray:
        raw = Path(raw)
        train = read_idx(raw / "train-images-idx3-ubyte.gz")
        test = read_idx(raw / "t10k-images-idx3-ubyte.gz")
        self._check(raw, train, test)
        return np.concatenate([train, test])

    @staticmethod
    def _check(raw: Path, train: np.ndarray, test: np.ndarray) -> None:
        from ..io import PseudosupError
        if len(train) != N_TRAIN or len(test) != N_TEST:
            raise PseudosupError(f"{raw}: expected {N_TRAIN} train + {N_TEST} test items, "
                                 f"found {len(train)} + {len(test)}")


@register("fashion-mnist")
def _fashion_mnist() -> Dataset:
    return FashionMNIST(
        name="fashion-mnist", kind="images",
        description="Zalando article images, 60,000 train + 10,000 test, 28x28 grey, 10 classes",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        license="MIT",
        files=FILES, classes=CLASSES,
        local_dirs=("/usr/share/datasets/fashion-mnist",),
    )
