"""Fine-tune the CNN of a feature with complementary supervision, then re-extract.

The CNN (backbone, weights, pooling, image size: params `features.<feature>`, an
extractor `cnn` with `resize: square`) is fine-tuned on mined pairs (--pairs, e.g.
from `pseudosup mine-cross`: reversible in SIFT space) with negatives from far
neighbours in its own pretrained space, plus the drift term lambda |f(I) - f0(I)|^2
(params `finetune`; see pseudosup.methods.finetune). Only the last
`finetune.trainable_blocks` modules are trained, on cached activations of the frozen
layers. Outputs: a self-describing checkpoint, the fine-tuned descriptors of every
item (.npy + sidecar, same layout as the features stage) and the history (.json:
loss terms per epoch and, with the --task options, mAP per epoch; epoch 0 = the
pretrained network); all three record the inputs' sha256 and the machine. The pairs
must be of --dataset and index its items; the split too.
"""

from __future__ import annotations

from pathlib import Path

from ..methods.cie_task import add_task_args
from .common import add_params_args, add_threads_arg, params_of, set_threads, weights_file

HELP = "fine-tune a CNN on mined pairs (complementary supervision) and re-extract its features"


def add_arguments(p) -> None:
    add_params_args(p, "finetune, features.<feature>, seed")
    add_threads_arg(p)
    p.add_argument("--feature", required=True, help="the CNN feature to fine-tune (name in params `features`)")
    p.add_argument("--pairs", type=Path, required=True, help="mined pairs (.npz with `item_ids`)")
    p.add_argument("--checkpoint", type=Path, required=True, help="output checkpoint (.pt)")
    p.add_argument("--features-out", type=Path, required=True, help="fine-tuned descriptors of every item (.npy)")
    p.add_argument("--history", type=Path, required=True, help="loss / mAP per epoch (.json)")
    add_task_args(p)


def run(args) -> None:
    import numpy as np
    import torch

    from .. import code_version
    from .. import provenance as P
    from ..data import instance_bench, registry  # noqa: F401 (registers copydays-style-synth)
    from ..features import cnn
    from ..io import PseudosupError, load_npz, save_array, write_json
    from ..log import log
    from ..methods import finetune as FT
    from ..methods.cie_task import TaskSource, build_task, epoch_scorer, task_record
    from ..mining.knn import knn_graph

    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    params = params_of(args)
    cfg, fcfg, seed = finetune_settings(params), params.get_key(f"features.{args.feature}"), params.get_key("seed")
    s = FT.FinetuneSettings.from_params(cfg, seed)
    if fcfg.get("extractor") != "cnn" or fcfg.get("resize", "square") != "square":
        raise PseudosupError(f"features.{args.feature}: fine-tuning needs a `cnn` extractor with resize: square "
                             f"(got extractor {fcfg.get('extractor')!r}, resize {fcfg.get('resize')!r})")
    if fcfg.get("whitening") or tuple(fcfg.get("scales", (1.0,))) != (1.0,):
        raise PseudosupError(f"features.{args.feature}: fine-tuning supports single-scale, unwhitened features")
    pmeta, parr = load_npz(args.pairs)
    if "item_ids" not in parr:
        raise PseudosupError(f"{args.pairs}: no `item_ids` array; give pairs from `pseudosup mine` or `mine-cross`")
    ds = registry.get(args.dataset) if args.dataset else None
    if ds is None or args.raw is None:
        raise PseudosupError("fine-tuning reads the images: give --dataset and --raw")
    P.check_same_dataset({args.pairs: pmeta}, args.dataset)
    source = ds.image_source(args.raw)
    n = len(source)
    pairs = FT.check_pairs(parr["item_ids"], n)  # before the expensive work
    task_source = TaskSource.from_args(args)
    db, task = build_task(task_source, n, args.dataset)
    if not np.isin(pairs, db).all():
        raise PseudosupError(f"{args.pairs}: pairs reference items outside the indexed database "
                             f"({len(db)} items); mine them on the same split")

    bb = cnn.load_backbone(fcfg["backbone"], fcfg["weights"], seed)
    prefix, head = FT.split_trunk(bb.trunk, s.trainable_blocks)
    acts, report = FT.prefix_activations(source, prefix, bb.normalize, fcfg["image_size"], fcfg["batch_size"],
                                         fcfg.get("min_side", 32))
    f0 = FT.describe(head, acts, fcfg["pooling"], fcfg.get("gem_p", 3.0))
    nbrs = _neighbour_lists(f0, db, s, n, knn_graph, args.threads)
    callback = epoch_scorer(task) if task is not None else None
    history = FT.finetune(head, acts, pairs, nbrs, s, fcfg["pooling"], fcfg.get("gem_p", 3.0), callback)
    F = FT.describe(head, acts, fcfg["pooling"], fcfg.get("gem_p", 3.0))
    meta = {"dataset": args.dataset, "feature": f"{args.feature}-finetuned", "extractor": "cnn-finetuned",
            "base_feature": args.feature, "params": fcfg, "finetune": FT.settings_meta(s),
            "pairs": {"file": str(args.pairs), "count": int(len(pairs)), "mode": pmeta.get("mode"),
                      "source": pmeta.get("source")},
            "n": int(n), "dim": int(F.shape[1]), "items": P.items_record(args.dataset, n, source.ids),
            **task_record(task_source), "skipped": report["skipped"], "code_version": code_version()}
    stamp = P.stamp(args.pairs, args.split, args.raw, weights_file(fcfg))
    settings = {k: v for k, v in meta.items() if k not in ("skipped", "items")}
    FT.save_checkpoint(args.checkpoint, bb.trunk, {"backbone": fcfg["backbone"], "weights_source": bb.source,
                                                   **settings, "history": history, **stamp,
                                                   "state_sha256": P.state_sha256(bb.trunk.state_dict())})
    write_json(args.history, {"settings": settings, "history": history, **stamp})
    save_array(args.features_out, F, {**meta, "checkpoint": str(args.checkpoint), **stamp})
    if task is not None:
        log.info("mAP %.4f pretrained -> %.4f fine-tuned", history[0]["map"], history[-1]["map"])


def finetune_settings(params) -> dict:
    """params `finetune`, updated by the experiment's `cross.finetune` overrides when the
    rule declared them (e.g. one epoch on CIFAR-10)."""
    cfg = dict(params.get_key("finetune"))
    for key in params:
        if key.startswith("experiments.") and key.endswith(".cross.finetune"):
            cfg.update(params.get_key(key) or {})
    return cfg


def _neighbour_lists(f0, db, s, n, knn_graph, threads):
    """Pretrained-CNN neighbour lists of the database items, as item indices (row = item)."""
    import numpy as np

    length = min(len(db) - 1, s.neg_max_rank or len(db) - 1)
    _, idx = knn_graph(f0[db], length, "l2", 4096, threads)
    out = np.full((n, length), -1, np.int64)
    out[db] = db[idx]
    return out

