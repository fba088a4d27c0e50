"""Every loader on a fixture in its dataset's real format, fetched through the real
download path (local HTTP / FTP servers), plus the protocol functions on them."""

from __future__ import annotations

import dataclasses
import io
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from pseudosup.data import registry
from pseudosup.data.cifar import Cifar10
from pseudosup.data.download import fetch_dataset
from pseudosup.data.holidays import Holidays, holidays_archives
from pseudosup.data.imagefolder import user_folder
from pseudosup.data.loaders.archive import decode_image
from pseudosup.data.loaders.safe_pickle import loads
from pseudosup.data.nuswide import LOWLEVEL_RAR, NusWideImages, NusWideLowLevel, nus_zip
from pseudosup.data.oxford import crop_box
from pseudosup.data.splits import check_split, nuswide_protocol, per_label_sample
from pseudosup.data.ukbench import UKBench
from pseudosup.io import PseudosupError

from .dataset_fixtures import (
    HOLIDAYS_GROUPS,
    NUS_CONCEPTS,
    cifar_tarball,
    holidays_names,
    jpeg,
    md5,
    nuswide_fixture,
    oxford_fixture,
    sha256,
    ukbench_zip,
)
from .dataset_fixtures import holidays_archives as holidays_tgz
from .servers import FTPFileServer, HTTPFileServer

FAST = {"retries": 2, "backoff": 0.01}


@pytest.fixture
def http():
    with HTTPFileServer() as server:
        yield server


def fetch(ds, tmp_path, **kw):
    out = tmp_path / "raw"
    fetch_dataset(ds, out, tmp_path / "cache", **FAST, **kw)
    return out


def test_cifar_python_tarball(tmp_path, http):
    path, images, labels = cifar_tarball(tmp_path / "cifar-10-python.tar.gz", per_batch=20)
    real = registry.get("cifar-10")
    spec = dataclasses.replace(real.files[0], urls=(http.add(path.name, path),), size=path.stat().st_size,
                               md5=md5(path))
    ds = Cifar10(**{**{f.name: getattr(real, f.name) for f in dataclasses.fields(real) if f.init}, "files": (spec,),
                    "per_batch": 20})
    raw = fetch(ds, tmp_path)
    assert ds.num_items(raw) == 120 and ds.parts(raw) == {"train": (0, 100), "test": (100, 120)}
    assert np.array_equal(ds.images(raw), images)  # channel-major rows -> HWC pixels
    assert np.array_equal(ds.labels(raw), labels) and ds.labels(raw).dtype == np.int64
    assert ds.image_source(raw)[5].shape == (32, 32, 3)


def test_cifar_wrong_batch_shape_is_named(tmp_path):
    path, _, _ = cifar_tarball(tmp_path / "cifar-10-python.tar.gz", per_batch=20)
    ds = Cifar10(name="c", kind="images", description="", homepage="", license="", per_batch=10_000)
    with pytest.raises(PseudosupError, match=r"data_batch_1: data uint8 \(20, 3072\).*expected"):
        ds.images(tmp_path)


def test_restricted_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    with pytest.raises(PseudosupError, match="refusing to load builtins.print"):
        loads(pickle.dumps(Evil()), "evil.pkl")
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert np.array_equal(loads(pickle.dumps({b"data": arr}, protocol=2), "ok", encoding="bytes")[b"data"], arr)


