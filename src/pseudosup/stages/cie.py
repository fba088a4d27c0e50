"""Collaborative index embedding (CIE) of a SIFT bag-of-words index and a CNN index.

Reads the sparse bag of words (`<feature>.bow.npz` of the sift-bow extractor) and the
dense CNN features (`.npy`) of the same dataset, runs `cie.iterations` alternating
embeddings over the indexed items (the split's database part, or every item), and
writes the embedded CNN index (.npy + sidecar: rows = those items, in order; `items`
names the split or protocol and the sha256 of the item indices) and the history
(.json: pairs found in each space, words per image, graph recall, seconds). Inputs are
checked first: both files of one dataset (and of --dataset), verified against their
sidecars, the split of that dataset, finite indexed rows.

With --task-* options it also scores every iteration on a retrieval protocol (a
diagnostic: labels / ground truth never influence the embedding): mAP of the CNN
index after t iterations, queries with their *original* CNN vectors (the online
setting) and, when the queries are database images, with their embedded vectors.
"""

from __future__ import annotations

from pathlib import Path

from ..methods.cie_task import add_task_args
from .common import add_params_args, add_threads_arg, params_of, set_threads

HELP = "collaborative index embedding of a SIFT bag-of-words and a CNN index"


def add_arguments(p) -> None:
    add_params_args(p, "cie, mining, seed")
    add_threads_arg(p)
    p.add_argument("--bow", type=Path, required=True, help="SIFT bag of words (.bow.npz)")
    p.add_argument("--cnn", type=Path, required=True, help="CNN features (.npy)")
    p.add_argument("--out", type=Path, required=True, help="embedded CNN index (.npy; sidecar .json)")
    p.add_argument("--history", type=Path, required=True, help="per-iteration statistics (.json)")
    add_task_args(p)


def run(args) -> None:
    from .. import code_version
    from .. import provenance as P
    from ..io import PseudosupError, save_array, write_json
    from ..log import log
    from ..methods import cie
    from ..methods.cie_task import TaskSource, build_task, iteration_scorer, task_record
    from ..mining.features_io import load_dense, load_sparse, rows
    from ..mining.knn import KnnSettings

    set_threads(args.threads)
    params = params_of(args)
    cfg, seed = params.get_key("cie"), params.get_key("seed")
    P.check_bow(args.bow)
    G, gmeta = load_sparse(args.bow)
    X, xmeta = load_dense(args.cnn)
    dataset = P.check_same_dataset({args.cnn: xmeta, args.bow: gmeta}, args.dataset)
    P.check_features(args.cnn, xmeta, dataset)
    if G.shape[0] != X.shape[0]:
        raise PseudosupError(f"{args.bow} has {G.shape[0]} rows and {args.cnn} {X.shape[0]}: "
                             "the two features must come from the same dataset (one row per item)")
    source = TaskSource.from_args(args)
    db, task = build_task(source, X.shape[0], dataset)
    P.check_finite(X, db, args.cnn, "an indexed item")
    settings = cie.CIESettings(**{k: v for k, v in cfg.items() if k in cie.CIESettings.__dataclass_fields__
                                  and k != "knn"}, knn=KnnSettings.from_params(params.get_key("mining"), seed))
    Gd, Xd = rows(G, db), rows(X, db)
    callback = iteration_scorer(task, G, X, db) if task is not None else None
    res = cie.embed(Gd, Xd, settings, args.threads, callback)
    meta = {"dataset": dataset, "feature": f"cie({xmeta['feature']}, {gmeta.get('feature', args.bow.stem)})",
            "method": "cie", "params": cfg, "rows": "database part of " + str(args.split) if args.split else "all items",
            "n": int(len(db)), "dim": int(Xd.shape[1]), "cnn": str(args.cnn), "bow": str(args.bow),
            "items": {"dataset": dataset, "count": int(len(db)), **task_record(source), "indices_sha256":
                      P.ids_sha256(db.tolist())},
            "bytes_per_image": cie.bytes_per_image("dense", len(db), dim=Xd.shape[1]), "code_version": code_version()}
    stamp = P.stamp(args.bow, args.cnn, args.split, args.raw)
    write_json(args.history, {"settings": meta, "history": res.history, **stamp})
    save_array(args.out, res.X, {**meta, **stamp})
    if task is not None:
        h = res.history
        log.info("mAP of the CNN index: %.4f before CIE, %.4f after %d iterations", h[0]["map_cie"],
                 h[-1]["map_cie"], len(h) - 1)
