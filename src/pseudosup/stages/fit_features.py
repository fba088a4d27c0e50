"""Fit the unsupervised parts of a feature extractor on a separate sample of images.

sift-bow: RootSIFT of the sample -> visual vocabulary (faiss k-means), IDF and the
dense projection (PCA(-whitening) of the sample's TF-IDF bags of words).
cnn with `whitening`: pooled descriptors of the sample -> PCA-whitening.

The sample: `sample_images` items drawn (seeded) from the part `part` of the split
file given with --split (e.g. the training part, disjoint from the queries), or from
all items of the dataset when the params name no split. Output: one self-describing
.npz (arrays + meta: params, sample, code version) read by `pseudosup features --fitted`.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, params_of, set_threads, weights_file

HELP = "fit a feature extractor's vocabulary / whitening on a separate sample of images"


def add_arguments(p) -> None:
    add_params_args(p, "seed, features.<feature>")
    add_threads_arg(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True, help="the dataset's raw directory")
    p.add_argument("--feature", required=True, help="name in params `features`")
    p.add_argument("--split", type=Path, default=None,
                   help="split file whose part holds the sample (when the params name a split)")
    p.add_argument("--out", type=Path, required=True, help="fitted model (.npz)")


def run(args) -> None:
    import numpy as np

    from .. import code_version
    from .. import provenance as P
    from ..data import registry
    from ..features import extractors
    from ..io import PseudosupError, save_npz
    from ..log import log

    set_threads(args.threads)
    params = params_of(args)
    cfg = params.get_key(f"features.{args.feature}")
    seed = params.get_key("seed")
    if not extractors.needs_fit(cfg):
        raise PseudosupError(f"features.{args.feature}: extractor {cfg['extractor']} has nothing to fit")
    sc = extractors.fit_params(cfg)  # the sample's params (vocabulary / whitening)
    source = registry.get(args.dataset).image_source(args.raw)
    pool, trained_on = _pool(args, sc, len(source))
    indices = extractors.sample_indices(len(source), pool, sc["sample_images"], seed)
    log.info("fitting %s on %d images of %s", args.feature, len(indices), trained_on)
    meta, arrays = extractors.fit(cfg, source, indices, args.threads, seed)
    split_file = args.split if sc.get("split") else None
    meta.update(dataset=args.dataset, feature=args.feature, params=cfg, seed=seed, trained_on=trained_on,
                code_version=code_version(), **P.stamp(args.raw, split_file, weights_file(cfg)))
    if not all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f"):
        raise PseudosupError(f"{args.feature}: fitting produced NaN/inf; refusing to write {args.out}")
    save_npz(args.out, meta, **arrays)
    log.info("wrote %s", args.out)


def _pool(args, sc: dict, n: int):
    """The items the sample is drawn from, and a description of them."""
    from ..data.splits import load_split
    from ..io import PseudosupError

    if sc.get("split") is None:
        return None, f"all {n} items of {args.dataset}"
    if args.split is None:
        raise PseudosupError(f"features.{args.feature}: the sample comes from split '{sc['split']}': pass --split "
                             f"data/splits/{sc['split']}.json")
    split = load_split(args.split)
    if split.name != sc["split"]:
        raise PseudosupError(f"{args.split}: split '{split.name}', but the params name '{sc['split']}'")
    if split.dataset != args.dataset:
        raise PseudosupError(f"{args.split}: split of dataset '{split.dataset}', not '{args.dataset}'")
    from ..provenance import check_split_items

    check_split_items(split, args.split, n, f"dataset '{args.dataset}' has {n} items here")
    return split.part(sc["part"]), f"{split.name}/{sc['part']}"