def test_holidays_over_ftp_groups_queries_and_rotation(tmp_path):
    root = tmp_path / "ftp"
    root.mkdir()
    holidays_tgz(tmp_path)
    n = sum(HOLIDAYS_GROUPS.values())
    with FTPFileServer(root) as ftp:
        files = tuple(dataclasses.replace(f, urls=(ftp.add(f.name, tmp_path / f.name),))
                      for f in holidays_archives())
        ds = Holidays(name="holidays", kind="images", relevance="instance", description="", homepage="",
                      license="", files=files, expected_images=n, expected_groups=len(HOLIDAYS_GROUPS))
        raw = fetch(ds, tmp_path)
    assert sorted(p.name for p in raw.iterdir()) == ["MANIFEST.json", "jpg1.tar", "jpg1.tar.index.json",
                                                     "jpg2.tar", "jpg2.tar.index.json"]
    src = ds.image_source(raw)
    assert src.ids == holidays_names() and len(src) == n
    assert np.array_equal(src[0], decode_image(jpeg(100000), "x"))
    labels = ds.labels(raw)
    assert labels.tolist() == [int(x[:6]) // 100 for x in holidays_names()]
    gt = ds.groundtruth(raw)
    assert [src.ids[q] for q in gt.queries] == ["100000.jpg", "100100.jpg", "100200.jpg", "100300.jpg"]
    for q, ok in zip(gt.queries, gt.ok):  # all other images of the group, never the query itself
        assert q not in ok and set(ok) == set(np.flatnonzero(labels == labels[q])) - {q}
    assert not gt.query_is_result
    # rotated variant: the list file comes from the user (mirror), is applied at read time
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "holidays_rotations.txt").write_text("# file degrees\n100001.jpg 90\n100200.jpg 180\n")
    rot = dataclasses.replace(registry.get("holidays-rotated"), files=ds.files + (registry.get(
        "holidays-rotated").files[-1],), expected_images=n, expected_groups=len(HOLIDAYS_GROUPS))
    raw2 = tmp_path / "raw2"
    fetch_dataset(rot, raw2, tmp_path / "cache", mirror=mirror, offline=True)
    r = rot.image_source(raw2)
    assert np.array_equal(r[1], np.rot90(src[1], -1)) and np.array_equal(r[5], np.rot90(src[5], 2))
    assert np.array_equal(r[0], src[0])


def test_holidays_count_check(tmp_path, http):
    holidays_tgz(tmp_path)
    files = tuple(dataclasses.replace(f, urls=(http.add(f.name, tmp_path / f.name),)) for f in holidays_archives())
    ds = dataclasses.replace(registry.get("holidays"), files=files)  # expects the real 1,491 images
    raw = fetch(ds, tmp_path)
    with pytest.raises(PseudosupError, match="11 images in 4 groups, expected 1491 in 500"):
        ds.num_items(raw)


def oxford_dataset(tmp_path, http, **kw):
    tgz, gnd, doc = oxford_fixture(tmp_path)
    real = registry.get("oxford5k")
    files = (dataclasses.replace(real.files[0], urls=(http.add(tgz.name, tgz),)),
             dataclasses.replace(real.files[1], urls=(http.add(gnd.name, gnd),), size=gnd.stat().st_size,
                                 sha256=sha256(gnd)))
    return dataclasses.replace(real, files=files, expected=(12, 3), **kw), doc


def test_oxford_ground_truth_items_and_cropped_queries(tmp_path, http):
    ds, doc = oxford_dataset(tmp_path, http)
    raw = fetch(ds, tmp_path)
    assert ds.num_items(raw) == 15 and ds.parts(raw) == {"database": (0, 12), "queries": (12, 15)}
    src = ds.image_source(raw)
    full = decode_image(jpeg(100 + 4), "x")
    assert np.array_equal(src[4], full)  # database item 4 is the full image
    q1 = src[13]  # query 1 = image 4 cropped to its box [2.4, 3.6, 20.5, 17.2] -> x 2..20, y 4..17
    assert np.array_equal(q1, full[4:17, 2:20])
    assert np.array_equal(ds.image_source(raw, crop_queries=False)[13], full)
    gt = ds.groundtruth(raw)
    assert gt.queries.tolist() == [12, 13, 14]
    assert [o.tolist() for o in gt.ok] == [g["ok"] for g in doc["gnd"]]
    assert [j.tolist() for j in gt.junk] == [g["junk"] for g in doc["gnd"]]
    assert gt.boxes.shape == (3, 4)
    with pytest.raises(PseudosupError, match="no class labels"):
        ds.labels(raw)


def test_oxford_missing_image_is_reported(tmp_path, http):
    ds, doc = oxford_dataset(tmp_path, http)
    raw = fetch(ds, tmp_path)
    doc["imlist"].append("landmark_999999")
    (raw / "gnd_oxford5k.pkl").write_bytes(pickle.dumps(doc))
    ds2 = dataclasses.replace(ds, expected=None)
    with pytest.raises(PseudosupError, match="1 ground-truth images are not in the raw archives.*landmark_999999"):
        ds2.image_source(raw)
    src = ds2.image_source(raw, allow_missing=True)
    with pytest.raises(PseudosupError, match="landmark_999999.jpg is not in the raw archives"):
        src[12]


