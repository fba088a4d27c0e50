"""Extract one feature for every item of a dataset: float32 .npy + JSON sidecar.

Rows follow the dataset's item order (splits index into it). The sidecar records
the extractor, its params, the weights it used and the code version.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, params_of, set_threads

HELP = "extract features of every item of a dataset"


def add_arguments(p) -> None:
    add_params_args(p, "features.<feature>")
    add_threads_arg(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True, help="the dataset's raw directory")
    p.add_argument("--feature", required=True, help="name in params `features`")
    p.add_argument("--backbone", type=Path, default=None, help="checkpoint of a pre-trained extractor")
    p.add_argument("--out", type=Path, required=True, help="output .npy (sidecar .json next to it)")


def run(args) -> None:
    import numpy as np

    from .. import code_version
    from ..data import registry
    from ..io import PseudosupError, save_array
    from ..log import log

    set_threads(args.threads)
    params = params_of(args)
    cfg = params.get_key(f"features.{args.feature}")
    ds = registry.get(args.dataset)
    images = ds.images(args.raw)
    meta = {"dataset": args.dataset, "feature": args.feature, "extractor": cfg["extractor"], "params": cfg,
            "n": int(len(images)), "skipped": [], "code_version": code_version()}
    if cfg["extractor"] == "pixels":
        from ..features import pixels
        X = pixels.extract(images)
    elif cfg["extractor"] == "small-cnn":
        X, meta["weights"] = _small_cnn(args, cfg, images)
    else:
        raise PseudosupError(f"features.{args.feature}.extractor: unknown extractor '{cfg['extractor']}'")
    if not np.isfinite(X).all():
        raise PseudosupError(f"{args.feature}: extractor produced NaN/inf values; refusing to write {args.out}")
    meta["dim"] = int(X.shape[1])
    save_array(args.out, X.astype(np.float32, copy=False), meta)
    log.info("wrote %s: %d x %d", args.out, *X.shape)


def _small_cnn(args, cfg, images):
    import torch

    from ..features import smallcnn
    from ..io import PseudosupError

    torch.set_num_threads(args.threads)
    if args.backbone is None:
        raise PseudosupError(f"features.{args.feature}: the small-cnn extractor needs --backbone")
    ckpt = torch.load(args.backbone, map_location="cpu", weights_only=False)
    m = ckpt["meta"]
    if m.get("kind") != "small-cnn":
        raise PseudosupError(f"{args.backbone}: checkpoint of kind '{m.get('kind')}', expected small-cnn")
    model = smallcnn.SmallCNN(m["in_channels"], m["config"]["width"], m["config"]["dim"], m["n_classes"])
    model.load_state_dict(ckpt["state_dict"])
    X = smallcnn.extract(model, images, cfg["batch_size"])
    weights = {"checkpoint": str(args.backbone), "trained_on": f"{m['split']}/{m['part']}",
               "code_version": m["code_version"]}
    return X, weights
