"""Fashion-MNIST download, idx loading and committed splits (incl. bad input)."""

from __future__ import annotations

import gzip
import json
import shutil
import struct

import numpy as np
import pytest

from pseudosup.data import registry
from pseudosup.data.download import fetch_dataset
from pseudosup.data.loaders.idx import read_idx
from pseudosup.data.splits import load_split, make_split, sha256_of
from pseudosup.io import PseudosupError

from .conftest import ROOT, run_cli


def write_idx(path, array, gz=True):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def test_idx_round_trip(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    write_idx(tmp_path / "x.gz", a)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), a)


def test_truncated_idx_names_the_file(tmp_path):
    a = np.zeros((10, 28, 28), np.uint8)
    write_idx(tmp_path / "t.idx", a, gz=False)
    raw = (tmp_path / "t.idx").read_bytes()
    (tmp_path / "t.idx").write_bytes(raw[:-100])
    with pytest.raises(PseudosupError, match=r"t\.idx.*truncated"):
        read_idx(tmp_path / "t.idx")


def test_corrupt_gzip_names_the_file(tmp_path):
    write_idx(tmp_path / "c.gz", np.zeros((100, 28, 28), np.uint8))
    raw = (tmp_path / "c.gz").read_bytes()
    (tmp_path / "c.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(PseudosupError, match=r"c\.gz: corrupt or truncated"):
        read_idx(tmp_path / "c.gz")


def test_bad_magic(tmp_path):
    (tmp_path / "m.idx").write_bytes(b"\x01\x02\x03\x04" + b"\0" * 20)
    with pytest.raises(PseudosupError, match="bad magic"):
        read_idx(tmp_path / "m.idx")


def test_real_fashion_mnist_loads(fmnist_raw):
    ds = registry.get("fashion-mnist")
    images, labels = ds.images(fmnist_raw), ds.labels(fmnist_raw)
    assert images.shape == (70000, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels), [7000] * 10)
    manifest = json.loads((fmnist_raw / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == {f.name for f in ds.files}


def test_missing_dataset_offline_says_where_it_looked_and_what_to_do(tmp_path):
    ds = registry.get("fashion-mnist")
    ds.local_dirs = (str(tmp_path / "nowhere"),)
    with pytest.raises(PseudosupError) as e:
        fetch_dataset(ds, tmp_path / "out", tmp_path / "cache", offline=True)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "nowhere" in msg and "mirror" in msg
    assert not (tmp_path / "out").exists()


def test_corrupt_local_copy_is_rejected_by_checksum(tmp_path, fmnist_raw):
    bad = tmp_path / "local"
    shutil.copytree(fmnist_raw, bad)
    with gzip.open(bad / "train-labels-idx1-ubyte.gz", "rb") as f:
        payload = bytearray(f.read())
    payload[100] ^= 1
    with gzip.open(bad / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(payload)
    ds = registry.get("fashion-mnist")
    ds.local_dirs = (str(bad),)
    with pytest.raises(PseudosupError, match="train-labels-idx1-ubyte.gz"):
        fetch_dataset(ds, tmp_path / "out", tmp_path / "cache", offline=True)
    assert not (tmp_path / "out").exists()


def test_mirror_directory_is_used_first(tmp_path, fmnist_raw):
    ds = registry.get("fashion-mnist")
    ds.local_dirs = ()
    # the mirror must hold the *official* bytes (md5 checked); Debian's re-gzipped
    # copies are not, so they are refused there and the dataset counts as missing.
    with pytest.raises(PseudosupError, match="missing"):
        fetch_dataset(ds, tmp_path / "out", tmp_path / "cache", mirror=fmnist_raw, offline=True)


@pytest.mark.parametrize("name", ["fmnist-q1k", "fmnist-tiny"])
def test_committed_splits_verify_and_regenerate_identically(name, fmnist_raw):
    path = ROOT / "data" / "splits" / f"{name}.json"
    split = load_split(path)
    labels = registry.get("fashion-mnist").labels(fmnist_raw)
    again = make_split(name, labels, split.seed)
    assert again.to_json() == path.read_text()
    q, db, pre = split.part("queries"), split.part("database"), split.part("pretrain")
    assert not np.intersect1d(q, db).size and not np.intersect1d(pre, q).size and not np.intersect1d(pre, db).size
    assert np.all(np.bincount(labels[q]) == len(q) // 10)


def test_tampered_split_is_refused(tmp_path):
    for f in ("fmnist-tiny.json", "SHA256SUMS"):
        shutil.copy(ROOT / "data/splits" / f, tmp_path / f)
    doc = json.loads((tmp_path / "fmnist-tiny.json").read_text())
    doc["parts"]["queries"]["indices"][0] += 1
    (tmp_path / "fmnist-tiny.json").write_text(json.dumps(doc))
    with pytest.raises(PseudosupError, match="does not match"):
        load_split(tmp_path / "fmnist-tiny.json")


def test_split_checksums_file_is_sha256sum_compatible():
    sums = (ROOT / "data/splits/SHA256SUMS").read_text().split()
    for digest, name in zip(sums[::2], sums[1::2]):
        assert sha256_of(ROOT / "data/splits" / name) == digest


def test_download_cli_missing_dataset_error(tmp_path):
    proc = run_cli("download", "--params", str(ROOT / "params.yaml"), "--keys", "paths", "--dataset", "cifar-99",
                   "--out", str(tmp_path / "x"), check=False)
    assert proc.returncode == 2 and "unknown dataset 'cifar-99'" in proc.stderr
