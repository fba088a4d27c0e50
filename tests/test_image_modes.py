"""Every pixel mode an image file can have, decoded through the real loader path.

A real photo (../shared/data/coral/parrot.jpg) is saved by Pillow as 16-bit PNG and TIFF
(both byte orders), 32-bit integer and float TIFF, palette PNG with and without a
transparent index, grey+alpha and RGBA PNG, CMYK JPEG (with and without the Adobe APP14
marker) and TIFF, and bilevel PNG; the files are packed into a `folder-*` dataset by the
download stage and read back through `image_source` (tar members -> decode), the feature
Fetcher and the `features` CLI stage. Each decodes to the 8-bit image it was made from
(exactly where the format is lossless), and the sidecar's `converted` names each item
with its mode. Before the decoder was written, the 16-bit files came out white
(Pillow's convert('RGB') clips), the CMYK JPEG without the marker inverted, float TIFFs
black or white, alpha was dropped, and none of it was listed in `converted`.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import SHARED

pytestmark = pytest.mark.shared_data

PHOTO = SHARED / "coral" / "parrot.jpg"
ROOT = Path(__file__).resolve().parent.parent
DATASET = "folder-imagemodes"


def _white(c: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Straight alpha over white, computed in floating point."""
    a = a.astype(np.float64)[..., None] if c.ndim == 3 else a.astype(np.float64)
    return np.round(c * a / 255 + 255 * (1 - a / 255)).astype(np.uint8)


def _strip_adobe_marker(jpeg: bytes) -> bytes:
    i = jpeg.find(b"\xff\xee")
    assert i > 0 and jpeg[i + 4:i + 9] == b"Adobe"
    return jpeg[:i] + jpeg[i + 2 + int.from_bytes(jpeg[i + 2:i + 4], "big"):]