def test_crop_box_clips_and_refuses_empty():
    img = np.zeros((10, 20, 3), np.uint8)
    assert crop_box(img, [-5, -5, 100, 100]).shape == (10, 20, 3)
    with pytest.raises(PseudosupError, match="empty"):
        crop_box(img, [5, 5, 5, 9])


def test_ukbench_zip(tmp_path, http):
    path = ukbench_zip(tmp_path / "ukbench.zip", n=8)
    files = (dataclasses.replace(registry.get("ukbench").files[0], urls=(http.add(path.name, path),)),)
    ds = UKBench(name="ukbench", kind="images", relevance="instance", description="", homepage="", license="",
                 files=files, expected_images=8)
    raw = fetch(ds, tmp_path)
    src = ds.image_source(raw)
    assert src.ids == [f"ukbench{i:05d}.jpg" for i in range(8)]
    assert np.array_equal(src[6], decode_image(jpeg(206), "x"))
    assert ds.labels(raw).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    gt = ds.groundtruth(raw)
    assert gt.query_is_result and gt.ok[5].tolist() == [4, 5, 6, 7]


def test_corrupt_zip_is_refused(tmp_path, http):
    path = ukbench_zip(tmp_path / "ukbench.zip", n=8)
    data = bytearray(path.read_bytes())
    data[200:260] = b"\xff" * 60
    files = (dataclasses.replace(registry.get("ukbench").files[0], urls=(http.add("ukbench.zip", bytes(data)),)),)
    ds = dataclasses.replace(registry.get("ukbench"), files=files)
    with pytest.raises(PseudosupError, match="CRC|corrupt"):
        fetch(ds, tmp_path)
    assert not (tmp_path / "raw").exists()


def nus_files(tmp_path, http):
    fx = nuswide_fixture(tmp_path)
    return fx, tuple(nus_zip(n, (http.add(n, tmp_path / n),)) for n in
                     ("Groundtruth.zip", "ImageList.zip", "ConceptsList.zip"))


def test_nuswide_images_labels_and_protocol(tmp_path, http):
    fx, files = nus_files(tmp_path, http)
    ds = NusWideImages(name="nus-wide", kind="images", relevance="multilabel", description="", homepage="",
                       license="", files=files, expected_images=80, expected_concepts=len(NUS_CONCEPTS),
                       options={"images": str(fx["images"])})
    raw = fetch(ds, tmp_path)
    assert ds.concepts(raw) == list(NUS_CONCEPTS)
    assert ds.ids(raw) == fx["ids"]
    assert np.array_equal(ds.labels(raw), fx["labels"]) and ds.labels(raw).dtype == np.uint8
    src = ds.image_source(raw)
    assert np.array_equal(src[7], decode_image(jpeg(407, (16, 16)), "x"))
    split = nuswide_protocol("nuswide21-q2100", (ds, raw), 0, top=3, per_query=4, per_train=5, map_at=10)
    cols = split.extra["label_columns"]
    counts = fx["labels"].sum(0)
    assert sorted(cols) == sorted(np.argsort(-counts, kind="stable")[:3].tolist())
    q, db, tr = split.part("queries"), split.part("database"), split.part("train")
    assert len(q) == 12 and len(tr) == 15 and not np.intersect1d(q, db).size and np.isin(tr, db).all()
    eligible = np.flatnonzero(fx["labels"][:, cols].any(1))
    assert np.array_equal(np.union1d(q, db), eligible)
    check_split(split, 80)


def test_nuswide_missing_images_fail_unless_allowed(tmp_path, http):
    fx, files = nus_files(tmp_path, http)
    (fx["images"] / fx["ids"][3]).unlink()
    opts = {"images": str(fx["images"])}
    ds = NusWideImages(name="nus-wide", kind="images", relevance="multilabel", description="", homepage="",
                       license="", files=files, expected_images=80, expected_concepts=6, options=opts)
    with pytest.raises(PseudosupError, match=r"1 of 80 listed images are not in.*allow_missing"):
        fetch(ds, tmp_path)
    assert not (tmp_path / "raw").exists()
    ds.options = {**opts, "allow_missing": True}
    raw = fetch(ds, tmp_path)
    assert ds.missing(raw).tolist() == [3]
    with pytest.raises(PseudosupError, match="no member"):
        ds.image_source(raw)[3]
    split = nuswide_protocol("nuswide21-q2100", (ds, raw), 0, top=3, per_query=4, per_train=5)
    assert 3 not in split.part("queries") and 3 not in split.part("database")
    assert split.extra["items_left_out_missing_images"] == int(fx["labels"][3, split.extra["label_columns"]].any())


