"""Fit a hashing method on the split's training items; save a self-describing model.

The model file (.npz) holds the method, its params, the code length, the arrays that
define the hash function (mean, projections, network weights), what it encodes
(`encodes`: features or images), the training set and the code version;
pseudosup.methods.models.load_model rebuilds any registered hasher from it.

Supervised hashers (DSRH) also read the training items' labels (--dataset/--raw);
image hashers (dsrh_cnn) read the images of the dataset instead of --features (the
features file still names the items' feature space for the record). Everything that
can be checked is checked before training starts: the features against their sidecar
(sha256, dataset, one row per item) and the split (same dataset, indices in range), the
code length, the reference hasher of LDPH, more bits than feature dimensions where PCA
is needed, NaN or constant feature columns, an empty training split. The model records
the dataset, the split (name, sha256), the sha256 of its inputs and the machine.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, params_of, set_threads

HELP = "fit a hashing method and save the model"
ALLOWED_BITS = (8, 16, 24, 32, 48, 64, 96, 128, 256)


def add_arguments(p) -> None:
    add_params_args(p, "seed, methods.<method>")
    add_threads_arg(p)
    p.add_argument("--method", required=True, help="name in params `methods`")
    p.add_argument("--bits", type=int, required=True, help=f"code length, one of {list(ALLOWED_BITS)}")
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--dataset", default=None, help="dataset name (labels/images for supervised or image hashers)")
    p.add_argument("--raw", type=Path, default=None, help="raw directory of the dataset")
    p.add_argument("--out", type=Path, required=True, help="model file (.npz)")


def run(args) -> None:
    import numpy as np

    from .. import code_version
    from .. import provenance as P
    from ..data.splits import load_split
    from ..io import load_array, save_npz
    from ..log import log

    set_threads(args.threads)
    params = params_of(args)
    cfg = params.get_key(f"methods.{args.method}")
    seed = params.get_key("seed")
    cls = check_method(args, cfg)
    needs = _needs(cfg["hasher"])
    split = load_split(args.split)
    train = split.part("train")
    X, fmeta = load_array(args.features)
    P.check_features(args.features, fmeta, args.dataset)
    P.check_split(split, args.split, fmeta, args.features)
    hasher = make_hasher(cls, args.bits, cfg, seed, args.threads)
    if needs.torch:  # torch models: the job's threads, no more
        import torch
        torch.set_num_threads(args.threads)
    inputs = training_inputs(hasher, args, X, train)
    labels = training_labels(hasher, args, train)
    log.info("fitting %s (%s) with %d bits on %d items", args.method, cfg["hasher"], args.bits, len(train))
    hasher.fit(inputs, labels) if labels is not None else hasher.fit(inputs)
    meta = {"method": args.method, "hasher": cfg["hasher"], "params": cfg, "bits": args.bits, "seed": seed,
            "dataset": fmeta["dataset"], "feature": fmeta["feature"], "dim": int(X.shape[1]),
            **P.split_record(split, args.split), "encodes": needs.inputs,
            "train_items": int(len(train)), "code_version": code_version(),
            # the raw data is an input only of hashers that read it (labels or images)
            **P.stamp(args.features, args.split, args.raw if needs.reads_dataset else None)}
    if getattr(hasher, "history", None):
        meta["training_history"] = hasher.history
    save_npz(args.out, meta, **{k: np.asarray(v) for k, v in hasher.arrays().items()})


def check_method(args, cfg):
    """The method's own settings, before any data is read; the hasher class."""
    from ..io import PseudosupError
    from ..methods import registry

    if args.bits not in ALLOWED_BITS:
        raise PseudosupError(f"--bits {args.bits} (experiments.<name>.bits): not one of {list(ALLOWED_BITS)}")
    cls = registry.get(cfg["hasher"])
    if "reference" in cfg:
        try:
            registry.get(cfg["reference"])
        except PseudosupError as e:
            raise PseudosupError(f"methods.{args.method}.reference: {e}") from None
    return cls


def make_hasher(cls, bits: int, cfg: dict, seed: int, threads: int):
    """The hasher; one whose registry entry says its constructor takes `threads` (the
    torch heads and ldph_nn; sdc_rnn and ldph_nn search their training set's neighbours
    with faiss) gets the job's thread count (Snakemake's `threads`), the others run as
    constructed anywhere."""
    from ..methods import registry

    if registry.entry(cls.name).threads:
        return cls(bits, cfg, seed, threads=threads)
    return cls(bits, cfg, seed)


def _needs(hasher: str):
    """What hasher `hasher` needs for training (its methods/registry.py entry)."""
    from ..methods import registry

    return registry.entry(hasher)


def training_inputs(hasher, args, X, train):
    """The training items' features (checked), or their images for image hashers."""
    import numpy as np

    from ..io import PseudosupError

    if len(train) == 0:
        raise PseudosupError(f"{args.split}: the 'train' part is empty; nothing to fit {args.method} on")
    needs = _needs(hasher.name)
    if needs.inputs == "images":
        return dataset_of(args).images(args.raw)[train]
    Xt = np.asarray(X[train], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(Xt).all(axis=0))
    if len(bad):
        raise PseudosupError(f"{args.features}: NaN or infinite values in feature columns {bad[:10].tolist()} "
                             "of the training items; fix the feature stage")
    varying = int((Xt.max(axis=0) > Xt.min(axis=0)).sum()) if len(Xt) else 0
    if args.bits > Xt.shape[1] and needs.pca:
        raise PseudosupError(f"{args.features}: {args.bits} bits need PCA to {args.bits} dimensions but the "
                             f"features have only {Xt.shape[1]}; use at most {Xt.shape[1]} bits")
    if args.bits > varying and needs.zscore:
        # LDPH z-scores its PCA directions: a direction without variance cannot be scaled
        raise PseudosupError(f"{args.features}: {args.bits} bits need {args.bits} varying PCA directions but only "
                             f"{varying} of the {Xt.shape[1]} feature columns vary on the training items "
                             f"(the others are constant); use at most {varying} bits for {args.method}")
    if varying < Xt.shape[1]:
        from ..log import log
        log.warning("%s: %d of %d feature columns are constant on the training items", args.features,
                    Xt.shape[1] - varying, Xt.shape[1])
    return Xt


def training_labels(hasher, args, train):
    """The training items' labels for supervised hashers, else None."""
    return dataset_of(args).labels(args.raw)[train] if _needs(hasher.name).supervised else None


def dataset_of(args):
    from ..data import registry as data_registry
    from ..io import PseudosupError

    if args.dataset is None or args.raw is None:
        raise PseudosupError(f"method {args.method}: this hasher needs the dataset's labels or images; "
                             "pass --dataset and --raw (the train rule does)")
    if not args.raw.is_dir():
        raise PseudosupError(f"--raw {args.raw}: no such directory; method {args.method} reads the labels or "
                             f"images of {args.dataset} from it (build it: snakemake --cores 1 {args.raw})")
    return data_registry.get(args.dataset)
