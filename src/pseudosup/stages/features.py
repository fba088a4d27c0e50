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
    from ..io import PseudosupError, file_sha256, save_array
    from ..log import log

    set_threads(args.threads)
    params = params_of(args)
    cfg = params.get_key(f"features.{args.feature}")
    seed = params.get_key("seed") if "seed" in args.keys else 0
    ds = registry.get(args.dataset)
    meta = {"dataset": args.dataset, "feature": args.feature, "extractor": cfg["extractor"], "params": cfg,
            "skipped": [], "code_version": code_version(), "device": "cpu"}
    inputs = [args.raw, args.backbone, args.fitted, weights_file(cfg)]
    bow = None
    if cfg["extractor"] == "vectors":  # vector datasets: their own vectors, streamed
        from ..io import save_rows
        source = ds.vectors(args.raw)
        meta["n"], meta["dim"] = (int(v) for v in source.shape)
        meta["items"] = P.items_record(args.dataset, meta["n"])
        save_rows(args.out, source, {**meta, **P.stamp(*inputs)})
        log.info("wrote %s: %d x %d (the dataset's own vectors)", args.out, meta["n"], meta["dim"])
        return
    if cfg["extractor"] == "pixels":
        from ..features import pixels
        X = pixels.extract(ds.images(args.raw))
        ids = _array_ids(ds, args.raw)
    elif cfg["extractor"] == "small-cnn":
        X, meta["weights"] = _small_cnn(args, cfg, ds.images(args.raw))
        ids = _array_ids(ds, args.raw)
    else:
        source = ds.image_source(args.raw)
        X, bow = _image_extractor(args, cfg, source, seed, meta)
        ids = source.ids
    if not np.isfinite(X).all():
        raise PseudosupError(f"{args.feature}: extractor produced NaN/inf values; refusing to write {args.out}")
    meta["n"], meta["dim"] = int(X.shape[0]), int(X.shape[1])
    meta["items"] = P.items_record(args.dataset, meta["n"], ids)
    stamp = P.stamp(*inputs)
    if bow is not None:
        from ..features.bow import save_bow
        bow_out = args.bow_out or bow_path(args.out)
        meta["bow"] = str(bow_out)
        # the sparse file first: the .npy (the declared output) is written last
        save_bow(bow_out, bow[0], bow[1], {**{k: v for k, v in meta.items() if k not in ("skipped", "converted")},
                                           **stamp})
        meta["bow_sha256"] = file_sha256(bow_out)
    save_array(args.out, X.astype(np.float32, copy=False), {**meta, **stamp})
    log.info("wrote %s: %d x %d (%d skipped)", args.out, *X.shape, len(meta.get("skipped", [])))


def _array_ids(ds, raw):
    """Item ids of a fixed-size dataset read with images(): None (the positions) when
    its image source is the default wrapper of images(), else the source's ids."""
    from ..data.registry import Dataset

    if type(ds).image_source is Dataset.image_source:
        return None
    return ds.image_source(raw).ids


def _image_extractor(args, cfg, source, seed, meta):
    import torch

    from ..features import extractors
    from ..io import load_npz

    torch.set_num_threads(args.threads)
    fitted = None
    if extractors.needs_fit(cfg):
        if args.fitted is None:
            from ..io import PseudosupError
            raise PseudosupError(f"features.{args.feature}: the {cfg['extractor']} extractor needs --fitted "
                                 "(made by `pseudosup fit-features`)")
        fitted = load_npz(args.fitted)
        _check_fitted(args, cfg, fitted[0])
    result = extractors.extract(cfg, source, fitted, args.threads, seed)
    meta.update(result.meta)
    if fitted is not None:
        meta["fitted_file"] = str(args.fitted)
    return result.dense, result.bow


def _check_fitted(args, cfg, fmeta) -> None:
    from ..io import PseudosupError

    def relevant(c):  # batching does not change the result
        return {k: v for k, v in c.items() if k not in ("batch_size", "workers")}

    if fmeta.get("params") is not None and relevant(fmeta["params"]) != relevant(cfg):
        raise PseudosupError(f"{args.fitted}: fitted with other params than features.{args.feature}; "
                             "rerun `pseudosup fit-features`")
    if fmeta.get("dataset") != args.dataset:
        raise PseudosupError(f"{args.fitted}: fitted on dataset '{fmeta['dataset']}', not '{args.dataset}'")


def _check_backbone(args, m, state_dict) -> None:
    """The checkpoint's weights are those it was saved with, pre-trained on this dataset."""
    from ..io import PseudosupError
    from ..provenance import state_sha256

    if m.get("dataset") != args.dataset:
        raise PseudosupError(f"{args.backbone}: pre-trained on dataset '{m.get('dataset')}', not '{args.dataset}'")
    if m.get("state_sha256") != state_sha256(state_dict):
        raise PseudosupError(f"{args.backbone}: its weights differ from those it recorded when saved (file changed "
                             f"after it was written?); delete it and rerun `snakemake {args.backbone}`")


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
    _check_backbone(args, m, ckpt["state_dict"])
    model = smallcnn.SmallCNN(m["in_channels"], m["config"]["width"], m["config"]["dim"], m["n_classes"])
    model.load_state_dict(ckpt["state_dict"])
    X = smallcnn.extract(model, images, cfg["batch_size"])
    weights = {"checkpoint": str(args.backbone), "trained_on": f"{m['split']}/{m['part']}",
               "code_version": m["code_version"]}
    return X, weights
