"""Reading and normalising images before any extractor sees them (the bad-input policy).

Every extractor gets its pixels through `Fetcher`, which turns whatever an image
source returns (or raises) into either a uint8 array in a known layout or a skip
with a reason. The policy, stated once:

- unreadable or truncated file, empty array (a side of 0 pixels), or an exception
  raised by the source -> skipped: the item's row is all zeros, and the sidecar lists
  it under `skipped` with the reason;
- any file whose pixels are not 8-bit L or RGB (16-bit, 32-bit integer, float, palette,
  alpha, CMYK, bilevel, ...) -> decoded to uint8 grey or RGB by
  `pseudosup.data.loaders.decode.pil_to_uint8` (the scaling rules are stated there) and
  listed under `converted` with its mode and what was done ("mode I;16: 16-bit -> 8-bit
  (x/257)"); sources say what their decoding did through `read_with_note(i)`;
- arrays from array sources: grey (H, W) or (H, W, 1) for a colour extractor, grey+alpha
  or RGBA (alpha composited on white), 16-bit, other integer or float pixels (the same
  rules as the files) -> converted and listed under `converted`. An 8-bit grey image for a
  grey extractor, or RGB for a colour one, is used as is and not listed;
- smaller than an extractor needs -> upscaled by the extractor and counted under
  `converted` (reason "upscaled").

Nothing here ever produces NaN: float inputs with NaN/inf are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.loaders.decode import composite, float_to_uint8, int_to_uint8, pil_to_uint8, sixteen_to_uint8, to_colour
from ..io import PseudosupError


class BadImage(Exception):
    """An item that cannot be described; the message is the reason recorded."""


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file fully to uint8 grey (H, W) or RGB (H, W, 3) (raises BadImage
    when unreadable or truncated); see `read_image_with_note`."""
    return read_image_with_note(path)[0]


def read_image_with_note(path: str | Path) -> tuple[np.ndarray, str | None]:
    """The pixels and what the decoding did (None when the file was 8-bit L or RGB);
    every mode is scaled by `pil_to_uint8`'s rules."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()  # forces the whole decode: truncated files raise here
            return pil_to_uint8(im)
    except FileNotFoundError:
        raise BadImage(f"file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"unreadable image {Path(path).name}: {e}") from None


def to_uint8(img: np.ndarray) -> tuple[np.ndarray, str | None]:
    """uint8 pixels of any numeric array, by the same rules as decoded files; returns
    (pixels, note of the conversion or None)."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img, None
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255, "bool->uint8"
    try:
        if np.issubdtype(img.dtype, np.floating):
            return float_to_uint8(img)
        if img.dtype == np.uint16:
            return sixteen_to_uint8(img), "16-bit -> 8-bit (x/257)"
        if np.issubdtype(img.dtype, np.integer):
            u8, what = int_to_uint8(img)
            return u8, f"{img.dtype}: {what}"
    except ValueError as e:  # NaN / inf
        raise BadImage(str(e)) from None
    raise BadImage(f"unsupported pixel type {img.dtype}")


def to_layout(img: np.ndarray, colour: bool) -> tuple[np.ndarray, str | None]:
    """(H, W, 3) RGB when colour else (H, W) grey; alpha is composited on white (as for
    files, see loaders/decode.py)."""
    notes = []
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] in (2, 4):  # grey + alpha, RGBA
        img, what = composite(img)
        notes.append(what)
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3):
        img, forced = to_colour(img, colour)
        notes += [forced] if forced else []
    else:
        raise BadImage(f"unsupported image shape {img.shape}")
    return np.ascontiguousarray(img), ", ".join(notes) or None


@dataclass
class Fetcher:
    """Gets item i of an image source in the layout an extractor needs, recording
    every skip and conversion (they go to the feature sidecar). A source that decodes
    files says what its decoding did through `read_with_note(i) -> (pixels, note)`
    (MemberImages, FileImages); plain sources only give `source[i]`."""

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
            read = getattr(self.source, "read_with_note", None)
            img, n0 = read(i) if read is not None else (self.source[i], None)
            if isinstance(img, (str, Path)):
                img, n0 = read_image_with_note(img)
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
        notes = [n for n in (n0, n1, n2, n3) if n]
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

    def read_with_note(self, i: int) -> tuple[np.ndarray, str | None]:
        return read_image_with_note(self.paths[i])