def _make_files(d):
    """Write one file per mode under d/grey/ or d/colour/ (two classes: a folder dataset
    needs two); returns name -> (mode, expected uint8 pixels, max allowed absolute difference)."""
    from PIL import Image, ImageChops

    if not PHOTO.is_file():
        pytest.skip(f"real photo not found: {PHOTO} (../shared/data/coral)")
    with Image.open(PHOTO) as im:
        photo = im.convert("RGB").reduce(4)  # 233 x 128
    rgb = np.asarray(photo)
    grey = np.asarray(photo.convert("L"))
    h, w = grey.shape
    ramp = np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))  # alpha 0 (left) .. 255 (right)
    for c in ("grey", "colour"):
        (d / c).mkdir(parents=True)
    cases = {}

    def where(name, expected):
        return d / ("grey" if expected.ndim == 2 else "colour") / name

    def save(name, image, mode, expected, tol=0, **kw):
        image.save(where(name, expected), **kw)
        with Image.open(where(name, expected)) as check:  # the file really has the mode under test
            assert check.mode == mode, (name, check.mode)
        cases[name] = (mode, expected, tol)

    save("rgb.png", photo, "RGB", rgb)
    save("grey.png", photo.convert("L"), "L", grey)
    sixteen = grey.astype(np.uint16) * 257  # 8-bit v stored as 16-bit v * 257
    save("grey16.png", Image.fromarray(sixteen), "I;16", grey)
    save("grey16.tif", Image.fromarray(sixteen), "I;16", grey)
    save("grey16b.tif", Image.frombytes("I;16B", (w, h), sixteen.astype(">u2").tobytes()), "I;16B", grey)
    save("int16.tif", Image.fromarray(sixteen.astype(np.int32)), "I", grey)
    save("int8.tif", Image.fromarray(grey.astype(np.int32)), "I", grey)
    wide = grey.astype(np.int32) * 1000 - 70000  # outside 0..65535: min-max
    lo, hi = wide.min(), wide.max()
    save("intwide.tif", Image.fromarray(wide), "I", np.round((wide - lo) * 255.0 / (hi - lo)).astype(np.uint8),
         tol=1)  # halves may round either way
    save("float01.tif", Image.fromarray(grey.astype(np.float32) / 255), "F", grey)
    fwide = grey.astype(np.float32) * 3.5 - 100  # outside [0, 1]: min-max, i.e. the grey image stretched
    flo, fhi = float(fwide.min()), float(fwide.max())
    save("floatwide.tif", Image.fromarray(fwide), "F",
         np.round((fwide.astype(np.float64) - flo) * 255 / (fhi - flo)).astype(np.uint8), tol=1)
    pal = photo.quantize(64)
    save("palette.png", pal, "P", np.asarray(pal.convert("RGB")))  # every palette colour kept
    idx = np.asarray(pal)
    t = int(np.bincount(idx.ravel()).argmax())  # the most common colour becomes transparent
    on_white = np.where((idx == t)[..., None], 255, np.asarray(pal.convert("RGB"))).astype(np.uint8)
    save("palette_t.png", pal, "P", on_white, transparency=t)
    save("la.png", Image.fromarray(np.dstack([grey, ramp]), "LA"), "LA", _white(grey, ramp))
    save("rgba.png", Image.fromarray(np.dstack([rgb, ramp]), "RGBA"), "RGBA", _white(rgb, ramp))
    cmyk = photo.convert("CMYK")
    save("cmyk_adobe.jpg", cmyk, "CMYK", rgb, tol=12, quality=95)  # Pillow writes the Adobe marker
    buf = io.BytesIO()
    ImageChops.invert(cmyk).save(buf, "JPEG", quality=95)  # stored non-inverted: Pillow inverts on write
    where("cmyk_plain.jpg", rgb).write_bytes(_strip_adobe_marker(buf.getvalue()))
    cases["cmyk_plain.jpg"] = ("CMYK", rgb, 12)
    save("cmyk.tif", cmyk, "CMYK", rgb)
    bilevel = photo.convert("1")  # dithered
    save("bilevel.png", bilevel, "1", np.where(np.asarray(bilevel), 255, 0).astype(np.uint8))
    nan = grey.astype(np.float32) / 255
    nan[5, 5] = np.nan
    Image.fromarray(nan).save(where("nan.tif", grey))
    return cases


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """(raw directory made by the download stage, cases)."""
    from pseudosup.data import registry
    from pseudosup.data.download import fetch_dataset

    d = tmp_path_factory.mktemp("modes")
    cases = _make_files(d / "src")
    ds = registry.get(DATASET)
    ds.options = {"images": str(d / "src")}
    fetch_dataset(ds, d / "raw", d / "cache")
    assert (d / "raw" / "images.tar").is_file()
    return d / "raw", cases


def _source(raw):
    from pseudosup.data import registry

    return registry.get(DATASET).image_source(raw)


def _close(got, want, tol, name):
    assert got.dtype == np.uint8 and got.shape == want.shape, (name, got.dtype, got.shape, want.shape)
    diff = np.abs(got.astype(int) - want.astype(int))
    if tol == 0:
        assert not diff.any(), f"{name}: {np.count_nonzero(diff)} pixels differ (max {diff.max()})"
    else:
        assert diff.mean() < tol / 4 and np.percentile(diff, 99) <= tol, (name, diff.mean(), diff.max())


def test_every_mode_decodes_to_its_8bit_image_through_the_archive_reader(folder):
    raw, cases = folder
    src = _source(raw)
    names = {n.rsplit("/", 1)[-1]: i for i, n in enumerate(src.names)}
    for name, (mode, want, tol) in cases.items():
        _close(src[names[name]], want, tol, f"{name} ({mode})")
    sixteen = src[names["grey16.png"]]
    assert np.mean(sixteen == 255) < 0.05  # not clipped to white
    from pseudosup.io import PseudosupError
    with pytest.raises(PseudosupError, match=r"images.tar:grey/nan.tif: not a readable image \(non-finite"):
        src[names["nan.tif"]]


