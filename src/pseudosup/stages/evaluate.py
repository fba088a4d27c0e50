"""Score a ranking of the database for every query of the split.

With --model: Hamming ranking of the model's codes. With --euclidean: Euclidean ranking
of the real-valued features (the ceiling the hashing methods are compared with); with
--bow as well (sift-bow features), also cosine ranking of the sparse TF-IDF bag of words
through the inverted index, stored under `cosine_bow` (with the fraction of zero-score
pairs, which tie). Tie rule, for Hamming and real-valued rankings alike: params
`evaluation.tie_rule` (see pseudosup.evaluation.ranking, which states each metric's
protocol and tie rule).

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
        from .train import load_model, model_inputs
        model, meta = load_model(args.model)
        P.check_model(args.model, meta, args.features, fmeta, split, args.split)
    rel = relevance_of(split, args, X, q, db, cfg, fmeta)
    out = {"dataset": fmeta["dataset"], **P.split_record(split, args.split), "relevance": split.relevance,
           "feature": fmeta["feature"], "tie_rule": cfg["tie_rule"], "queries": int(len(q)),
           "database": int(len(db))}
    if args.euclidean:
        out.update(method="euclidean", bits=None)
        out.update(_euclidean_metrics(np.asarray(X[q]), np.asarray(X[db]), rel, split, cfg))
        for path in args.bow:
            out["cosine_bow"] = _cosine_bow_metrics(path, len(X), q, db, rel, split, cfg)
    else:
        Xq, Xdb = model_inputs(model, meta, args, X, q, db)
        qc, dbc = model.encode(Xq), model.encode(Xdb)
        out.update(method=meta["method"], bits=meta["bits"])
        out.update(_hamming_metrics(qc, dbc, model.bits, rel, split, cfg, args.threads))
    out.update(P.stamp(args.features, args.split, args.model, *args.bow, args.raw))
    write_json(args.out, out)
    log.info("%s %s: mAP %.4f%s", out["feature"], out["method"], out["map"],
             f", NDCG@{cfg['ndcg_at']} {out['ndcg']:.4f}" if "ndcg" in out else "")


def relevance_of(split, args, X, q, db, cfg, fmeta=None):
    """The relevance object of the split (see the module docstring); with `fmeta`, the
    features are checked to have one row per item of the dataset's labels."""
    import numpy as np

    from ..data import registry
    from ..evaluation import ranking as R
    from ..io import PseudosupError
    from ..provenance import check_item_count

    ds = registry.get(args.dataset)
    if split.relevance in ("class", "multilabel"):
        labels = np.asarray(ds.labels(args.raw))
        if fmeta is not None:
            check_item_count(args.features, fmeta, len(labels), f"labels in {args.raw}")
    if split.relevance == "class":
        return R.ClassRelevance(labels[q], labels[db])
    if split.relevance == "multilabel":
        if labels.ndim != 2:
            raise PseudosupError(f"{args.split}: relevance 'multilabel' needs multi-hot labels (n, L); dataset "
                                 f"'{args.dataset}' gives shape {labels.shape}")
        cols = (getattr(split, "extra", None) or {}).get("label_columns")
        if cols is not None:
            labels = labels[:, np.asarray(cols)]
        return R.MultiLabelRelevance(labels[q], labels[db])
    if fmeta is not None:
        check_item_count(args.features, fmeta, ds.num_items(args.raw), f"items in {args.raw}")
    k = int(cfg["groundtruth_k"])
    try:
        gt = np.asarray(ds.groundtruth(args.raw))
    except PseudosupError:
        gt = None
    if gt is None or gt.ndim != 2:
        return R.ListRelevance(R.euclidean_ground_truth(X[q], X[db], k, threads=args.threads), len(db))
    if gt.shape[1] < k:
        raise PseudosupError(f"evaluation.groundtruth_k = {k} but the ground-truth file of '{args.dataset}' has "
                             f"only {gt.shape[1]} neighbours per query; use at most {gt.shape[1]}")
    if len(gt) != len(q):
        raise PseudosupError(f"{args.split}: {len(q)} queries but the ground truth of '{args.dataset}' has "
                             f"{len(gt)} rows")
    return R.ListRelevance(gt[:, :k], len(db))


def _map_cutoff(split, cfg):
    extra = getattr(split, "extra", None) or {}
    return extra.get("map_at") or cfg.get("map_at")


def _hamming_metrics(qc, dbc, bits, rel, split, cfg, threads) -> dict:
    from ..evaluation import ranking as R

    rule, r = cfg["tie_rule"], cfg["hamming_radius"]
    graded = isinstance(rel, R.MultiLabelRelevance)
    counts = R.level_histograms(qc, dbc, bits, rel, threads) if graded else None
    if graded:
        total, hits = counts.sum(axis=2), counts[:, :, 1:].sum(axis=2)
    else:
        total, hits = R.hamming_histograms(qc, dbc, bits, rel, cfg["query_batch"], threads)
    out = _binary_metrics(qc, dbc, total, hits, rel, split, cfg, threads)
    precision, recall = R.radius_curves(total, hits)
    out.update({"precision_radius": float(R.precision_within_radius(total, hits, r).mean()),
                "recall_radius": float(recall[min(r, bits)]), "radius": r,
                "pr_curve": {"precision": precision.round(6).tolist(), "recall": recall.round(6).tolist()}})
    if graded:
        ks = _graded_ks(cfg)
        g = R.hamming_graded_by_index(qc, dbc, rel, cfg["query_batch"], **ks) if rule == "index" else \
            R.graded_metrics(counts, rule=rule, **ks)
        out.update(_graded_out(g, ks))
    return out


