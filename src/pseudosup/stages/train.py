"""Fit a hashing method on the split's training items; save a self-describing model.

The model file (.npz) holds the method, its params, the code length, the arrays that
define the hash function (mean, projections), the training set and the code version.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, params_of, set_threads

HELP = "fit a hashing method and save the model"


def add_arguments(p) -> None:
    add_params_args(p, "seed, methods.<method>")
    add_threads_arg(p)
    p.add_argument("--method", required=True, help="name in params `methods`")
    p.add_argument("--bits", type=int, required=True, help="code length")
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="model file (.npz)")


def run(args) -> None:
    import numpy as np

    from .. import code_version
    from ..data.splits import load_split
    from ..io import load_array, save_npz
    from ..log import log
    from ..methods import registry

    set_threads(args.threads)
    params = params_of(args)
    cfg = params.get_key(f"methods.{args.method}")
    seed = params.get_key("seed")
    split = load_split(args.split)
    X, fmeta = load_array(args.features)
    train = split.part("train")
    hasher = registry.get(cfg["hasher"])(args.bits, cfg, seed)
    log.info("fitting %s (%s) with %d bits on %d x %d", args.method, cfg["hasher"], args.bits, len(train), X.shape[1])
    hasher.fit(np.asarray(X[train]))
    meta = {"method": args.method, "hasher": cfg["hasher"], "params": cfg, "bits": args.bits, "seed": seed,
            "feature": fmeta.get("feature"), "dim": int(X.shape[1]), "split": split.name,
            "train_items": int(len(train)), "code_version": code_version()}
    save_npz(args.out, meta, **hasher.arrays())


def load_model(path: Path):
    """Rebuild a hasher from its model file."""
    from ..io import load_npz
    from ..methods import registry

    meta, arrays = load_npz(path)
    cls = registry.get(meta["hasher"])
    return cls.from_arrays(meta["bits"], meta["params"], meta["seed"], arrays), meta
