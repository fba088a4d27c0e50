"""Mine reversible (k-reciprocal) nearest-neighbour pairs among the database items.

Pairs are written as database positions (rows of the split's `database` part) and
as item ids. Labels are read only to report the pairs' precision as a diagnostic;
they never influence which pairs are mined.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, params_of, set_threads

HELP = "mine reversible nearest-neighbour pairs of the database"


def add_arguments(p) -> None:
    add_params_args(p, "mining")
    add_threads_arg(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True, help="raw directory (labels, for the diagnostic only)")
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="pairs (.npz)")
    p.add_argument("--stats", type=Path, required=True, help="statistics (.json)")


def run(args) -> None:
    import numpy as np

    from .. import code_version
    from ..data import registry
    from ..data.splits import load_split
    from ..io import load_array, save_npz, write_json
    from ..log import log
    from ..mining.knn import knn_graph
    from ..mining.reciprocal import pair_stats, reciprocal_pairs

    set_threads(args.threads)
    cfg = params_of(args).get_key("mining")
    split = load_split(args.split)
    X, fmeta = load_array(args.features)
    db = split.part("database")
    _, neighbours = knn_graph(X[db], cfg["k"], cfg["metric"], cfg["batch_size"], args.threads)
    pairs = reciprocal_pairs(neighbours)
    labels = registry.get(args.dataset).labels(args.raw)[db]
    stats = {"split": split.name, "feature": fmeta.get("feature"), "k": cfg["k"], "metric": cfg["metric"],
             **pair_stats(pairs, len(db), labels)}
    meta = {**stats, "code_version": code_version()}
    save_npz(args.out, meta, pairs=pairs, item_ids=db[pairs] if len(pairs) else pairs)
    write_json(args.stats, stats)
    log.info("%d reversible pairs (k=%d), %.1f%% of items covered, label agreement %.3f",
             stats["num_pairs"], cfg["k"], 100 * stats["coverage"], stats.get("pair_precision", float("nan")))
