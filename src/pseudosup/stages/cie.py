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


def add_task_args(p) -> None:
    """Which items are indexed and (optionally) how retrieval is scored."""
    p.add_argument("--dataset", default=None, help="dataset name (for the scoring protocol)")
    p.add_argument("--raw", type=Path, default=None, help="the dataset's raw directory")
    p.add_argument("--split", type=Path, default=None,
                   help="split file: index its database part, score its queries (class relevance)")
    p.add_argument("--protocol", default=None,
                   help="instance protocol of the dataset's ground truth (e.g. variants, multiview); "
                        "default: class labels of the split, or the dataset's own ground truth")


def build_task(args, n_items: int, dataset: str | None = None):
    """(database item indices, RetrievalTask or None) from --dataset/--raw/--split/--protocol,
    for inputs of `n_items` rows, one per item of `dataset` (their sidecars' dataset):
    the split must be of that dataset and the split / ground truth index only those rows."""
    import numpy as np

    from ..data import instance_bench, registry  # noqa: F401 (registers copydays-style-synth)
    from ..evaluation.protocols import RetrievalTask, task_from_groundtruth
    from ..io import PseudosupError
    from ..provenance import check_split_items

    rows = f"the inputs have {n_items} rows (one per item)"
    if args.split is not None:
        from ..data.splits import load_split

        split = load_split(args.split)
        for want in {dataset, args.dataset} - {None}:
            if split.dataset != want:
                raise PseudosupError(f"{args.split}: split of dataset '{split.dataset}', but the inputs are items "
                                     f"of '{want}'; use a split of '{want}'")
        check_split_items(split, args.split, n_items, rows)
        db = split.part("database")
        if args.dataset is None or args.raw is None:
            return db, None
        labels = registry.get(args.dataset).labels(args.raw)
        if len(labels) != n_items:
            raise PseudosupError(f"dataset '{args.dataset}' has {len(labels)} labelled items in {args.raw} but "
                                 f"{rows}; give inputs computed on this dataset")
        q = split.part("queries")
        return db, RetrievalTask(split.name, "class", q, db, query_labels=labels[q], db_labels=labels[db])
    db = np.arange(n_items, dtype=np.int64)
    if args.dataset is None or args.raw is None:
        if args.protocol:
            raise PseudosupError("--protocol needs --dataset and --raw")
        return db, None
    ds = registry.get(args.dataset)
    if ds.num_items(args.raw) != n_items:
        raise PseudosupError(f"dataset '{args.dataset}' has {ds.num_items(args.raw)} items in {args.raw} but {rows}; "
                             "give inputs computed on this dataset")
    gt = ds.groundtruth(args.raw, args.protocol) if args.protocol else ds.groundtruth(args.raw)
    parts = ds.parts(args.raw)
    if "database" in parts:
        db = np.arange(*parts["database"], dtype=np.int64)
    return db, task_from_groundtruth(f"{args.dataset}/{args.protocol or 'default'}", gt, db)


def task_record(args) -> dict:
    """What the indexed items / the protocol were, for the outputs' records."""
    from ..provenance import split_record

    if args.split is not None:
        from ..data.splits import load_split

        return split_record(load_split(args.split), args.split)
    return {"protocol": args.protocol}


def run(args) -> None:
    from .. import code_version
    from .. import provenance as P
    from ..io import PseudosupError, save_array, write_json
    from ..log import log
    from ..methods import cie
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
    db, task = build_task(args, X.shape[0], dataset)
    P.check_finite(X, db, args.cnn, "an indexed item")
    settings = cie.CIESettings(**{k: v for k, v in cfg.items() if k in cie.CIESettings.__dataclass_fields__
                                  and k != "knn"}, knn=KnnSettings.from_params(params.get_key("mining"), seed))
    Gd, Xd = rows(G, db), rows(X, db)
    callback = iteration_scorer(task, G, X, db) if task is not None else None
    res = cie.embed(Gd, Xd, settings, args.threads, callback)
    meta = {"dataset": dataset, "feature": f"cie({xmeta['feature']}, {gmeta.get('feature', args.bow.stem)})",
            "method": "cie", "params": cfg, "rows": "database part of " + str(args.split) if args.split else "all items",
            "n": int(len(db)), "dim": int(Xd.shape[1]), "cnn": str(args.cnn), "bow": str(args.bow),
            "items": {"dataset": dataset, "count": int(len(db)), **task_record(args), "indices_sha256":
                      P.ids_sha256(db.tolist())},
            "bytes_per_image": cie.bytes_per_image("dense", len(db), dim=Xd.shape[1]), "code_version": code_version()}
    stamp = P.stamp(args.bow, args.cnn, args.split, args.raw)
    write_json(args.history, {"settings": meta, "history": res.history, **stamp})
    save_array(args.out, res.X, {**meta, **stamp})
    if task is not None:
        h = res.history
        log.info("mAP of the CNN index: %.4f before CIE, %.4f after %d iterations", h[0]["map_cie"],
                 h[-1]["map_cie"], len(h) - 1)


def iteration_scorer(task, G, X, db):
    """Callback scoring the CNN index after each iteration (queries' original vectors;
    also their embedded vectors when they are database items) and the embedded BoW."""
    import numpy as np

    from ..methods.cie import normalise_dense
    from ..mining.features_io import rows

    q_cnn = normalise_dense(rows(X, task.queries))
    q_bow = rows(G, task.queries)
    in_db = task.query_pos >= 0

    def score(t, Xt, Gt):
        out = {"map_cie": task.evaluate(q_cnn @ Xt.T)[0]["map"],
               "map_sift_embedded": task.evaluate((q_bow @ Gt.T).toarray())[0]["map"]}
        if in_db.all():
            out["map_cie_embedded_queries"] = task.evaluate(Xt[task.query_pos] @ Xt.T)[0]["map"]
        return out
    return score
