"""CNN global descriptors: a backbone's last convolutional map, pooled, L2-normalised,
optionally PCA-whitened.

Backbones (`backbone` x `weights`):
- any torchvision classification model by name (resnet50, vgg16, mobilenet_v2, ...)
  with `weights` = a local state-dict file (.pth/.pt, as torchvision distributes
  them), `torchvision` (its weights API; needs the model hub, which is not reachable
  offline: the error says which file to fetch and where to point `weights`), or
  `random` (seeded initialisation; for tests only);
- `mobilenet_v2` with `weights` = a .tflite file: the bundled uint8 ImageNet
  MobileNetV2 converted to float torch (`tflite.load_mobilenet_v2`).

Input: RGB uint8 (grey is replicated, see images.py), resized to `image_size` x
`image_size` (`resize: square`, batched) or with its longer side = `image_size`
(`resize: max_side`, aspect kept, images batched only with others of the same size);
the shorter side is never below `min_side` (upscaled and counted). Pixels are
normalised as the weights expect (ImageNet mean/std for torchvision, (u - 128) / 128
for the TFLite model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..io import PseudosupError
from ..log import log, progress
from . import pooling
from .images import Fetcher

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass
class Backbone:
    """A trunk producing the last convolutional map, and how to normalise its input."""

    trunk: nn.Module
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: int
    source: dict  # where the weights came from (for the sidecar)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x.float() - mean) / std


def load_backbone(name: str, weights: str | None, seed: int = 0) -> Backbone:
    """The trunk of `name` with `weights` (a path, 'torchvision' or 'random')."""
    if weights is None:
        raise PseudosupError(f"backbone {name}: `weights` is required (a .pth/.tflite file, "
                             "'torchvision' or 'random')")
    if str(weights).endswith(".tflite"):
        return _tflite_backbone(name, weights)
    import torchvision

    torch.manual_seed(seed)  # the initialisation is only kept with weights: random
    try:
        model = torchvision.models.get_model(name, weights=None)
    except ValueError:
        raise PseudosupError(f"unknown torchvision backbone {name!r}; e.g. resnet50, vgg16, mobilenet_v2") from None
    if weights == "random":
        source = {"weights": "random", "seed": seed}
    elif weights == "torchvision":
        source = _hub_weights(name, model)
    else:
        source = _file_weights(name, model, weights)
    trunk, channels = _trunk(name, model)
    return Backbone(trunk.eval(), IMAGENET_MEAN, IMAGENET_STD, channels, source)


def _tflite_backbone(name: str, path: str) -> Backbone:
    from .tflite import file_sha256, load_mobilenet_v2

    if name != "mobilenet_v2":
        raise PseudosupError(f"weights {path}: only the mobilenet_v2 backbone can be loaded from .tflite, not {name!r}")
    net = load_mobilenet_v2(path)
    mean = tuple(float(v) for v in net.pixel_mean.flatten())
    std = tuple(float(v) for v in net.pixel_std.flatten())
    return Backbone(net.features.eval(), mean, std, 1280,
                    {"weights": str(path), "sha256": file_sha256(path), "format": "tflite (dequantised)"})


def _hub_weights(name: str, model: nn.Module) -> dict:
    import torchvision

    w = torchvision.models.get_model_weights(name).DEFAULT
    try:
        model.load_state_dict(w.get_state_dict(progress=False))
    except Exception as e:
        raise PseudosupError(f"backbone {name}: torchvision could not fetch its ImageNet weights ({e}). "
                             f"Offline: put the file {w.url.rsplit('/', 1)[-1]} somewhere and set `weights` "
                             "to its path (or use the bundled MobileNetV2: backbone mobilenet_v2, weights "
                             "<shared_data>/coral/mobilenet_v2_1.0_224_quant.tflite)") from None
    return {"weights": "torchvision", "name": str(w), "url": w.url}


def _file_weights(name: str, model: nn.Module, path: str) -> dict:
    from .tflite import file_sha256

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PseudosupError(f"backbone {name}: weights file {path} not found") from None
    except Exception as e:
        raise PseudosupError(f"backbone {name}: {path} is not a torch state dict ({e})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise PseudosupError(f"backbone {name}: {path} does not fit this architecture: {str(e)[:300]}") from None
    return {"weights": str(path), "sha256": file_sha256(path)}


def _trunk(name: str, model: nn.Module) -> tuple[nn.Module, int]:
    """Everything up to the last convolutional map, and its channel count."""
    if hasattr(model, "layer4"):  # resnets, resnexts, wide resnets
        trunk = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool,
                              model.layer1, model.layer2, model.layer3, model.layer4)
    elif hasattr(model, "features"):  # vgg, alexnet, mobilenets, efficientnets, densenet, convnext
        trunk = model.features
        if name.startswith("densenet"):
            trunk = nn.Sequential(trunk, nn.ReLU())
    else:
        raise PseudosupError(f"backbone {name}: no convolutional trunk known for this model")
    with torch.no_grad():
        channels = trunk.eval()(torch.zeros(1, 3, 64, 64)).shape[1]
    return trunk, int(channels)


# --- input pipeline ---------------------------------------------------------------------

class _Images(torch.utils.data.Dataset):
    """Item i -> (i, uint8 CHW tensor or None, skip reason, conversion note); runs in
    DataLoader workers, so skips travel back with the item instead of via state."""

    def __init__(self, fetcher: Fetcher, image_size: int, resize: str):
        self.fetcher, self.image_size, self.resize = fetcher, image_size, resize

    def __len__(self) -> int:
        return len(self.fetcher)

    def __getitem__(self, i: int):
        img = self.fetcher.get(i)
        if img is None:
            return i, None, self.fetcher.skipped.get(i), None
        img = resize_for_cnn(img, self.image_size, self.resize, self.fetcher.min_side)
        return i, torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), None, self.fetcher.converted.get(i)


def resize_for_cnn(img: np.ndarray, size: int, mode: str, min_side: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    if mode == "square":
        target = (size, size)
    elif mode == "max_side":
        s = size / max(h, w)
        target = (max(min_side, int(round(w * s))), max(min_side, int(round(h * s))))
    else:
        raise PseudosupError(f"resize: unknown mode {mode!r} (square or max_side)")
    if target == (w, h):
        return img
    shrink = target[0] < w or target[1] < h
    return cv2.resize(img, target, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _collate(batch):
    return batch  # shapes may differ (max_side); grouped in `_groups`


def _groups(items):
    """Split a batch into runs of equal image size (one forward pass each)."""
    by_shape: dict = {}
    for i, t, _, _ in items:
        if t is not None:
            by_shape.setdefault(tuple(t.shape), []).append((i, t))
    return list(by_shape.values())


# --- extraction ------------------------------------------------------------------------------

@torch.no_grad()
def extract(source, backbone: Backbone, poolings: list[str], image_size: int = 224, resize: str = "square",
            batch_size: int = 32, workers: int = 0, scales=(1.0,), p: float = 3.0, levels: int = 3,
            min_side: int = 32, ids=None) -> tuple[dict[str, np.ndarray], dict]:
    """Descriptors of every item of an image source for each pooling in `poolings`
    (one forward pass serves them all). Skipped items get zero rows.

    Returns ({pooling: float32 (n, C)}, report) with report = skipped/converted items.
    Memory is bounded by the batch: rows are written into preallocated outputs.
    """
    fetcher = Fetcher(source, colour=True, min_side=min_side)
    n = len(fetcher)
    if workers and not getattr(source, "fork_safe", False):
        # forked workers share open file handles (e.g. one tar read with seek + read):
        # only sources that declare `fork_safe = True` are read in parallel
        log.warning("cnn features: workers=%d ignored, the image source is not marked fork_safe", workers)
        workers = 0
    out = {m: np.zeros((n, backbone.channels), dtype=np.float32) for m in poolings}
    loader = torch.utils.data.DataLoader(_Images(fetcher, image_size, resize), batch_size=batch_size,
                                         num_workers=workers, collate_fn=_collate, shuffle=False)
    trunk = backbone.trunk.to(memory_format=torch.channels_last)
    for items in progress(loader, desc="cnn features", total=len(loader), unit="batch"):
        for i, _, why, note in items:
            if why is not None:
                fetcher.skipped[i] = why
            if note is not None:
                fetcher.converted[i] = note
        for group in _groups(items):
            idx = [i for i, _ in group]
            x = backbone.normalize(torch.stack([t for _, t in group])).contiguous(memory_format=torch.channels_last)
            maps = {s: None for s in scales}  # one trunk pass per scale, shared by all poolings
            for m in poolings:
                acc = None
                for s in scales:
                    if maps[s] is None:
                        xs = x if s == 1 else nn.functional.interpolate(x, scale_factor=s, mode="bilinear",
                                                                        align_corners=False, antialias=s < 1)
                        maps[s] = trunk(xs)
                    d = pooling.pool(maps[s], m, p, levels)
                    acc = d if acc is None else acc + d
                out[m][idx] = pooling.l2n(acc).numpy()
    fetcher.check_any_left()
    for m, arr in out.items():
        if not np.isfinite(arr).all():  # cannot happen by construction; refuse rather than write NaN
            raise PseudosupError(f"cnn features ({m}): non-finite values")
    report = fetcher.report(ids)
    if report["n_skipped"]:
        log.warning("cnn features: %d item(s) skipped (zero rows): %s", report["n_skipped"],
                    "; ".join(f"{r['index']}: {r['reason']}" for r in report["skipped"][:5]))
    return out, report


# --- PCA-whitening --------------------------------------------------------------------------

def fit_whitening(X: np.ndarray, dim: int | None = None, eps: float = 1e-6) -> dict[str, np.ndarray]:
    """PCA-whitening learned on X (rows = L2-normalised descriptors of a learning set):
    centre, project on the top `dim` principal directions, divide by sqrt(eigenvalue).
    Returns {'mean', 'projection' (d x dim), 'eigenvalues'} (float32)."""
    X = np.asarray(X, dtype=np.float64)
    if len(X) < 2:
        raise PseudosupError("whitening: needs at least 2 learning descriptors")
    mean = X.mean(0)
    cov = np.cov(X - mean, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    dim = min(dim or X.shape[1], X.shape[1], len(X) - 1)
    vals, vecs = np.maximum(vals[:dim], 0), vecs[:, :dim]
    # fix each direction's sign (largest coefficient positive): reproducible output
    vecs = vecs * np.sign(vecs[np.abs(vecs).argmax(0), np.arange(dim)])
    proj = vecs / np.sqrt(vals + eps)
    return {"mean": mean.astype(np.float32), "projection": proj.astype(np.float32),
            "eigenvalues": vals.astype(np.float32)}


def apply_whitening(X: np.ndarray, w: dict[str, np.ndarray], batch: int = 65536) -> np.ndarray:
    """(X - mean) @ projection, L2-normalised; zero rows (skipped items) stay zero."""
    out = np.empty((len(X), w["projection"].shape[1]), dtype=np.float32)
    for a in range(0, len(X), batch):
        x = np.asarray(X[a:a + batch], dtype=np.float32)
        y = (x - w["mean"]) @ w["projection"]
        norm = np.linalg.norm(y, axis=1, keepdims=True)
        y = np.where(norm > 0, y / np.maximum(norm, 1e-12), 0)
        y[~x.any(axis=1)] = 0
        out[a:a + batch] = y
    return out
