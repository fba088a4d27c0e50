"""Every bad input the issue lists, through every image extractor and the CLI stages:
unreadable and truncated files, grey / CMYK / 16-bit / RGBA images, images too small
for the network, images without keypoints, a reader that raises. Each is converted or
skipped *and recorded*; outputs never hold NaN; failed stages leave no output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pseudosup.features import extractors, gist
from pseudosup.features.images import (
    BadImage,
    Fetcher,
    FileImages,
    read_image,
    read_image_with_note,
    to_layout,
    to_uint8,
)

ROOT = Path(__file__).resolve().parent.parent


def _photo(rng, h=48, w=64):
    """A smooth random colour image (SIFT finds keypoints on it)."""
    import cv2

    small = (rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good and bad image files; name -> path."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    out = {}
    for i in range(8):
        out[f"good{i}"] = d / f"good{i}.png"
        Image.fromarray(_photo(rng)).save(out[f"good{i}"])
    Image.fromarray(_photo(rng)).save(d / "full.jpg", quality=95)
    out["truncated"] = d / "truncated.jpg"
    out["truncated"].write_bytes((d / "full.jpg").read_bytes()[:600])
    out["garbage"] = d / "garbage.jpg"
    out["garbage"].write_bytes(b"this is not an image at all" * 10)
    out["grey"] = d / "grey.png"
    Image.fromarray(_photo(rng)[:, :, 0]).save(out["grey"])
    out["cmyk"] = d / "cmyk.jpg"
    Image.fromarray(_photo(rng)).convert("CMYK").save(out["cmyk"], quality=95)
    out["16bit"] = d / "16bit.png"
    Image.fromarray((_photo(rng)[:, :, 1].astype(np.uint16) * 257)).save(out["16bit"])
    out["rgba"] = d / "rgba.png"
    Image.fromarray(np.dstack([_photo(rng), np.full((48, 64), 128, np.uint8)]), "RGBA").save(out["rgba"])
    out["tiny"] = d / "tiny.png"
    Image.fromarray(_photo(rng)[:3, :2]).save(out["tiny"])
    out["blank"] = d / "blank.png"
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(out["blank"])
    out["missing"] = d / "missing.png"
    return out


def test_readers_convert_or_refuse(files):
    with pytest.raises(BadImage, match="truncated"):
        read_image(files["truncated"])
    with pytest.raises(BadImage, match="unreadable"):
        read_image(files["garbage"])
    with pytest.raises(BadImage, match="not found"):
        read_image(files["missing"])
    cmyk = read_image(files["cmyk"])
    assert cmyk.shape == (48, 64, 3) and cmyk.dtype == np.uint8
    # files are decoded to uint8 by the reader itself, saying what it did (the 16-bit file is v * 257)
    sixteen, note = read_image_with_note(files["16bit"])
    assert sixteen.dtype == np.uint8 and "mode I;16" in note and sixteen.max() > 100
    u8, note = to_uint8(np.asarray(Image.open(files["16bit"]), dtype=np.uint16))  # a 16-bit array source
    assert u8.dtype == np.uint8 and "16-bit" in note and np.array_equal(u8, sixteen)
    rgb, note = read_image_with_note(files["rgba"])
    assert rgb.shape == (48, 64, 3) and "alpha" in note
    rgb, note = to_layout(np.asarray(Image.open(files["rgba"])), colour=True)  # an RGBA array source
    assert rgb.shape == (48, 64, 3) and "alpha" in note
    grey, _ = to_layout(read_image(files["grey"]), colour=True)
    assert grey.shape == (48, 64, 3) and (grey[:, :, 0] == grey[:, :, 2]).all()
    with pytest.raises(BadImage, match="non-finite"):
        to_uint8(np.array([[0.1, np.nan]]))
    f, note = to_uint8(np.array([[0.0, 0.5, 1.0]]))
    assert f.tolist() == [[0, 128, 255]]


class Mixed:
    """An image source mixing files, arrays and a reader that raises."""

    def __init__(self, files):
        self.items = [files[k] for k in ("good0", "good1", "good2", "good3", "truncated", "garbage", "grey", "cmyk",
                                         "16bit", "rgba", "tiny", "blank", "missing")]
        self.items += [np.full((5, 5), np.nan), "RAISE", np.zeros((0, 4, 3), np.uint8), files["good4"]]
        self.ids = [Path(p).stem if isinstance(p, Path) else f"array{i}" for i, p in enumerate(self.items)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        if isinstance(self.items[i], str):
            raise RuntimeError("reader failed on this item")
        return self.items[i]


SKIPPED = {"truncated", "garbage", "missing", "array13", "array14", "array15"}


def _check(X, report, mixed, zero_expected=()):
    assert np.isfinite(X).all() and X.dtype == np.float32 and len(X) == len(mixed)
    skipped = {r["id"] for r in report["skipped"]}
    assert skipped == SKIPPED, report["skipped"]
    reasons = {r["id"]: r["reason"] for r in report["skipped"]}
    assert "truncated" in reasons["truncated"] and "RuntimeError" in reasons["array14"]
    for i, name in enumerate(mixed.ids):
        if name in SKIPPED or name in zero_expected:
            assert not X[i].any(), name  # skipped -> zero row
        else:
            assert X[i].any(), name
    converted = {r["id"] for r in report["converted"]}
    assert {"16bit", "rgba"} <= converted


def test_gist_handles_every_bad_input(files):
    mixed = Mixed(files)
    X, report = gist.extract(mixed, image_size=32, ids=mixed.ids)
    _check(X, report, mixed, zero_expected={"blank"})  # constant image: zero GIST, not NaN


def test_cnn_handles_every_bad_input(files):
    mixed = Mixed(files)
    cfg = {"extractor": "cnn", "backbone": "mobilenet_v3_small", "weights": "random", "pooling": "gem",
           "gem_p": 3.0, "rmac_levels": 3, "image_size": 64, "resize": "max_side", "min_side": 32,
           "scales": [1.0], "batch_size": 4, "workers": 0, "whitening": None}
    r = extractors.extract(cfg, mixed)
    _check(r.dense, r.meta, mixed)
    conv = {c["id"]: c["reason"] for c in r.meta["converted"]}
    assert "upscaled" in conv["tiny"] and "grey->RGB" in conv["grey"]


def test_sift_bow_handles_every_bad_input_and_counts_zero_keypoints(files):
    mixed = Mixed(files)
    cfg = {"extractor": "sift-bow",
           "sift": {"max_side": 1024, "max_keypoints": 300, "root": True, "contrast_threshold": 0.01,
                    "edge_threshold": 10, "dense": None},
           "vocabulary": {"size": 8, "max_descriptors": 100000, "iterations": 5, "assign": "exact", "assign_k": 1},
           "dense_dim": 4, "whiten": True}
    fitted = extractors.fit(cfg, mixed, np.arange(len(mixed)), seed=0)
    assert fitted[0]["skipped_in_sample"] == len(SKIPPED)
    r = extractors.extract(cfg, mixed, fitted)
    zero = {z["id"] for z in r.meta["zero_keypoints"]}
    assert "blank" in zero and "tiny" in zero
    _check(r.dense, r.meta, mixed, zero_expected=zero)
    counts, idf = r.bow
    assert counts.shape == (len(mixed), 8) and np.isfinite(idf).all()
    assert all(counts.getrow(i).nnz == 0 for i, n in enumerate(mixed.ids) if n in SKIPPED | zero)


def test_fetcher_records_and_extractor_needs_its_fit(files):
    f = Fetcher(FileImages([files["good0"], files["garbage"]]), colour=False)
    assert f.get(0).ndim == 2 and f.get(1) is None
    assert f.report(["a", "b"])["skipped"][0]["id"] == "b"
    from pseudosup.io import PseudosupError
    with pytest.raises(PseudosupError, match="fit-features"):
        extractors.extract({"extractor": "sift-bow"}, [])


# --- the CLI stages --------------------------------------------------------------------------------

PARAMS = """
seed: 0
targets: []
features:
  gist512: {extractor: gist}
  bow: {extractor: sift-bow, sift: {max_keypoints: 300, contrast_threshold: 0.01},
        vocabulary: {size: 8, sample_images: 10, iterations: 5}, dense_dim: 4}
  cnnw: {extractor: cnn, backbone: mobilenet_v3_small, weights: random, image_size: 64, resize: max_side,
         batch_size: 4, whitening: {dim: 4, sample_images: 12}}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, files):
    """A params file with its schema, and a registered dataset of the mixed files."""
    from pseudosup.data import registry

    d = tmp_path_factory.mktemp("proj")
    (d / "workflow" / "schemas").mkdir(parents=True)
    shutil.copy(ROOT / "workflow" / "schemas" / "params.schema.yaml", d / "workflow" / "schemas")
    (d / "params.yaml").write_text(PARAMS)

    class MixedDataset(registry.Dataset):
        def image_source(self, raw):
            return Mixed(files)

    registry.register("features-test-mixed")(lambda: MixedDataset(
        name="features-test-mixed", kind="images", description="test", homepage="-", license="-"))
    return d


