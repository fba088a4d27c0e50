"""Loaders and committed splits on the real files in ../shared/data (skipped with a
reason when absent), the layout-defined splits, and the clear refusal when the
real data is missing."""

from __future__ import annotations

import json
import shutil

import faiss
import numpy as np
import pytest

from pseudosup.data import registry
from pseudosup.data.splits import PROTOCOL_INFO, check_split, draw_split, load_split, read_sums

from .conftest import ROOT, SHARED, run_cli

SPLITS = ROOT / "data" / "splits"


@pytest.fixture(scope="module")
def real_raw(tmp_path_factory):
    """Raw directories of the local-only datasets, made by the download stage."""
    if not SHARED.is_dir():
        pytest.skip(f"real data not found at {SHARED}")
    base = tmp_path_factory.mktemp("real")
    out = {}
    for name in ("cifar10-test-jpg", "sift-real-small"):
        run_cli("download", "--params", str(ROOT / "params.yaml"), "--keys", "paths", "--dataset", name,
                "--out", str(base / name), "--cache", str(base / "cache" / name),
                env={"PSEUDOSUP_SHARED_DATA": str(SHARED)})
        out[name] = base / name
    for name, f in (("oxford5k", "gnd_oxford5k.pkl"), ("paris6k", "gnd_paris6k.pkl")):
        (base / name).mkdir()
        shutil.copy(SHARED / "oxford5k" / f, base / name / f)
        out[name] = base / name
    return out


@pytest.mark.shared_data
def test_cifar10_test_jpg_real(real_raw):
    ds, raw = registry.get("cifar10-test-jpg"), real_raw["cifar10-test-jpg"]
    assert ds.num_items(raw) == 10_000 and ds.class_names(raw) == ds.classes
    assert np.array_equal(np.bincount(ds.labels(raw)), [1000] * 10)
    src = ds.image_source(raw)
    assert src.ids[0] == "test/airplane/0000.jpg" and src.ids[-1].startswith("test/truck/")
    images = ds.images(raw)
    assert images.shape == (10_000, 32, 32, 3) and images.dtype == np.uint8
    # per-channel mean of the JPEG copies, as the data README states (published test mean)
    assert np.allclose(images.reshape(-1, 3).mean(0), [125.99, 123.69, 114.85], atol=0.01)
    manifest = json.loads((raw / "MANIFEST.json").read_text())
    assert manifest["files"]["cifar10-test-jpg.tar"]["verified"] == "sha256"


@pytest.mark.shared_data
def test_sift_real_small_ground_truth_is_exact(real_raw):
    ds, raw = registry.get("sift-real-small"), real_raw["sift-real-small"]
    v = ds.vectors(raw)
    assert v.shape == (48_646, 128) and ds.parts(raw) == {"base": (0, 47_646), "query": (47_646, 48_646)}
    base, query = v[:47_646], v[47_646:]
    assert np.array_equal(base, np.round(base)) and base.min() >= 0 and base.max() <= 255
    gt = ds.groundtruth(raw)
    assert gt.shape == (1000, 100) and gt.dtype == np.int64
    index = faiss.IndexFlatL2(128)
    index.add(base)
    dist, _ = index.search(query, 100)
    # the file's neighbours are at exactly the brute-force distances (ties may swap ids)
    mine = ((query[:50, None, :] - base[gt[:50]]) ** 2).sum(-1)
    assert np.allclose(mine, dist[:50], rtol=1e-5)


@pytest.mark.shared_data
def test_oxford_and_paris_real_ground_truth(real_raw):
    for name, n in (("oxford5k", 5063), ("paris6k", 6392)):
        ds, raw = registry.get(name), real_raw[name]
        gt = ds.groundtruth(raw)
        assert ds.num_items(raw) == n + 55 and len(gt) == 55 and gt.boxes.shape == (55, 4)
        assert all(len(o) for o in gt.ok) and all(o.max() < n for o in gt.ok)
        assert all(not np.intersect1d(o, j).size for o, j in zip(gt.ok, gt.junk))
        boxes = gt.boxes
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


@pytest.mark.shared_data
def test_oxford_real_images_and_query_crops(real_raw, tmp_path):
    """The 10 real Oxford images (all of them queries) read through the loader."""
    raw = tmp_path / "oxford5k"
    raw.mkdir()
    shutil.copy(real_raw["oxford5k"] / "gnd_oxford5k.pkl", raw)
    shutil.copytree(SHARED / "oxford5k" / "jpg", raw / "jpg")
    ds = registry.get("oxford5k")
    ds.image_dirs = ("jpg",)
    with pytest.raises(Exception, match="5053 ground-truth images are not in the raw archives"):
        ds.image_source(raw)
    src = ds.image_source(raw, allow_missing=True)
    full = ds.image_source(raw, crop_queries=False, allow_missing=True)
    g = ds.gnd(raw)
    j = g["qimlist"].index("pitt_rivers_000033")
    db = g["imlist"].index("pitt_rivers_000033")
    img, q, qfull = src[db], src[5063 + j], full[5063 + j]
    assert np.array_equal(img, qfull) and img.ndim == 3
    x1, y1, x2, y2 = (int(round(v)) for v in g["gnd"][j]["bbx"])
    assert q.shape == (min(y2, img.shape[0]) - y1, min(x2, img.shape[1]) - x1, 3)
    assert np.array_equal(q, img[y1:y2, x1:x2])


@pytest.mark.shared_data
@pytest.mark.parametrize("name,raw_key", [("cifar10-test-q1k", "cifar10-test-jpg"), ("oxford5k-55q", "oxford5k"),
                                          ("paris6k-55q", "paris6k")])
