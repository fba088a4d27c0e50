"""Score a ranking of the database for every query of the split.

With --model: Hamming ranking of the model's codes (mAP over the whole database,
precision@K, precision/recall within radius r, the precision-recall curve over all
radii). With --euclidean: Euclidean ranking of the real-valued features (the
ceiling the hashing methods are compared with). Tie rule: params
`evaluation.tie_rule` (see pseudosup.evaluation.ranking).
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, params_of, set_threads

HELP = "evaluate a hashing model (or Euclidean ranking) on a split"


def add_arguments(p) -> None:
    add_params_args(p, "evaluation")
    add_threads_arg(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="hashing model file (.npz)")
    src.add_argument("--euclidean", action="store_true", help="rank by Euclidean distance of the features")
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True, help="raw directory (labels)")
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="metrics of this run (.json)")


def run(args) -> None:
    import numpy as np

    from ..data import registry
    from ..data.splits import load_split
    from ..evaluation import ranking as R
    from ..io import PseudosupError, load_array, write_json
    from ..log import log

    set_threads(args.threads)
    cfg = params_of(args).get_key("evaluation")
    split = load_split(args.split)
    if split.relevance != "class":
        raise PseudosupError(f"{args.split}: relevance '{split.relevance}' is not supported by this stage")
    X, fmeta = load_array(args.features)
    q, db = split.part("queries"), split.part("database")
    labels = registry.get(args.dataset).labels(args.raw)
    rel = R.ClassRelevance(labels[q], labels[db])
    k = cfg["precision_at"]
    out = {"split": split.name, "feature": fmeta.get("feature"), "tie_rule": cfg["tie_rule"],
           "queries": int(len(q)), "database": int(len(db))}
    if args.euclidean:
        ap, pk = R.euclidean_metrics(np.asarray(X[q]), np.asarray(X[db]), rel, k, cfg["query_batch"])
        out.update(method="euclidean", bits=None, map=float(ap.mean()), precision_at_k=float(pk.mean()), k=k)
    else:
        from .train import load_model
        model, meta = load_model(args.model)
        if meta["dim"] != X.shape[1]:
            raise PseudosupError(f"{args.model}: trained on {meta['dim']}-d features, {args.features} has {X.shape[1]}")
        qc, dbc = model.encode(np.asarray(X[q])), model.encode(np.asarray(X[db]))
        out.update(_hamming_metrics(qc, dbc, model.bits, rel, cfg, args.threads))
        out.update(method=meta["method"], bits=meta["bits"])
    write_json(args.out, out)
    log.info("%s %s: mAP %.4f, P@%d %.4f", out["feature"], out["method"], out["map"], k, out["precision_at_k"])


def _hamming_metrics(qc, dbc, bits, rel, cfg, threads) -> dict:
    from ..evaluation import ranking as R

    k, rule, r = cfg["precision_at"], cfg["tie_rule"], cfg["hamming_radius"]
    total, hits = R.hamming_histograms(qc, dbc, bits, rel, cfg["query_batch"], threads)
    if rule == "index":
        ap, pk = R.hamming_ranking_by_index(qc, dbc, rel, k, cfg["query_batch"])
    else:
        ap = R.ap_from_histograms(total, hits, rule)
        pk = R.precision_at_k_from_histograms(total, hits, k, rule)
    precision, recall = R.radius_curves(total, hits)
    return {"map": float(ap.mean()), "precision_at_k": float(pk.mean()), "k": k,
            "precision_radius": float(precision[min(r, bits)]), "recall_radius": float(recall[min(r, bits)]),
            "radius": r, "pr_curve": {"precision": precision.round(6).tolist(), "recall": recall.round(6).tolist()}}
