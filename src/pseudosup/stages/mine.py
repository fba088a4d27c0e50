"""Mine reversible (k-reciprocal) nearest-neighbour pairs among the database items.

Pairs are written as database positions (rows of the split's `database` part) and
as item ids. Labels are read only to report the pairs' precision as a diagnostic;
they never influence which pairs are mined.

The kNN graph is exact up to `mining.exact_max` items and approximate (faiss IVF, or
HNSW) above, with the approximate graph's recall@k against exact search measured on
`mining.recall_sample` sampled items and written to the statistics (see
pseudosup.mining.knn). Without those keys in params, the defaults apply.

The features and the split are checked first (pseudosup.provenance); the pairs and the
statistics record the dataset, the split (name, sha256), the inputs' sha256 and the machine.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, params_of, set_threads

HELP = "mine reversible nearest-neighbour pairs of the database"


def add_arguments(p) -> None:
    add_params_args(p, "mining, optionally seed")
    add_threads_arg(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True, help="raw directory (labels, for the diagnostic only)")
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="pairs (.npz)")
    p.add_argument("--stats", type=Path, required=True, help="statistics (.json)")


def run(args) -> None:

    from .. import code_version
    from .. import provenance as P
    from ..data import registry
    from ..data.splits import load_split
    from ..io import load_array, save_npz, write_json
    from ..log import log
    from ..mining.knn import KnnSettings, build_knn
    from ..mining.reciprocal import pair_stats, reciprocal_pairs

    set_threads(args.threads)
    params = params_of(args)
    cfg = params.get_key("mining")
    seed = params["seed"] if "seed" in params else 0
    split = load_split(args.split)
    X, fmeta = load_array(args.features)
    P.check_features(args.features, fmeta, args.dataset)
    P.check_split(split, args.split, fmeta, args.features)
    db = split.part("database")
    P.check_finite(X, db, args.features, f"a database item of {split.name}")
    all_labels = registry.get(args.dataset).labels(args.raw)
    P.check_item_count(args.features, fmeta, len(all_labels), f"labels in {args.raw}")
    graph = build_knn(X[db], cfg["k"], cfg["metric"], KnnSettings.from_params(cfg, seed), args.threads)
    pairs = reciprocal_pairs(graph.indices)
    labels = all_labels[db]
    knn = {k: v for k, v in graph.info.items() if k != "settings"}
    stats = {"dataset": fmeta["dataset"], **P.split_record(split, args.split), "feature": fmeta["feature"],
             "k": cfg["k"], "metric": cfg["metric"], **pair_stats(pairs, len(db), labels), "knn": knn,
             **P.stamp(args.features, args.split, args.raw)}
    meta = {**stats, "code_version": code_version()}
    save_npz(args.out, meta, pairs=pairs, item_ids=db[pairs] if len(pairs) else pairs)
    write_json(args.stats, stats)
    log.info("%d reversible pairs (k=%d, %s kNN, recall@k %.4f), %.1f%% of items covered, label agreement %.3f",
             stats["num_pairs"], cfg["k"], knn["index"], knn["recall_at_k"], 100 * stats["coverage"],
             stats.get("pair_precision", float("nan")))
