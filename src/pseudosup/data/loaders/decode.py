"""Decoding any Pillow image to uint8 grey or RGB, saying what was done (the one place
pixel modes are interpreted; archive readers and the feature Fetcher both call it).

`pil_to_uint8(im)` returns (pixels, note); note is None when the pixels were used as
stored (modes L and RGB), otherwise one line naming the original mode and the
conversion, which the feature sidecar lists under `converted`. The rules:

- 16-bit grey (I;16, I;16L, I;16B, I;16N): x * 255 / 65535, rounded (= x / 257), so an
  8-bit image saved as 16-bit (v * 257) decodes back to exactly v. PNG stores 16-bit
  samples at full scale whatever its significant bits, so 65535 is the bit depth's maximum.
- 32-bit integer grey (I): Pillow also opens 16-bit files this way, and the mode does not
  say the bit depth, so it is read off the values: all in 0..255 -> used as 8-bit;
  in 0..65535 with max > 255 -> 16-bit (x / 257); anything else (negative, > 65535) ->
  min-max scaled to 0..255 (the note says so, with the range).
- float (F): values in [0, 1] -> x * 255, rounded; otherwise min-max scaled (said in the
  note); NaN/inf -> ValueError (the item is skipped as unreadable).
- alpha (RGBA, LA, PA, RGBa, La, P/L/RGB with a transparent colour): composited onto
  white, i.e. shown as a viewer shows it on a page. Not simply dropped as Pillow's
  convert('RGB') does (what torchvision's and cnnimageretrieval's loaders do): the
  colour stored under transparent pixels is arbitrary (often the logo colour itself,
  which would make a cut-out a flat rectangle), and not composited on black, which
  swallows the black text and logos that are the common case. Opaque alpha (all 255)
  is dropped and noted as such.
- palette (P): looked up to RGB (no colour is lost, even for grey-looking palettes);
  with a transparent index, through RGBA and composited on white.
- CMYK: Pillow's R = (255 - C)(255 - K) / 255 (no ICC colour management: an embedded
  press profile is not applied, so colours of such files are approximate). Pillow (and
  OpenCV) read every CMYK JPEG with Adobe's inverted polarity; that is right when the
  Adobe APP14 marker is present (Photoshop's files, and Pillow's own), but nothing says a
  CMYK JPEG without it is inverted, so, as libvips does, only marked files are taken as
  inverted and Pillow's inversion is undone for the others (noted).
- bilevel (1): 0 / 255 grey. Other modes (YCbCr, LAB, HSV, RGBX, ...): Pillow's convert.

`colour`: None keeps grey images grey and gives everything else RGB (the dataset
readers' contract); True / False force RGB (grey replicated) / grey (ITU-R 601 luma).
EXIF orientation is not applied: pixels are used as stored, as the standard evaluation
code does.
"""

from __future__ import annotations

import io

import numpy as np

from ...io import PseudosupError

BACKGROUND = 255  # alpha is composited onto white (see the module docstring)
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