def test_nuswide_lowlevel_from_mirror_members_and_rar_without_tool(tmp_path, http, monkeypatch):
    fx, files = nus_files(tmp_path, http)
    rar = dataclasses.replace(LOWLEVEL_RAR, urls=(http.add(LOWLEVEL_RAR.name, b"Rar!\x1a\x07\x00" + b"\0" * 100),))
    ds = NusWideLowLevel(name="nus-wide-lowlevel", kind="vectors", relevance="multilabel", description="",
                         homepage="", license="", files=files + (rar,), expected_images=80, expected_concepts=6)
    monkeypatch.setenv("PATH", "/nonexistent")  # no bsdtar: a clear instruction, nothing half-made
    with pytest.raises(PseudosupError, match="needs bsdtar.*Normalized_CH.dat.*mirror"):
        fetch(ds, tmp_path)
    assert not (tmp_path / "raw").exists()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for key in fx["dats"]:
        (mirror / f"Normalized_{key}.dat").write_bytes((tmp_path / f"Normalized_{key}.dat").read_bytes())
    raw = tmp_path / "raw"
    fetch_dataset(ds, raw, tmp_path / "cache", mirror=mirror, **FAST)
    v = ds.vectors(raw)
    assert v.shape == (80, 634) and v.dtype == np.float32
    blocks = ds.feature_blocks(raw)
    for key, m in fx["dats"].items():
        a, b = blocks[key]
        assert np.allclose(v[:, a:b], m, atol=1e-6)
    assert not list(raw.glob("*.dat"))


def test_per_label_sample_draws_distinct_items_per_label():
    rng = np.random.default_rng(0)
    mh = (rng.random((300, 4)) < 0.5).astype(np.uint8)
    pick = per_label_sample(mh, np.arange(300), 10, rng)
    assert len(pick) == 40 == len(np.unique(pick))
    with pytest.raises(PseudosupError, match="fewer than"):
        per_label_sample(mh, np.arange(30), 20, rng)


def make_folder(root, classes=("cat", "dog"), n=3):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            (root / c / f"{i}.jpg").write_bytes(jpeg(hash((c, i)) % 1000))
    return root


def test_user_image_folder_from_class_subfolders(tmp_path):
    src = make_folder(tmp_path / "imgs")
    ds = registry.get("folder-pets")
    ds.options = {"images": str(src)}
    raw = fetch(ds, tmp_path)
    m = __import__("json").loads((raw / "MANIFEST.json").read_text())
    assert m["images"]["items"] == 6 and m["images"]["classes"] == ["cat", "dog"]
    ds2 = registry.get("folder-pets")  # downstream stages: no options, everything from raw
    assert ds2.labels(raw).tolist() == [0, 0, 0, 1, 1, 1]
    assert ds2.image_source(raw).ids[3] == "dog/0.jpg"
    assert ds2.images(raw).shape == (6, 24, 32, 3)
    first = (raw / "images.tar").read_bytes()
    fetch_dataset(ds, tmp_path / "again", tmp_path / "cache")
    assert (tmp_path / "again" / "images.tar").read_bytes() == first  # deterministic: same DVC hash


