"""Reading and normalising images before any extractor sees them (the bad-input policy).

Every extractor gets its pixels through `Fetcher`, which turns whatever an image
source returns (or raises) into either a uint8 array in a known layout or a skip
with a reason. The policy, stated once:

- unreadable or truncated file, empty array (a side of 0 pixels), or an exception
  raised by the source -> skipped: the item's row is all zeros, and the sidecar lists
  it under `skipped` with the reason;
- grey (H, W) or (H, W, 1), RGBA / grey+alpha, CMYK (a 4-channel file decoded by
  Pillow), 16-bit or float pixels -> converted (to grey or RGB uint8 as the extractor
  asks) and counted under `converted`;
- smaller than an extractor needs -> upscaled by the extractor and counted under
  `converted` (reason "upscaled").

Nothing here ever produces NaN: float inputs with NaN/inf are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import PseudosupError


class BadImage(Exception):
    """An item that cannot be described; the message is the reason recorded."""


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file fully (raises BadImage when unreadable or truncated).

    Returns the pixels as decoded (uint8 or uint16, grey or RGB/RGBA) with CMYK and
    palette images already turned into RGB.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()  # forces the whole decode: truncated files raise here
            return _pil_to_array(im)
    except FileNotFoundError:
        raise BadImage(f"file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"unreadable image {Path(path).name}: {e}") from None


def _pil_to_array(im) -> np.ndarray:
    if im.mode in ("CMYK", "YCbCr", "LAB", "HSV", "P", "PA", "1"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.uint16)
    if im.mode in ("I", "F"):
        return np.asarray(im)
    return np.asarray(im)


def to_uint8(img: np.ndarray) -> tuple[np.ndarray, str | None]:
    """uint8 pixels of any numeric image; returns (pixels, note of the conversion or None)."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img, None
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255, "bool->uint8"
    if np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all():
            raise BadImage("non-finite pixel values")
        # floats in [0, 1] are the usual convention; anything else is min-max scaled
        if img.min() >= 0 and img.max() <= 1:
            return np.round(img * 255).astype(np.uint8), "float[0,1]->uint8"
        return _rescale(img), "float->uint8 (min-max)"
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8), "16-bit->8-bit"
    if np.issubdtype(img.dtype, np.integer):
        if img.min() >= 0 and img.max() <= 255:
            return img.astype(np.uint8), f"{img.dtype}->uint8"
        return _rescale(img.astype(np.float64)), f"{img.dtype}->uint8 (min-max)"
    raise BadImage(f"unsupported pixel type {img.dtype}")


def _rescale(img: np.ndarray) -> np.ndarray:
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros(img.shape, np.uint8)
    return np.round((img - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def to_layout(img: np.ndarray, colour: bool) -> tuple[np.ndarray, str | None]:
    """(H, W, 3) RGB when colour else (H, W) grey; alpha is dropped (composited on
    nothing: the colour channels are kept as they are)."""
    notes = []
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 2:  # grey + alpha
        img, _ = img[:, :, 0], notes.append("alpha dropped")
    if img.ndim == 3 and img.shape[2] == 4:
        img, _ = img[:, :, :3], notes.append("alpha dropped")
    if img.ndim == 2:
        if colour:
            img, _ = np.repeat(img[:, :, None], 3, axis=2), notes.append("grey->RGB")
    elif img.ndim == 3 and img.shape[2] == 3:
        if not colour:
            # ITU-R 601 luma, as OpenCV and Pillow compute grey
            img = np.round(img @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)
    else:
        raise BadImage(f"unsupported image shape {img.shape}")
    return np.ascontiguousarray(img), ", ".join(notes) or None


@dataclass
class Fetcher:
    """Gets item i of an image source in the layout an extractor needs, recording
    every skip and conversion (they go to the feature sidecar)."""

    source: object
    colour: bool
    min_side: int = 1
    skipped: dict = field(default_factory=dict)    # index -> reason
    converted: dict = field(default_factory=dict)  # index -> what was done

    def __len__(self) -> int:
        return len(self.source)

    def get(self, i: int) -> np.ndarray | None:
        """The pixels of item i, or None when it is skipped (reason recorded)."""
        try:
            img = self.source[i]
            if isinstance(img, (str, Path)):
                img = read_image(img)
            img = np.asarray(img)
            if img.ndim < 2 or img.shape[0] == 0 or img.shape[1] == 0:
                raise BadImage(f"empty image (shape {img.shape})")
            img, n1 = to_uint8(img)
            img, n2 = to_layout(img, self.colour)
            img, n3 = upscale_to(img, self.min_side)
        except (BadImage, PseudosupError) as e:  # dataset readers raise PseudosupError for a bad file
            self.skipped[i] = str(e)
            return None
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # a reader failing on one item must not stop the dataset
            self.skipped[i] = f"{type(e).__name__}: {e}"
            return None
        notes = [n for n in (n1, n2, n3) if n]
        if notes:
            self.converted[i] = "; ".join(notes)
        return img

    def check_any_left(self) -> None:
        """Refuse to describe a dataset of which every item was skipped (a wrong raw
        directory, not bad images)."""
        n = len(self.source)
        if n and len(self.skipped) == n:
            first = next(iter(self.skipped.values()))
            raise PseudosupError(f"all {n} items were skipped (first reason: {first}); check the dataset's raw files")

    def report(self, ids=None) -> dict:
        """Sidecar entries: skipped and converted items with reasons (and ids)."""
        def rows(d):
            return [{"index": int(i), **({"id": str(ids[i])} if ids is not None else {}), "reason": r}
                    for i, r in sorted(d.items())]
        return {"skipped": rows(self.skipped), "converted": rows(self.converted),
                "n_skipped": len(self.skipped), "n_converted": len(self.converted)}


def upscale_to(img: np.ndarray, min_side: int) -> tuple[np.ndarray, str | None]:
    """Upscale (bilinear, aspect kept) so that the shorter side is >= min_side."""
    h, w = img.shape[:2]
    if min(h, w) >= min_side:
        return img, None
    import cv2

    s = min_side / min(h, w)
    size = (max(min_side, int(round(w * s))), max(min_side, int(round(h * s))))
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR), f"upscaled {h}x{w}->{size[1]}x{size[0]}"


def resize_max_side(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (area interpolation) so the longer side is <= max_side."""
    h, w = img.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return img
    import cv2

    s = max_side / max(h, w)
    return cv2.resize(img, (max(1, int(round(w * s))), max(1, int(round(h * s)))), interpolation=cv2.INTER_AREA)


class FileImages:
    """An image source over a list of files (read lazily with `read_image`); each read
    opens its own file, so DataLoader worker processes may share it."""

    fork_safe = True

    def __init__(self, paths, ids=None):
        self.paths = [Path(p) for p in paths]
        self.ids = ids if ids is not None else [p.stem for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return read_image(self.paths[i])