def decode_bytes(data: bytes, where: str, colour: bool | None = None) -> tuple[np.ndarray, str | None]:
    """Decode an encoded image fully (truncated files raise); PseudosupError naming
    `where` when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # the whole decode: truncated files raise here
            return pil_to_uint8(im, colour)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise PseudosupError(f"{where}: not a readable image ({e})") from None


def pil_to_uint8(im, colour: bool | None = None) -> tuple[np.ndarray, str | None]:
    """uint8 (H, W) grey or (H, W, 3) RGB of a loaded Pillow image, and the note of
    what was done (None when nothing). Raises ValueError for NaN/inf float pixels."""
    mode = im.mode
    if mode in ("L", "RGB") and "transparency" not in im.info:
        img, what = np.asarray(im), None
    elif mode in SIXTEEN_BIT:
        img, what = sixteen_to_uint8(np.asarray(im).astype(np.uint16)), "16-bit -> 8-bit (x/257)"
    elif mode == "I":
        img, what = int_to_uint8(np.asarray(im))
    elif mode == "F":
        img, what = float_to_uint8(np.asarray(im))
    elif mode == "1":
        img, what = np.asarray(im.convert("L")), "bilevel -> grey 0/255"
    elif mode == "CMYK":
        img, what = _cmyk(im)
    elif mode in ALPHA or "transparency" in im.info:
        img, what = _alpha(im)
    elif mode == "P":
        img, what = np.asarray(im.convert("RGB")), "palette -> RGB"
    else:
        img, what = np.asarray(im.convert("RGB")), "-> RGB (Pillow convert)"
    img, forced = to_colour(img, colour)
    notes = [f"mode {mode}: {what}"] if what else []
    return np.ascontiguousarray(img), "; ".join(notes + ([forced] if forced else [])) or None


def sixteen_to_uint8(a: np.ndarray, top: int = 65535) -> np.ndarray:
    """Scale integer samples of 0..top to 0..255, rounded."""
    return np.round(np.minimum(a, top) * (255.0 / top)).astype(np.uint8)


def int_to_uint8(a: np.ndarray) -> tuple[np.ndarray, str]:
    """Integer pixels of unknown bit depth: 8-bit if they fit, else 16-bit if they fit,
    else min-max (the module docstring's rule for mode I)."""
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi <= 255:
        return a.astype(np.uint8), "values 0..255 used as 8-bit"
    if lo >= 0 and hi <= 65535:
        return sixteen_to_uint8(a), f"16-bit values (max {hi} > 255) -> 8-bit (x/257)"
    return min_max(a), f"values [{lo}, {hi}] outside 0..65535 -> 8-bit by min-max"


def float_to_uint8(a: np.ndarray) -> tuple[np.ndarray, str]:
    if not np.isfinite(a).all():
        raise ValueError("non-finite pixel values")
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0 and hi <= 1:  # the usual convention for float images
        return np.round(a * 255.0).astype(np.uint8), "float [0,1] -> 8-bit (x*255)"
    return min_max(a), f"float values [{lo:.6g}, {hi:.6g}] outside [0,1] -> 8-bit by min-max"


def min_max(a: np.ndarray) -> np.ndarray:
    """0..255 from the image's own range (a constant image -> zeros)."""
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.round((a.astype(np.float64) - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def composite(a: np.ndarray) -> tuple[np.ndarray, str]:
    """(H, W, 2) grey+alpha or (H, W, 4) RGBA uint8 -> grey / RGB on the background."""
    colour, alpha = a[..., :-1].astype(np.uint32), a[..., -1:].astype(np.uint32)
    if (alpha == 255).all():
        out, what = a[..., :-1], "alpha (all opaque) dropped"
    else:
        # straight (not premultiplied) alpha, as PNG stores it; + 127 rounds the division
        out = ((colour * alpha + BACKGROUND * (255 - alpha) + 127) // 255).astype(np.uint8)
        what = "alpha composited on white"
    return (out[..., 0] if out.shape[-1] == 1 else out), what


def _alpha(im) -> tuple[np.ndarray, str]:
    grey = im.mode in ("LA", "La", "L")
    target = "LA" if im.mode in ("LA", "La") else "RGBA"  # L with a transparent value: via RGBA
    out, what = composite(np.asarray(im if im.mode == target else im.convert(target)))
    if grey and out.ndim == 3:  # the three channels are equal
        out = out[..., 0]
    source = {"P": "palette with transparency -> RGBA, ", "PA": "palette -> RGBA, ",
              "L": "transparent value -> ", "RGB": "transparent colour -> "}.get(im.mode, "")
    return out, source + what + (" -> grey" if out.ndim == 2 else " -> RGB")


def _cmyk(im) -> tuple[np.ndarray, str]:
    from PIL import ImageChops
    from PIL.JpegImagePlugin import JpegImageFile

    if isinstance(im, JpegImageFile) and "adobe" not in im.info:
        # Pillow inverted the samples assuming Adobe polarity; without the APP14 marker the
        # file holds plain CMYK (libjpeg's and the JPEG standard's reading)
        return (np.asarray(ImageChops.invert(im).convert("RGB")),
                "JPEG without Adobe APP14 marker: plain (non-inverted) CMYK -> RGB")
    return np.asarray(im.convert("RGB")), "CMYK -> RGB (R=(255-C)(255-K)/255)"


def to_colour(img: np.ndarray, colour: bool | None) -> tuple[np.ndarray, str | None]:
    """Force RGB (colour=True) or grey (False); None leaves the layout as it is."""
    if colour is None:
        return img, None
    if colour and img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2), "grey->RGB"
    if not colour and img.ndim == 3:
        # not noted: a grey extractor turns every colour image to grey, that is its choice
        return rgb_to_grey(img), None
    return img, None


def rgb_to_grey(img: np.ndarray) -> np.ndarray:
    # ITU-R 601 luma, as OpenCV and Pillow compute grey
    return np.round(img @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)
