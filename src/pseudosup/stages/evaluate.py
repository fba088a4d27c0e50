"""Score a ranking of the database for every query of the split.

With --model: Hamming ranking of the model's codes. With --euclidean: Euclidean ranking
of the real-valued features (the ceiling the hashing methods are compared with); with
--bow as well (sift-bow features), also cosine ranking of the sparse TF-IDF bag of words
through the inverted index, stored under `cosine_bow` (with the fraction of zero-score
pairs, which tie). Tie rule, for Hamming and real-valued rankings alike: params
`evaluation.tie_rule` (see pseudosup.evaluation.ranking, which states each metric's
protocol and tie rule). The metrics are computed by pseudosup.evaluation.scoring; this
stage reads and checks the inputs and writes the run file.

Before any scoring, the inputs are checked (pseudosup.provenance): the features against
their sidecar (sha256, shape) and the dataset given, one row per item of the dataset
(its labels), the split of the same dataset with indices in range, finite query and
database rows, the model trained on these very features and this split file, the bag
of words against the sha256 its feature's sidecar recorded. The run file records the
dataset, the split (name and sha256), the tie rule, the feature, the sha256 of every
input and the machine.

Relevance, from the split file:
- class: same label. Metrics: mAP over the whole database, mAP@K (`evaluation.map_at`,
  when set), precision@K (`evaluation.precision_at`), precision/recall within Hamming
  radius r, the precision-recall curve over all radii, the precision@N curve
  (`evaluation.precision_curve_at`).
- groundtruth: the query's top-K Euclidean neighbours in the database, K =
  `evaluation.groundtruth_k` (100 as the LDPH authors): the dataset's ground-truth file
  when it has one (its first K columns), otherwise computed exactly from the features
  (faiss, ties by database index). Same metrics as class.
- multilabel: level = number of shared labels, relevant = level >= 1. DSRH's metrics:
  NDCG@`ndcg_at`, ACG@`acg_at`, weighted mAP@`wap_at`, precision@`multilabel_precision_at`,
  plus mAP (whole ranking), mAP@K (the split's `map_at` or `evaluation.map_at`) and the
  radius curves.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, evaluation_settings, params_of, set_threads

HELP = "evaluate a hashing model (or Euclidean ranking) on a split"
ALLOWED_RELEVANCE = ("class", "groundtruth", "multilabel")


def add_arguments(p) -> None:
    add_params_args(p, "evaluation")
    add_threads_arg(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="hashing model file (.npz)")
    src.add_argument("--euclidean", action="store_true", help="rank by Euclidean distance of the features")
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True, help="raw directory (labels, ground truth, images)")
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--bow", type=Path, nargs="*", default=[],
                   help="with --euclidean: the feature's sparse bag of words (.bow.npz), also ranked by cosine")
    p.add_argument("--out", type=Path, required=True, help="metrics of this run (.json)")


def run(args) -> None:
    import numpy as np

    from .. import provenance as P
    from ..data.splits import load_split
    from ..evaluation import scoring as S
    from ..io import PseudosupError, load_array, write_json
    from ..log import log

    set_threads(args.threads)
    cfg = evaluation_settings(params_of(args))
    split = load_split(args.split)
    if split.relevance not in ALLOWED_RELEVANCE:
        raise PseudosupError(f"{args.split}: relevance '{split.relevance}' is not scored by this stage "
                             f"(supported: {list(ALLOWED_RELEVANCE)}); instance benchmarks use their own protocol")
    if args.bow and not args.euclidean:
        raise PseudosupError("--bow is scored only with --euclidean (real-valued rankings of the features)")
    X, fmeta = load_array(args.features)
    for path in args.bow:
        P.check_bow(path)
    P.check_features(args.features, fmeta, args.dataset)
    P.check_split(split, args.split, fmeta, args.features)
    q, db = split.part("queries"), split.part("database")
    P.check_finite(X, q, args.features, f"a query of {split.name}")
    P.check_finite(X, db, args.features, f"a database item of {split.name}")
    if not args.euclidean:
        from ..methods.models import load_model
        model, meta = load_model(args.model)
        P.check_model(args.model, meta, args.features, fmeta, split, args.split)
    rel = relevance_of(split, args, X, q, db, cfg, fmeta)
    k_map = S.map_cutoff(getattr(split, "extra", None), cfg)
    out = {"dataset": fmeta["dataset"], **P.split_record(split, args.split), "relevance": split.relevance,
           "feature": fmeta["feature"], "tie_rule": cfg["tie_rule"], "queries": int(len(q)),
           "database": int(len(db))}
    if args.euclidean:
        out.update(method="euclidean", bits=None)
        out.update(S.euclidean_metrics(np.asarray(X[q]), np.asarray(X[db]), rel, cfg, k_map))
        for path in args.bow:
            out["cosine_bow"] = S.cosine_bow_metrics(load_bow_rows(path, len(X)), q, db, rel, cfg, k_map)
    else:
        from ..methods.models import model_inputs
        Xq, Xdb = model_inputs(meta, X, q, db, images=lambda: _dataset(args).images(args.raw),
                               model=args.model, features=args.features)
        qc, dbc = model.encode(Xq), model.encode(Xdb)
        # the ranking is one compiled pass without a progress bar: say what it scans
        log.info("encoded; Hamming ranking of %d queries against %d codes (%d bits, ties: %s)",
                 len(qc), len(dbc), model.bits, cfg["tie_rule"])
        out.update(method=meta["method"], bits=meta["bits"])
        out.update(S.hamming_metrics(qc, dbc, model.bits, rel, cfg, args.threads, k_map))
    out.update(P.stamp(args.features, args.split, args.model, *args.bow, args.raw))
    write_json(args.out, out)
    log.info("%s %s: mAP %.4f%s", out["feature"], out["method"], out["map"],
             f", NDCG@{cfg['ndcg_at']} {out['ndcg']:.4f}" if "ndcg" in out else "")


def _dataset(args):
    from ..data import registry

    return registry.get(args.dataset)


def relevance_of(split, args, X, q, db, cfg, fmeta=None):
    """The relevance object of the split (see the module docstring); with `fmeta`, the
    features are checked to have one row per item of the dataset's labels."""
    import numpy as np

    from ..evaluation import scoring as S
    from ..io import PseudosupError
    from ..provenance import check_item_count

    ds = _dataset(args)
    if split.relevance in ("class", "multilabel"):
        labels = np.asarray(ds.labels(args.raw))
        if fmeta is not None:
            check_item_count(args.features, fmeta, len(labels), f"labels in {args.raw}")
        cols = (getattr(split, "extra", None) or {}).get("label_columns")
        return S.relevance_from_labels(labels, q, db, split.relevance, cols, where=args.split, dataset=args.dataset)
    if fmeta is not None:
        check_item_count(args.features, fmeta, ds.num_items(args.raw), f"items in {args.raw}")
    try:
        gt = ds.groundtruth(args.raw)
    except PseudosupError:
        gt = None
    return S.relevance_from_groundtruth(gt, X[q], X[db], int(cfg["groundtruth_k"]), args.threads,
                                        where=args.split, dataset=args.dataset)


def load_bow_rows(path, n_items: int):
    """The TF-IDF rows of a .bow.npz, checked to be one per item of the dense features."""
    from ..io import PseudosupError
    from ..mining.features_io import load_sparse

    G, _ = load_sparse(path)
    if G.shape[0] != n_items:
        raise PseudosupError(f"{path} has {G.shape[0]} rows but the dense features have {n_items}: not the same "
                             "items; rerun the sift-bow features stage")
    return G
