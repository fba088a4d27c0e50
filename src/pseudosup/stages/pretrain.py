"""Pre-train the small CNN by classification on one part of a split.

The part (e.g. `pretrain` of fmnist-q1k: test images that are not queries) must be
disjoint from the split's queries and database; this is checked. The checkpoint is
self-describing: architecture, params, class list, history, code version, the sha256
of its weights (checked when the features stage loads it), its inputs and the machine.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, params_of, set_threads

HELP = "pre-train the small CNN feature extractor (classification)"


def add_arguments(p) -> None:
    add_params_args(p, "seed, features.<feature>")
    add_threads_arg(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True, help="the dataset's raw directory")
    p.add_argument("--split", type=Path, required=True, help="split file holding the pre-training part")
    p.add_argument("--feature", required=True, help="name of the feature in params `features`")
    p.add_argument("--out", type=Path, required=True, help="checkpoint (.pt)")


def run(args) -> None:
    import numpy as np
    import torch

    from .. import code_version
    from .. import provenance as P
    from ..data import registry
    from ..data.splits import load_split
    from ..device import describe
    from ..features import smallcnn
    from ..io import PseudosupError, atomic_path
    from ..log import log

    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    params = params_of(args)
    feat = params.get_key(f"features.{args.feature}")
    cfg, seed = feat["pretrain"], params.get_key("seed")
    split = load_split(args.split)
    if split.dataset != args.dataset:
        raise PseudosupError(f"{args.split}: split of dataset '{split.dataset}', not '{args.dataset}'")
    part = split.part(cfg["part"])
    for other in ("queries", "database"):
        overlap = np.intersect1d(part, split.parts.get(other, []))
        if len(overlap):
            raise PseudosupError(f"features.{args.feature}.pretrain.part '{cfg['part']}' shares {len(overlap)} "
                                 f"items with the {other} of {split.name}; pre-training must be disjoint")
    ds = registry.get(args.dataset)
    images, labels = ds.images(args.raw), ds.labels(args.raw)
    P.check_split_items(split, args.split, len(labels), f"dataset '{args.dataset}' has {len(labels)} items here")
    log.info("pre-training on %d items of %s/%s", len(part), split.name, cfg["part"])
    model, history = smallcnn.pretrain(images[part], labels[part], cfg, seed)
    classes = np.unique(labels[part])
    q = split.part("queries")
    q_acc = smallcnn.accuracy(model, images[q], np.searchsorted(classes, labels[q]))
    log.info("accuracy on the %d queries (diagnostic, not used for training): %.4f", len(q), q_acc)
    meta = {"kind": "small-cnn", "feature": args.feature, "dataset": args.dataset, "split": split.name,
            "part": cfg["part"], "in_channels": 1 if images.ndim == 3 else images.shape[-1],
            "n_classes": int(len(classes)), "classes": classes.tolist(), "config": cfg, "seed": seed,
            "history": history, "query_accuracy": q_acc, "code_version": code_version(),
            # where the weights were actually trained (read off the model, not assumed)
            "device": describe(next(model.parameters()).device),
            **P.split_record(split, args.split), **P.stamp(args.raw, args.split)}
    state = model.state_dict()
    meta["state_sha256"] = P.state_sha256(state)  # torch.load checks no checksum: features does
    with atomic_path(args.out) as tmp:
        torch.save({"meta": meta, "state_dict": state}, tmp)