@pytest.mark.parametrize("colour", [True, False])
def test_fetcher_lists_every_non_rgb_item_with_its_mode(folder, colour):
    from pseudosup.features.images import Fetcher

    raw, cases = folder
    src = _source(raw)
    f = Fetcher(src, colour=colour)
    for i, name in enumerate(src.ids):
        base = name.rsplit("/", 1)[-1]
        img = f.get(i)
        if base == "nan.tif":
            assert img is None
            continue
        mode, want, tol = cases[base]
        if colour and want.ndim == 2:
            want = np.repeat(want[..., None], 3, axis=2)
        if not colour and want.ndim == 3:
            want = np.round(want @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)  # ITU-R 601 luma
        _close(img, want, tol + (0 if colour or tol == 0 else 1), f"{base} ({mode}), colour={colour}")
    report = f.report(src.ids)
    assert [(r["id"], "non-finite" in r["reason"]) for r in report["skipped"]] == [("grey/nan.tif", True)]
    converted = {r["id"].rsplit("/", 1)[-1]: r["reason"] for r in report["converted"]}
    # 8-bit RGB is used as stored; so is 8-bit grey for a grey extractor (replicated for a colour one)
    as_is = {"rgb.png"} | (set() if colour else {"grey.png"})
    assert set(converted) == set(cases) - as_is, converted
    for name, (mode, _, _) in cases.items():
        if name in converted and mode != "L":
            assert f"mode {mode}:" in converted[name], (name, converted[name])
    assert "grey->RGB" in converted.get("grey.png", "grey->RGB")
    assert "16-bit -> 8-bit" in converted["grey16.png"] and "min-max" in converted["intwide.tif"]
    assert "min-max" in converted["floatwide.tif"] and "alpha composited on white" in converted["rgba.png"]
    assert "without Adobe APP14" in converted["cmyk_plain.jpg"] and "transparency" in converted["palette_t.png"]


def test_features_stage_sidecar_lists_the_conversions(folder, tmp_path):
    from pseudosup.cli import main

    raw, cases = folder
    (tmp_path / "workflow" / "schemas").mkdir(parents=True)
    shutil.copy(ROOT / "workflow" / "schemas" / "params.schema.yaml", tmp_path / "workflow" / "schemas")
    (tmp_path / "params.yaml").write_text("seed: 0\ntargets: []\nfeatures:\n  gist512: {extractor: gist}\n")
    out = tmp_path / "gist512.npy"
    assert main(["features", "--params", str(tmp_path / "params.yaml"), "--keys", "seed", "features.gist512",
                 "--dataset", DATASET, "--raw", str(raw), "--feature", "gist512", "--out", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    X = np.load(out)
    assert X.shape == (len(cases) + 1, 512) and np.isfinite(X).all()
    converted = {r["id"]: r["reason"] for r in meta["converted"]}
    assert meta["n_converted"] == len(converted) == len(cases) - 2  # all but the 8-bit RGB and grey files
    assert converted["grey/grey16.png"].startswith("mode I;16: 16-bit -> 8-bit")
    assert converted["colour/cmyk_adobe.jpg"].startswith("mode CMYK:")
    assert [r["id"] for r in meta["skipped"]] == ["grey/nan.tif"]
    # the 16-bit and the 8-bit grey file describe the same pixels: the same GIST
    ids = _source(raw).ids
    assert np.allclose(X[ids.index("grey/grey16.png")], X[ids.index("grey/grey.png")])
    assert not np.allclose(X[ids.index("grey/grey16.png")], 0)


def test_decoder_forces_the_layout_the_caller_wants():
    from PIL import Image

    from pseudosup.data.loaders.decode import pil_to_uint8

    grey16 = Image.fromarray(np.array([[0, 257 * 10], [257 * 200, 65535]], np.uint16))
    img, note = pil_to_uint8(grey16, colour=True)
    assert img.shape == (2, 2, 3) and img[..., 1].tolist() == [[0, 10], [200, 255]] and "grey->RGB" in note
    rgb = Image.fromarray(np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8))
    img, note = pil_to_uint8(rgb, colour=False)
    assert img.tolist() == [[76, 29]] and note is None  # ITU-R 601 luma; RGB->grey is the caller's choice
    assert pil_to_uint8(rgb)[1] is None
    opaque = Image.fromarray(np.dstack([np.asarray(rgb), np.full((1, 2), 255, np.uint8)]), "RGBA")
    img, note = pil_to_uint8(opaque)
    assert img.tolist() == [[[255, 0, 0], [0, 0, 255]]] and "all opaque" in note