def test_user_image_folder_from_list_file_and_bad_inputs(tmp_path):
    src = make_folder(tmp_path / "imgs")
    (tmp_path / "list.txt").write_text("cat/0.jpg 7\ndog/2.jpg 3\ncat/1.jpg 7\n")
    ds = registry.get("folder-listed")
    ds.options = {"images": str(src), "list": str(tmp_path / "list.txt")}
    raw = fetch(ds, tmp_path)
    ds2 = registry.get("folder-listed")
    assert ds2.image_source(raw).ids == ["cat/0.jpg", "cat/1.jpg", "dog/2.jpg"]
    assert ds2.labels(raw).tolist() == [7, 7, 3] and ds2.class_names(raw) == ("3", "7")
    (tmp_path / "bad.txt").write_text("cat/0.jpg 1\n../../etc/passwd 2\n")
    ds.options = {"images": str(src), "list": str(tmp_path / "bad.txt")}
    with pytest.raises(PseudosupError, match="escape"):
        fetch_dataset(ds, tmp_path / "raw2", tmp_path / "cache")
    (src / "loose.jpg").write_bytes(jpeg(1))
    ds.options = {"images": str(src)}
    with pytest.raises(PseudosupError, match="loose.jpg' is not inside a class folder"):
        fetch_dataset(ds, tmp_path / "raw3", tmp_path / "cache")
    assert not (tmp_path / "raw2").exists() and not (tmp_path / "raw3").exists()
    ds.options = {}
    assert not ds.available()[0] and "datasets.folder-listed.images" in ds.available()[1]


def test_user_image_folder_from_a_tar(tmp_path):
    src = make_folder(tmp_path / "imgs")
    with tarfile.open(tmp_path / "imgs.tar.gz", "w:gz") as tf:
        tf.add(src / "cat", arcname="cat")
        tf.add(src / "dog", arcname="dog")
    ds = user_folder("folder-tar")
    ds.options = {"images": str(tmp_path / "imgs.tar.gz")}
    raw = fetch(ds, tmp_path)
    assert registry.get("folder-tar").labels(raw).tolist() == [0, 0, 0, 1, 1, 1]


def test_unreadable_image_names_the_member(tmp_path):
    src = make_folder(tmp_path / "imgs", n=1)
    (src / "cat" / "0.jpg").write_bytes(b"not a jpeg")
    ds = registry.get("folder-bad")
    ds.options = {"images": str(src)}
    raw = fetch(ds, tmp_path)
    with pytest.raises(PseudosupError, match=r"images.tar:cat/0.jpg: not a readable image"):
        registry.get("folder-bad").image_source(raw)[0]


def test_grey_and_rgba_images_are_decoded_to_grey_or_rgb():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(buf, "PNG")
    assert decode_image(buf.getvalue(), "g").shape == (4, 5)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 5, 4), np.uint8)).save(buf, "PNG")
    assert decode_image(buf.getvalue(), "a").shape == (4, 5, 3)


def test_unknown_dataset_and_helpful_errors():
    with pytest.raises(PseudosupError, match="unknown dataset 'cifar-99'.*folder-"):
        registry.get("cifar-99")
    with pytest.raises(PseudosupError, match="holds vectors, not images"):
        registry.get("sift-1m").images("/nowhere")
    with pytest.raises(PseudosupError, match="holds images, not vectors"):
        registry.get("oxford5k").vectors("/nowhere")


def test_every_registry_entry_is_complete():
    """URLs (or a local source), a digest or a documented reason plus a format check."""
    for name in registry.names():
        ds = registry.get(name)
        assert ds.relevance in registry.RELEVANCE and ds.kind in ("images", "vectors") and ds.description
        for f in ds.files:
            assert f.urls or ds.shared is not None or ds.notes, (name, f.name)
            if not f.digests and not f.content_sha256:
                assert f.check and f.checksum_note, (name, f.name)
            for algo, digest in f.digests.items():
                assert len(digest) == {"md5": 32, "sha256": 64, "sha512": 128}[algo], (name, f.name)
            assert all(u.split(":")[0] in ("http", "https", "ftp") for u in f.urls), (name, f.name)


def test_check_split_catches_bad_indices():
    from pseudosup.data.splits import Split
    ok = {"queries": np.array([5, 6]), "database": np.arange(5)}
    check_split(Split("s", "d", "", "class", 0, ok), 7)
    for parts, msg in (({**ok, "queries": np.array([5, 9])}, "outside the 7 items"),
                       ({**ok, "queries": np.array([6, 5, 6])}, "lists an item twice"),
                       ({**ok, "queries": np.array([4, 5])}, "overlap")):
        with pytest.raises(PseudosupError, match=msg):
            check_split(Split("s", "d", "", "class", 0, parts), 7)
    check_split(Split("s", "d", "", "instance", 0, {**ok, "queries": np.array([4])}, {"queries_in_database": True}), 7)
