"""Extract one feature for every item of a dataset: float32 .npy + JSON sidecar.

Rows follow the dataset's item order (splits index into it). The sidecar records
the extractor, its params, the weights it used, the code version, every item that was
skipped (zero row) or converted, with the reason, and the provenance (see
pseudosup.provenance): the .npy's sha256, the items in row order, the sha256 of the
inputs (raw manifest, backbone, fitted model, weights file) and the machine.

Extractors (params `features.<feature>.extractor`): vectors (a vector dataset's own
vectors, e.g. TEXMEX or scene, streamed), pixels, small-cnn (needs
--backbone), gist, sift-bow (needs --fitted from `pseudosup fit-features`; also
writes the sparse bag of words to --bow-out), cnn (torchvision backbones or the
bundled TFLite MobileNetV2; needs --fitted when it has `whitening`).
See docs/features.md.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, params_of, set_threads, weights_file

HELP = "extract features of every item of a dataset"


def add_arguments(p) -> None:
    add_params_args(p, "seed, features.<feature>")
    add_threads_arg(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True, help="the dataset's raw directory")
    p.add_argument("--feature", required=True, help="name in params `features`")
    p.add_argument("--backbone", type=Path, default=None, help="checkpoint of a pre-trained extractor (small-cnn)")
    p.add_argument("--fitted", type=Path, default=None,
                   help="fitted extractor model from `pseudosup fit-features` (sift-bow; cnn with whitening)")
    p.add_argument("--bow-out", type=Path, default=None,
                   help="sift-bow only: the sparse bag of words (.npz; default: <out stem>.bow.npz)")
    p.add_argument("--out", type=Path, required=True, help="output .npy (sidecar .json next to it)")


def bow_path(out: Path) -> Path:
    return out.with_name(out.name[:-len(out.suffix)] + ".bow.npz") if out.suffix else out.with_name(out.name + ".bow.npz")


def run(args) -> None:
    import numpy as np

    from .. import code_version
    from .. import provenance as P
    from ..data import registry
    from ..features import extractors
    from ..io import PseudosupError, file_sha256, save_array
    from ..log import log

    set_threads(args.threads)
    params = params_of(args)
    cfg = params.get_key(f"features.{args.feature}")
    seed = params.get_key("seed") if "seed" in args.keys else 0
    entry = extractors.entry(cfg["extractor"])
    ds = registry.get(args.dataset)
    meta = {"dataset": args.dataset, "feature": args.feature, "extractor": cfg["extractor"], "params": cfg,
            "skipped": [], "code_version": code_version(), "device": "cpu"}
    inputs = [args.raw, args.backbone, args.fitted, weights_file(cfg)]
    source, ids = _items(ds, args.raw, entry.reads)
    result = _extract(args, cfg, entry, source, seed)
    meta.update(result.meta)
    if result.stream:  # vector datasets: their own vectors, written as they are read
        from ..io import save_rows
        meta["n"], meta["dim"] = (int(v) for v in result.dense.shape)
        meta["items"] = P.items_record(args.dataset, meta["n"])
        save_rows(args.out, result.dense, {**meta, **P.stamp(*inputs)})
        log.info("wrote %s: %d x %d (the dataset's own vectors)", args.out, meta["n"], meta["dim"])
        return
    X = result.dense
    if not np.isfinite(X).all():
        raise PseudosupError(f"{args.feature}: extractor produced NaN/inf values; refusing to write {args.out}")
    meta["n"], meta["dim"] = int(X.shape[0]), int(X.shape[1])
    meta["items"] = P.items_record(args.dataset, meta["n"], ids)
    stamp = P.stamp(*inputs)
    if result.bow is not None:
        bow_out = args.bow_out or bow_path(args.out)
        meta["bow"] = str(bow_out)
        # the sparse file first: the .npy (the declared output) is written last
        extractors.save_bow(cfg, bow_out, result.bow,
                            {**{k: v for k, v in meta.items() if k not in ("skipped", "converted")}, **stamp})
        meta["bow_sha256"] = file_sha256(bow_out)
    save_array(args.out, X.astype(np.float32, copy=False), {**meta, **stamp})
    log.info("wrote %s: %d x %d (%d skipped)", args.out, *X.shape, len(meta.get("skipped", [])))


def _items(ds, raw, reads: str):
    """What the extractor reads (its registry entry's `reads`) and the items' ids."""
    if reads == "vectors":
        return ds.vectors(raw), None
    if reads == "images":
        return ds.images(raw), _array_ids(ds, raw)
    source = ds.image_source(raw)
    return source, source.ids


def _array_ids(ds, raw):
    """Item ids of a fixed-size dataset read with images(): None (the positions) when
    its image source is the default wrapper of images(), else the source's ids."""
    from ..data.registry import Dataset

    if type(ds).image_source is Dataset.image_source:
        return None
    return ds.image_source(raw).ids


def _extract(args, cfg, entry, source, seed):
    from ..features import extractors
    from ..io import PseudosupError, load_npz

    if entry.backbone and args.backbone is None:
        raise PseudosupError(f"features.{args.feature}: the {cfg['extractor']} extractor needs --backbone "
                             "(made by `pseudosup pretrain`)")
    fitted = None
    if extractors.needs_fit(cfg):
        if args.fitted is None:
            raise PseudosupError(f"features.{args.feature}: the {cfg['extractor']} extractor needs --fitted "
                                 "(made by `pseudosup fit-features`)")
        fitted = load_npz(args.fitted)
        _check_fitted(args, cfg, fitted[0])
    result = extractors.extract(cfg, source, fitted, args.threads, seed, args.backbone, args.dataset)
    if fitted is not None:
        result.meta["fitted_file"] = str(args.fitted)
    return result


def _check_fitted(args, cfg, fmeta) -> None:
    from ..io import PseudosupError

    def relevant(c):  # batching does not change the result
        return {k: v for k, v in c.items() if k not in ("batch_size", "workers")}

    if fmeta.get("params") is not None and relevant(fmeta["params"]) != relevant(cfg):
        raise PseudosupError(f"{args.fitted}: fitted with other params than features.{args.feature}; "
                             "rerun `pseudosup fit-features`")
    if fmeta.get("dataset") != args.dataset:
        raise PseudosupError(f"{args.fitted}: fitted on dataset '{fmeta['dataset']}', not '{args.dataset}'")