def test_committed_splits_redraw_identically_from_real_data(name, raw_key, real_raw):
    path = SPLITS / f"{name}.json"
    split = load_split(path)
    assert draw_split(name, real_raw[raw_key], split.seed).to_json() == path.read_text()


@pytest.mark.shared_data
def test_cifar10_test_q1k_definition(real_raw):
    split = load_split(SPLITS / "cifar10-test-q1k.json")
    labels = registry.get("cifar10-test-jpg").labels(real_raw["cifar10-test-jpg"])
    q, db, tr = split.part("queries"), split.part("database"), split.part("train")
    assert np.array_equal(np.bincount(labels[q]), [100] * 10)
    assert np.array_equal(np.bincount(labels[tr]), [500] * 10)
    assert np.array_equal(np.union1d(q, db), np.arange(10_000)) and not np.intersect1d(q, db).size
    assert np.isin(tr, db).all()


@pytest.mark.parametrize("name", ["sift-real-small-k100", "sift1m-k100", "sift1m-ldph-k100", "gist1m-k100",
                                  "gist1m-ldph-k100",
                                  "ukbench-all"])
def test_layout_splits_redraw_identically(name):
    path = SPLITS / f"{name}.json"
    split = load_split(path)
    assert PROTOCOL_INFO[name]["needs"] == "layout"
    assert draw_split(name, None, split.seed).to_json() == path.read_text()


def test_every_committed_split_is_listed_verified_and_within_its_dataset():
    sums = read_sums(SPLITS)
    assert sorted(sums) == sorted(p.name for p in SPLITS.glob("*.json"))
    sizes = {"sift-real-small": 48_646, "sift-1m": 1_110_000, "gist-1m": 1_501_000, "ukbench": 10_200,
             "cifar10-test-jpg": 10_000, "oxford5k": 5063 + 55, "paris6k": 6392 + 55, "fashion-mnist": 70_000,
             "scene": 2_407, "cifar10-mosaic2x2": 5_500}
    for name in sums:
        split = load_split(SPLITS / name)
        assert split.name == name[:-5] and split.name in PROTOCOL_INFO
        assert split.dataset == PROTOCOL_INFO[split.name]["dataset"]
        assert split.relevance == registry.get(split.dataset).relevance
        check_split(split, sizes[split.dataset])


def test_texmex_split_ranges():
    s = load_split(SPLITS / "sift1m-ldph-k100.json")
    assert s.part("database")[[0, -1]].tolist() == [0, 999_999]
    assert s.part("queries")[[0, -1]].tolist() == [1_000_000, 1_009_999]
    assert s.part("train")[[0, -1]].tolist() == [0, 19_999] and s.extra["top_k"] == 100
    g = load_split(SPLITS / "gist1m-k100.json")
    assert g.part("train")[[0, -1]].tolist() == [1_001_000, 1_500_999]
    gl = load_split(SPLITS / "gist1m-ldph-k100.json")
    assert gl.part("train")[[0, -1]].tolist() == [0, 19_999] and gl.part("queries")[0] == 1_000_000


def test_missing_real_data_is_reported_never_faked(tmp_path, monkeypatch):
    monkeypatch.setenv("PSEUDOSUP_SHARED_DATA", str(tmp_path / "absent"))
    ok, why = registry.get("sift-real-small").available()
    assert not ok and "absent" in why and "never downloaded or faked" in why
    env = {"PSEUDOSUP_SHARED_DATA": str(tmp_path / "absent")}
    proc = run_cli("download", "--params", str(ROOT / "params.yaml"), "--keys", "paths", "--dataset",
                   "cifar10-test-jpg", "--out", str(tmp_path / "raw"), "--cache", str(tmp_path / "c"),
                   check=False, env=env)
    assert proc.returncode == 2 and "absent" in proc.stderr and not (tmp_path / "raw").exists()
    proc = run_cli("datasets", "--params", str(ROOT / "params.yaml"), "--keys", "paths", "--check",
                   "sift-real-small", "cifar10-test-jpg", check=False, env=env)
    assert proc.returncode == 3 and proc.stdout.count("NOT available") == 2


def test_make_split_needs_raw_for_data_protocols(tmp_path):
    proc = run_cli("make-split", "--protocol", "cifar10-q1k", "--out-dir", str(tmp_path), check=False)
    assert proc.returncode == 2 and "--raw data/raw/cifar-10" in proc.stderr
    proc = run_cli("make-split", "--list")
    assert "nuswide21-q2100" in proc.stdout and "holidays-500q" in proc.stdout


@pytest.mark.shared_data
def test_mosaic_parts_follow_the_protocol_output(real_raw, monkeypatch):
    """The registered parts of cifar10-mosaic2x2 come from mosaic_protocol's arrays, so a
    change of protocol sizes cannot leave the parts pointing at the wrong items."""
    from pseudosup.data import mosaics
    from pseudosup.data.multilabel import CifarMosaic

    raw = real_raw["cifar10-test-jpg"]
    original = mosaics.mosaic_protocol
    monkeypatch.setattr(mosaics, "mosaic_protocol",
                        lambda images, labels, seed=0: original(images, labels, seed, n_database=40, n_queries=7,
                                                                query_per_class=2))
    ds = CifarMosaic(name="mosaic-test", kind="images", relevance="multilabel", description="test",
                     homepage="", license="")
    ref = original(registry.get("cifar10-test-jpg").images(raw), registry.get("cifar10-test-jpg").labels(raw), 0,
                   n_database=40, n_queries=7, query_per_class=2)
    assert ds.parts(raw) == {"database": (0, 40), "queries": (40, 47)}
    assert np.array_equal(ds.images(raw)[40:], ref["query_images"])
    assert np.array_equal(ds.labels(raw)[:40], ref["db_labels"])
