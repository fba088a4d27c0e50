"""MIRFLICKR-25K: its registry entry, the download path on archives in the original layout
(served over local HTTP: verified, resumed after a cut, corrupt files refused), the loader
(items, labels, images read from the zip) and the mirflickr25k-q2000 protocol."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pseudosup.data import registry
from pseudosup.data.download import fetch_dataset
from pseudosup.data.loaders.archive import decode_image
from pseudosup.data.mirflickr import CONCEPTS, RELEVANT_CONCEPTS, MirFlickr25k, parse_label_file
from pseudosup.data.splits import PROTOCOL_INFO, check_split, mirflickr_protocol
from pseudosup.io import PseudosupError

from .dataset_fixtures import (
    MIR_CONCEPTS,
    MIR_RELEVANT,
    MIR_UNLABELLED,
    jpeg,
    md5,
    mirflickr_annotations_zip,
    mirflickr_fixture,
    mirflickr_images_zip,
)
from .servers import HTTPFileServer

FAST = {"retries": 2, "backoff": 0.01}
IMAGES, ANNOTATIONS = "mirflickr25k.zip", "mirflickr25k_annotations_v080.zip"
N = 40


@pytest.fixture
def http():
    with HTTPFileServer() as server:
        yield server


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return mirflickr_fixture(tmp_path_factory.mktemp("mirflickr"), n=N)


def served(http, images, annotations, digests: bool = True) -> MirFlickr25k:
    """The registered dataset, resized to the fixture, its files served by `http` (with the
    fixture files' own md5 and size, or, digests=False, no digest: format checks only)."""
    real = registry.get("mirflickr-25k").resized({"images": N})
    files = []
    for spec, path in zip(real.files, (images, annotations)):
        data = path.read_bytes()
        pins = {"size": len(data), "md5": md5(path)} if digests else {"size": None, "md5": None}
        files.append(dataclasses.replace(spec, urls=(http.add(spec.name, data),), **pins))
    return dataclasses.replace(real, files=tuple(files))


def fetch(ds, tmp_path):
    out = tmp_path / "raw"
    fetch_dataset(ds, out, tmp_path / "cache", **FAST)
    return out


def nothing_left(tmp_path):
    assert not (tmp_path / "raw").exists()
    assert not [p for p in tmp_path.rglob("*.tmp-*")], "temporary files left behind"


def test_registry_entry_pins_the_official_files():
    ds = registry.get("mirflickr-25k")
    assert registry.module_of("mirflickr-25k") == "pseudosup.data.mirflickr"
    assert ds.kind == "images" and ds.relevance == "multilabel" and ds.num_items("/nowhere") == 25_000
    images, annotations = ds.files
    assert images.name == IMAGES and images.urls[0] == "https://press.liacs.nl/mirflickr/mirflickr25k.v3b/" + IMAGES
    assert images.size == 3_069_184_257 and images.md5 == "a23d0a8564ee84cda5622a6c2f947785"
    assert annotations.name == ANNOTATIONS and annotations.urls[0].endswith("mirflickr25k.v3b/" + ANNOTATIONS)
    assert annotations.size == 207_220 and annotations.md5 == "aa0138c79892b1b670184d142380948f"
    assert all(f.unpack == "copy" and f.check == "zip" and f.checksum_note for f in ds.files)
    # the fixture names the files independently of the module
    assert CONCEPTS == MIR_CONCEPTS and list(CONCEPTS) == sorted(CONCEPTS) and RELEVANT_CONCEPTS == MIR_RELEVANT
    assert ds.concepts() == list(MIR_CONCEPTS) and ds.relevant_concepts() == list(MIR_RELEVANT)
    info = PROTOCOL_INFO["mirflickr25k-q2000"]
    assert info["dataset"] == "mirflickr-25k" and info["needs"] == "raw"
    with pytest.raises(PseudosupError, match="unknown counts.*images"):
        ds.resized({"base": 3})


def test_download_verify_and_read(tmp_path, http, fx):
    ds = served(http, fx["images"], fx["annotations"])
    raw = fetch(ds, tmp_path)
    # both archives are kept whole in the raw directory (images read from the zip)
    assert sorted(p.name for p in raw.iterdir()) == sorted(["MANIFEST.json", ANNOTATIONS, IMAGES])
    manifest = json.loads((raw / "MANIFEST.json").read_text())
    assert manifest["dataset"] == "mirflickr-25k"
    assert {f["verified"] for f in manifest["files"].values()} == {"md5"}
    labelled = N - len(MIR_UNLABELLED)
    assert manifest["mirflickr"]["images_with_a_label"] == labelled
    assert manifest["mirflickr"]["per_concept"] == dict(zip(MIR_CONCEPTS, fx["labels"].sum(0).tolist()))

    assert ds.num_items(raw) == N
    labels = ds.labels(raw)
    assert labels.dtype == np.uint8 and labels.shape == (N, 24) and np.array_equal(labels, fx["labels"])
    assert np.array_equal(ds.relevant_labels(raw), fx["relevant"]) and ds.relevant_labels(raw).shape == (N, 14)
    assert np.flatnonzero(~labels.any(1)).tolist() == list(MIR_UNLABELLED)  # unlabelled rows stay in place
    labels[:] = 0
    assert np.array_equal(ds.labels(raw), fx["labels"])  # a copy: the cache cannot be modified

    src = ds.image_source(raw)
    assert len(src) == N and src.ids == [f"im{k}.jpg" for k in range(1, N + 1)]
    for i in (0, 6, N - 1):  # item i = im<i+1>.jpg, images of different sizes
        k = i + 1
        assert np.array_equal(src[i], decode_image(jpeg(500 + k, (10 + k % 7, 12 + k % 5)), "x"))
    assert src[6].shape == (10 + 7 % 7, 12 + 7 % 5, 3)


def test_connection_cut_mid_file_resumes(tmp_path, http, fx):
    ds = served(http, fx["images"], fx["annotations"])
    http.faults[IMAGES] += [("cut", 3000)]
    raw = fetch(ds, tmp_path)
    assert [r["range"] for r in http.requests if r["path"] == IMAGES] == [None, "bytes=3000-"]
    assert not list((tmp_path / "cache").glob("*.part"))
    assert np.array_equal(ds.labels(raw), fx["labels"]) and len(ds.image_source(raw)) == N


def test_corrupt_download_is_refused(tmp_path, http, fx):
    data = bytearray(fx["images"].read_bytes())
    data[len(data) // 3: len(data) // 3 + 64] = b"\x00" * 64  # same size, other bytes
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    ds = served(http, fx["images"], fx["annotations"])
    ds = dataclasses.replace(ds, files=(dataclasses.replace(ds.files[0], urls=(http.add("bad/" + IMAGES, bad),)),
                                        ds.files[1]))
    with pytest.raises(PseudosupError, match="md5 mismatch"):
        fetch(ds, tmp_path)
    nothing_left(tmp_path)
    assert not (tmp_path / "cache" / IMAGES).exists()
    # without a digest, the zip's CRCs catch it
    ds = served(http, bad, fx["annotations"], digests=False)
    with pytest.raises(PseudosupError, match="CRC|corrupt"):
        fetch(ds, tmp_path)
    nothing_left(tmp_path)


def test_real_pins_refuse_other_files(tmp_path, http, fx):
    """The registered size/md5 hold for whatever the URL serves: the fixture is refused."""
    real = registry.get("mirflickr-25k").resized({"images": N})
    files = tuple(dataclasses.replace(f, urls=(http.add(f.name, p),))
                  for f, p in zip(real.files, (fx["images"], fx["annotations"])))
    with pytest.raises(PseudosupError, match="expected 3069184257"):
        fetch(dataclasses.replace(real, files=files), tmp_path)
    nothing_left(tmp_path)


def test_protocol_split(tmp_path, http, fx):
    ds = served(http, fx["images"], fx["annotations"])
    raw = fetch(ds, tmp_path)
    split = mirflickr_protocol("mirflickr25k-q2000", (ds, raw), 0, queries=8, train=10, map_at=10)
    q, db, tr = split.part("queries"), split.part("database"), split.part("train")
    labelled = np.flatnonzero(fx["labels"].any(1))
    assert len(q) == 8 and len(tr) == 10 and len(db) == len(labelled) - 8
    assert not np.intersect1d(q, db).size and np.isin(tr, db).all()
    assert np.array_equal(np.union1d(q, db), labelled)  # only labelled images, all of them
    assert not np.isin(list(MIR_UNLABELLED), np.concatenate([q, db])).any()
    assert split.relevance == "multilabel" and split.dataset == "mirflickr-25k"
    assert split.extra == {"label_columns": list(range(24)), "concepts": list(MIR_CONCEPTS),
                           "label_set": "potential (<concept>.txt)", "map_at": 10,
                           "items_left_out_unlabelled": len(MIR_UNLABELLED)}
    check_split(split, N)
    again = mirflickr_protocol("mirflickr25k-q2000", (ds, raw), 0, queries=8, train=10, map_at=10)
    assert again.to_json() == split.to_json()  # seeded: the same file
    other = mirflickr_protocol("mirflickr25k-q2000", (ds, raw), 1, queries=8, train=10, map_at=10)
    assert not np.array_equal(other.part("queries"), q)
    with pytest.raises(PseudosupError, match=r"37 labelled images, fewer than the 2000 queries"):
        mirflickr_protocol("mirflickr25k-q2000", (ds, raw), 0)  # the real counts need the real data


def test_label_file_format_variants():
    """CRLF or LF, a UTF-8 BOM, blank lines, padding and repeats read the same; item = number - 1."""
    for data in (b"3\n1\n40\n", b"\xef\xbb\xbf3\r\n1\r\n\r\n 40 \r\n3\r\n"):
        assert parse_label_file(data, 40, "x").tolist() == [0, 2, 39]
    assert parse_label_file(b"", 40, "x").tolist() == []
    with pytest.raises(PseudosupError, match=r"x:2: expected one image number per line, got '4 5'"):
        parse_label_file(b"1\n4 5\n", 40, "x")


def bad_annotations(tmp_path, fx, edit) -> object:
    lists = {k: list(v) for k, v in fx["lists"].items()}
    edit(lists)
    return mirflickr_annotations_zip(tmp_path / "bad_annotations.zip", lists)


@pytest.mark.parametrize("edit, match", [
    (lambda ls: ls["sea.txt"].insert(0, 0), r"sea\.txt:1: image number 0 is outside 1\.\.40"),
    (lambda ls: ls["dog_r1.txt"].append(N + 1), r"dog_r1\.txt:\d+: image number 41 is outside 1\.\.40"),
    (lambda ls: ls.pop("tree_r1.txt"), r"no member named 'tree_r1\.txt'"),
    (lambda ls: ls.pop("animals.txt"), r"no member named 'animals\.txt'"),
    (lambda ls: ls["food.txt"].insert(1, "im7"), r"food\.txt:2: expected one image number per line, got 'im7'"),
])
def test_bad_annotations_are_refused_naming_the_file(tmp_path, http, fx, edit, match):
    bad = bad_annotations(tmp_path, fx, edit)
    ds = served(http, fx["images"], bad)
    with pytest.raises(PseudosupError, match=rf"{ANNOTATIONS}.*{match}"):
        fetch(ds, tmp_path)
    nothing_left(tmp_path)
    # and read in place (a raw directory made by hand): the same error
    raw = tmp_path / "byhand"
    raw.mkdir()
    (raw / IMAGES).write_bytes(fx["images"].read_bytes())
    (raw / ANNOTATIONS).write_bytes(bad.read_bytes())
    with pytest.raises(PseudosupError, match=match):
        ds.labels(raw) if "_r1" not in match else ds.relevant_labels(raw)


def test_incomplete_image_archive_is_refused(tmp_path, http, fx):
    images = mirflickr_images_zip(tmp_path / "few.zip", N, skip=(7,))
    ds = served(http, images, fx["annotations"])
    with pytest.raises(PseudosupError, match=rf"{IMAGES}: 1 of im1\.jpg \.\. im40\.jpg missing \(e\.g\. mirflickr/im7\.jpg\)"):
        fetch(ds, tmp_path)
    nothing_left(tmp_path)
    more = mirflickr_images_zip(tmp_path / "more.zip", N + 1)  # an image the count does not cover
    ds = served(http, more, fx["annotations"])
    with pytest.raises(PseudosupError, match=r"1 unexpected image member\(s\) \(e\.g\. mirflickr/im41\.jpg\)"):
        fetch(ds, tmp_path)
    nothing_left(tmp_path)