def _binary_metrics(qc, dbc, total, hits, rel, split, cfg, threads) -> dict:
    from ..evaluation import ranking as R

    k, rule, k_map = cfg["precision_at"], cfg["tie_rule"], _map_cutoff(split, cfg)
    curve_at = list(cfg["precision_curve_at"])
    if rule == "index":
        ap, pk = R.hamming_ranking_by_index(qc, dbc, rel, k, cfg["query_batch"], threads)
        curve = [float(R.hamming_ranking_by_index(qc, dbc, rel, n, cfg["query_batch"], threads)[1].mean())
                 for n in curve_at]
        m_at = _map_at_by_index(qc, dbc, rel, k_map, cfg) if k_map else None
    else:
        ap = R.ap_from_histograms(total, hits, rule)
        pk = R.precision_at_k_from_histograms(total, hits, k, rule)
        curve = R.precision_curve(total, hits, curve_at, rule).tolist()
        m_at = float(R.map_at_k(total, hits, int(k_map), rule).mean()) if k_map else None
    out = {"map": float(ap.mean()), "precision_at_k": float(pk.mean()), "k": k,
           "precision_curve": {"n": curve_at, "precision": [round(float(c), 6) for c in curve]}}
    if m_at is not None:
        out.update(map_at_k=m_at, map_at=int(k_map))
    return out


def _map_at_by_index(qc, dbc, rel, k_map, cfg) -> float:
    import numpy as np

    from ..evaluation import ranking as R
    from ..methods.codes import hamming, to_words

    qw, dbw = to_words(qc), to_words(dbc)
    vals = []
    for q0 in range(0, len(qw), cfg["query_batch"]):
        q1 = min(q0 + cfg["query_batch"], len(qw))
        order = np.argsort(hamming(qw[q0:q1], dbw), axis=1, kind="stable")
        ranked = np.take_along_axis(rel.mask(q0, q1), order, axis=1)
        vals.append(R.ranked_metrics(ranked, 1, int(k_map))["map_at_k"])
    return float(np.concatenate(vals).mean())


def _graded_ks(cfg) -> dict:
    return {"k_ndcg": cfg["ndcg_at"], "k_acg": cfg["acg_at"], "k_wap": cfg["wap_at"],
            "k_precision": cfg["multilabel_precision_at"]}


def _graded_out(g, ks) -> dict:
    return {"ndcg": float(g["ndcg"].mean()), "acg": float(g["acg"].mean()), "wap": float(g["wap"].mean()),
            "precision_top": float(g["precision"].mean()),
            "graded_at": {"ndcg": ks["k_ndcg"], "acg": ks["k_acg"], "wap": ks["k_wap"], "precision": ks["k_precision"]}}


def _euclidean_metrics(Xq, Xdb, rel, split, cfg) -> dict:
    import numpy as np

    from ..evaluation import ranking as R

    db = np.ascontiguousarray(Xdb, dtype=np.float32)
    db_sq = (db ** 2).sum(1)
    q = np.ascontiguousarray(Xq, dtype=np.float32)
    return _distance_metrics(lambda a, b: R.squared_l2(q[a:b], db, db_sq), len(q), rel, split, cfg)


def _cosine_bow_metrics(path, n_items, q, db, rel, split, cfg) -> dict:
    """Cosine ranking of the TF-IDF bag of words through the inverted index."""
    from ..features.sparse import InvertedIndex
    from ..io import PseudosupError
    from ..mining.features_io import load_sparse

    G, _ = load_sparse(path)
    if G.shape[0] != n_items:
        raise PseudosupError(f"{path} has {G.shape[0]} rows but the dense features have {n_items}: not the same "
                             "items; rerun the sift-bow features stage")
    index, Gq = InvertedIndex(G[db]), G[q]
    zero, seen = [0], set()

    def dist(a, b):
        s = index.scores(Gq[a:b])
        if a not in seen:  # some metrics rank each block twice; count each pair once
            seen.add(a)
            zero[0] += int((s <= 0).sum())
        return -s

    out = _distance_metrics(dist, len(q), rel, split, cfg)
    out.update(ranking="cosine of L2-normalised TF-IDF, inverted index", n_words=int(G.shape[1]),
               nnz_per_item=round(float(G.nnz / max(1, G.shape[0])), 2),
               zero_score_fraction=round(zero[0] / max(1, len(q) * len(db)), 6))
    return out


def _distance_metrics(dist, nq, rel, split, cfg) -> dict:
    """mAP, precision@K (and mAP@K, or the graded metrics) of the ranking by `dist(q0, q1)`.
    Ties (equal distances: duplicates, the zero similarities of a sparse bag of words)
    follow `evaluation.tie_rule`, as for Hamming ranking; the graded multi-label
    metrics break them by database index."""
    from ..evaluation import ranking as R

    k, k_map = cfg["precision_at"], _map_cutoff(split, cfg)
    graded = isinstance(rel, R.MultiLabelRelevance)
    m = R.tie_aware_metrics_by_distance(dist, nq, rel, k, cfg["tie_rule"], cfg["query_batch"],
                                        None if graded else k_map)
    out = {"map": float(m["ap"].mean()), "precision_at_k": float(m["precision_at_k"].mean()), "k": k}
    if graded:
        ks = _graded_ks(cfg)
        out.update(_graded_out(R.graded_by_distance(dist, nq, rel, cfg["query_batch"], **ks), ks))
    elif k_map:
        out.update(map_at_k=float(m["ap_at_k"].mean()), map_at=int(k_map))
    return out