def _run(project, stage, feature, *extra):
    from pseudosup.cli import main

    return main([stage, "--params", str(project / "params.yaml"), "--keys", "seed", f"features.{feature}",
                 "--dataset", "features-test-mixed", "--raw", str(project), "--feature", feature, *extra])


def test_stages_write_features_sidecars_and_sparse_bow(project, capsys):
    out = project / "out"
    assert _run(project, "features", "gist512", "--out", str(out / "gist512.npy")) == 0
    X = np.load(out / "gist512.npy")
    meta = json.loads((out / "gist512.json").read_text())
    assert X.shape == (17, 512) and np.isfinite(X).all()
    assert meta["extractor"] == "gist" and len(meta["skipped"]) == len(SKIPPED) and meta["code_version"]

    # sift-bow: fit on a sample, then describe everything; without the fit it refuses
    assert _run(project, "features", "bow", "--out", str(out / "bow.npy")) == 2
    assert "fit-features" in capsys.readouterr().err and not (out / "bow.npy").exists()
    assert _run(project, "fit-features", "bow", "--out", str(out / "bow.fit.npz")) == 0
    assert _run(project, "features", "bow", "--fitted", str(out / "bow.fit.npz"), "--out", str(out / "bow.npy")) == 0
    from pseudosup.features.bow import load_bow
    G, counts, idf, bmeta = load_bow(out / "bow.bow.npz")
    meta = json.loads((out / "bow.json").read_text())
    assert G.shape == (17, 8) and meta["bow"].endswith("bow.bow.npz") and meta["n_zero_keypoints"] >= 1
    assert np.load(out / "bow.npy").shape == (17, 4) and bmeta["feature"] == "bow"

    # cnn with whitening
    assert _run(project, "fit-features", "cnnw", "--out", str(out / "cnnw.fit.npz")) == 0
    assert _run(project, "features", "cnnw", "--fitted", str(out / "cnnw.fit.npz"), "--out", str(out / "cnnw.npy")) == 0
    Xc = np.load(out / "cnnw.npy")
    assert Xc.shape == (17, 4) and np.isfinite(Xc).all()
    assert json.loads((out / "cnnw.json").read_text())["weights_source"]["weights"] == "random"

    # a fitted model of another feature is refused, and nothing is written
    assert _run(project, "features", "cnnw", "--fitted", str(out / "bow.fit.npz"), "--out", str(out / "x.npy")) == 2
    assert "fitted with other params" in capsys.readouterr().err and not (out / "x.npy").exists()
    # gist has nothing to fit
    assert _run(project, "fit-features", "gist512", "--out", str(out / "g.npz")) == 2
    assert not (out / "g.npz").exists()


def test_reader_errors_are_skips_but_a_dataset_of_only_skips_is_an_error(files):
    from pseudosup.io import PseudosupError

    class Reader:
        """Like the dataset readers: PseudosupError for an unreadable member."""

        def __init__(self, bad):
            self.bad = bad

        def __len__(self):
            return 3

        def __getitem__(self, i):
            if i in self.bad:
                raise PseudosupError(f"archive.tar:img{i}.jpg: not a readable image")
            return read_image(files["good0"])

    X, report = gist.extract(Reader({1}), ids=["a", "b", "c"])
    assert report["skipped"] == [{"index": 1, "id": "b", "reason": "archive.tar:img1.jpg: not a readable image"}]
    assert X[0].any() and not X[1].any()
    with pytest.raises(PseudosupError, match="all 3 items were skipped"):
        gist.extract(Reader({0, 1, 2}))
