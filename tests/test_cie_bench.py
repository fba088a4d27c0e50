"""The Copydays-style synthetic-variant benchmark: reproducible bytes, provenance,
ground truths by their definitions, genuine multi-view groups from the real Oxford5k
ground truth, attacks, bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from pseudosup.data import instance_bench as B
from pseudosup.io import PseudosupError

from .conftest import SHARED

SMALL = B.BenchSettings(variants=2, max_side=128, distractors=3, distractor_side=48)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    if not SHARED.is_dir():
        pytest.skip(f"real data not found at {SHARED}")
    out = tmp_path_factory.mktemp("bench") / B.NAME
    B.build(SHARED, out, SMALL, "test")
    return out


@pytest.mark.shared_data
def test_build_is_byte_identical_and_verifiable(bench, tmp_path):
    again = tmp_path / "again"
    B.build(SHARED, again, SMALL, "test")
    for name in (B.ARCHIVE, B.MANIFEST):
        assert (bench / name).read_bytes() == (again / name).read_bytes()
    src = B.BenchImages(bench, verify=True)
    items = B.read_manifest(bench)["items"]
    assert len(src) == 37 * 3 + 3 and src.ids == [it["id"] for it in items]
    for i in (0, 1, len(src) - 1):
        img = src[i]
        assert img.dtype == np.uint8 and img.shape == (items[i]["height"], items[i]["width"], 3)
    data = (bench / B.ARCHIVE).read_bytes()
    it = items[5]
    assert hashlib.sha256(data[it["offset"]:it["offset"] + it["size"]]).hexdigest() == it["sha256"]


@pytest.mark.shared_data
def test_provenance_and_licences(bench):
    m = B.read_manifest(bench)
    assert "not INRIA Copydays" in m["description"] or "Copydays-style" in m["description"]
    assert all(s["origin"] and s["licence"] for s in m["sources"])
    origins = {s["id"]: s["origin"] for s in m["sources"]}
    assert sum(o.startswith("../shared/data/oxford5k/jpg/") for o in origins.values()) == 10
    assert sum(o.startswith("../shared/data/coral/") for o in origins.values()) == 8
    assert sum("cifar10-test-jpg.tar" in o for o in origins.values()) == 3
    assert all(it["ops"] for it in m["items"] if it["kind"] == "variant")


@pytest.mark.shared_data
def test_multiview_groups_come_from_the_real_oxford_ground_truth(bench):
    """bodleian_000132 and oxford_002904 are positives of the Radcliffe Camera queries in
    gnd_oxford5k.pkl: they must share the Radcliffe Camera's instance, not their file names'."""
    items = B.read_manifest(bench)["items"]
    inst = {it["source"]: it["instance"] for it in items if it["kind"] == "original"}
    rad = {s for s, i in inst.items() if i == "oxford-radcliffe_camera"}
    assert rad == {"oxford-radcliffe_camera_000095", "oxford-radcliffe_camera_000519",
                   "oxford-radcliffe_camera_000523", "oxford-bodleian_000132", "oxford-oxford_002904"}
    assert sum(i == "oxford-pitt_rivers" for i in inst.values()) == 5
    assert sum(i == "skimage-motorcycle" for i in inst.values()) == 2


@pytest.mark.shared_data
def test_ground_truths_by_definition(bench):
    items = B.read_manifest(bench)["items"]
    src = np.array([it["source"] for it in items])
    inst = np.array([it["instance"] for it in items])
    kind = np.array([it["kind"] for it in items])
    v = B.groundtruth(bench, "variants")
    assert len(v.queries) == 37 and all(kind[q] == "original" for q in v.queries)
    for q, ok, junk in zip(v.queries, v.ok, v.junk):
        assert set(ok) == set(np.flatnonzero((src == src[q]) & (kind == "variant")))
        assert q in junk and set(junk) - {q} == set(np.flatnonzero((inst == inst[q]) & (src != src[q])))
    mv = B.groundtruth(bench, "multiview")
    assert len(mv.queries) == 12  # 5 Pitt Rivers + 5 Radcliffe Camera + 2 stereo views
    for q, ok, junk in zip(mv.queries, mv.ok, mv.junk):
        assert set(ok) == set(np.flatnonzero((inst == inst[q]) & (src != src[q])))
        assert set(junk) == set(np.flatnonzero(src == src[q]))
    labels = B.instance_labels(bench)
    assert len(np.unique(labels[kind == "distractor"])) == 3  # each distractor its own instance
    with pytest.raises(PseudosupError, match="not one of"):
        B.groundtruth(bench, "holidays")


def test_every_attack_is_seeded_and_keeps_an_image():
    rng_img = np.random.default_rng(0).integers(0, 256, (90, 120, 3)).astype(np.uint8)
    for kind in B.ATTACKS:
        a, pa = B.attack(rng_img, kind, np.random.default_rng(1))
        b, pb = B.attack(rng_img, kind, np.random.default_rng(1))
        assert np.array_equal(a, b) and pa == pb and pa["op"] == kind
        assert a.dtype == np.uint8 and a.ndim == 3 and min(a.shape[:2]) >= 16
    img, ops = B.strong_variant(rng_img, 3, np.random.default_rng(2))
    assert len(ops) == 3 and B.ATTACKS[3] in [o["op"] for o in ops]
    with pytest.raises(PseudosupError, match="unknown attack"):
        B.attack(rng_img, "paint", np.random.default_rng(0))


def test_missing_shared_data_and_damaged_files_are_clear_errors(tmp_path):
    with pytest.raises(PseudosupError, match="never downloaded or faked"):
        B.build(tmp_path / "nowhere", tmp_path / "out", SMALL)
    assert not (tmp_path / "out").exists()
    with pytest.raises(PseudosupError, match="build the benchmark"):
        B.read_manifest(tmp_path)
    with pytest.raises(PseudosupError, match="variants"):
        B.BenchSettings(variants=0)


@pytest.mark.shared_data
def test_truncated_archive_is_detected(bench, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bench, copy)
    data = (copy / B.ARCHIVE).read_bytes()
    (copy / B.ARCHIVE).write_bytes(data[: len(data) // 2])
    with pytest.raises(PseudosupError, match="truncated"):
        B.BenchImages(copy)
    manifest = json.loads((copy / B.MANIFEST).read_text())
    assert manifest["name"] == B.NAME
