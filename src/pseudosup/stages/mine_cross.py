"""Mine pairs across two feature spaces: reversible (k-reciprocal) neighbours in the
source space (e.g. the SIFT bag of words), scored by the target space (e.g. the CNN
descriptor: cosine and rank), selected by `cross_mining.mode` (source / agree /
complement, see pseudosup.mining.pairs), optionally verified geometrically by SIFT
matching (ratio test + RANSAC inliers >= `cross_mining.verify.min_inliers`).

Items: the split's `database` part (--split), else the dataset's own database part where it has
one (Oxford/Paris: their queries are cropped database images, never mined), else every item.
Output: pairs (.npz: `pairs` as positions among those items, `item_ids`, the scores,
`inliers` and `verified` when verification ran) and statistics (.json, with the
recall of any approximate kNN graph and, as a diagnostic only, label agreement). Both
record the dataset, the split, the inputs' sha256 and the machine; the inputs are
checked first (pseudosup.provenance: sidecar hashes, one dataset, the split's items).
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, add_threads_arg, params_of, set_threads

HELP = "mine reversible pairs in one feature space, scored by another (+ SIFT verification)"


def add_arguments(p) -> None:
    add_params_args(p, "cross_mining, mining, seed")
    add_threads_arg(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True, help="raw directory (images for verification; labels for the diagnostic)")
    p.add_argument("--source", type=Path, required=True, help="source-space features (.bow.npz sparse or .npy dense)")
    p.add_argument("--target", type=Path, required=True, help="target-space features (.npy dense or .bow.npz)")
    p.add_argument("--split", type=Path, default=None, help="split file (items = its database part); default: all items")
    p.add_argument("--no-verify", action="store_true",
                   help="skip geometric verification whatever the params say (e.g. for 32x32 images)")
    p.add_argument("--out", type=Path, required=True, help="pairs (.npz)")
    p.add_argument("--stats", type=Path, required=True, help="statistics (.json)")


def space_graph(M, kind: str, k: int, mining: dict, seed: int, threads: int):
    """(distances, neighbours, info) of one space's kNN graph."""
    from ..mining.knn import KnnSettings, build_knn, sparse_knn

    if kind == "sparse":
        D, I = sparse_knn(M, k, threads=threads)
        return D, I, {"index": "exact sparse", "recall_at_k": 1.0, "k": k}
    g = build_knn(M, k, "cosine", KnnSettings.from_params(mining, seed), threads)
    return g.distances, g.indices, {k_: v for k_, v in g.info.items() if k_ != "settings"}


def run(args) -> None:
    import numpy as np

    from .. import code_version
    from .. import provenance as P
    from ..data import instance_bench, registry  # noqa: F401 (registers copydays-style-synth)
    from ..io import PseudosupError, save_npz, write_json
    from ..log import log
    from ..mining import pairs as MP
    from ..mining.features_io import load_features, rows

    set_threads(args.threads)
    params = params_of(args)
    cfg, mining, seed = params.get_key("cross_mining"), params.get_key("mining"), params.get_key("seed")
    S, smeta, skind = _load(args.source, args.dataset, load_features)
    T, tmeta, tkind = _load(args.target, args.dataset, load_features)
    MP.check_aligned(S.shape[0], T.shape[0], f"{args.source} vs {args.target}")
    items = _items(args, S.shape[0])
    for M, kind, path in ((S, skind, args.source), (T, tkind, args.target)):
        if kind == "dense":
            P.check_finite(M, items, path, "a mined item")
    S, T = rows(S, items), rows(T, items)
    rank_list = max(cfg["k"], cfg["rank_list"])
    _, s_nbrs, s_info = space_graph(S, skind, cfg["k"], mining, seed, args.threads)
    _, t_nbrs, t_info = space_graph(T, tkind, rank_list, mining, seed, args.threads)
    sim = {"sparse": MP.sparse_sim, "dense": MP.dense_sim}
    mined = MP.cross_space_pairs(s_nbrs, t_nbrs, sim[skind](S), sim[tkind](T), cfg["mode"], cfg["k"],
                                 cfg["max_target_rank"])
    arrays = mined.arrays()
    ds = registry.get(args.dataset)
    stats = {"dataset": args.dataset, "source": smeta.get("feature", str(args.source)),
             "target": tmeta.get("feature", str(args.target)), "items": int(len(items)),
             **({} if args.split is None else P.split_record(_split(args), args.split)), "k": cfg["k"], "mode": cfg["mode"], "max_target_rank": cfg["max_target_rank"],
             "source_knn": s_info, "target_knn": t_info}
    if cfg["verify"]["enabled"] and not args.no_verify:
        arrays.update(_verify(ds.image_source(args.raw), items, mined.pairs, cfg["verify"], args.threads))
        keep = arrays["verified"]
        stats["verification"] = {"checked": int(len(keep)), "verified": int(keep.sum()),
                                 "inliers_median": float(np.median(arrays["inliers"])) if len(keep) else 0.0}
        if cfg["verify"]["drop_unverified"]:
            if not keep.any():
                raise PseudosupError(f"geometric verification kept none of the {len(keep)} pairs "
                                     f"(min_inliers {cfg['verify']['min_inliers']}); lower it or disable drop_unverified")
            arrays = {k: v[keep] for k, v in arrays.items()}
            mined = mined.select(keep)
    labels = _labels(ds, args.raw, items)
    stats.update(MP.pair_summary(mined, len(items), labels))
    stats.update(P.stamp(args.source, args.target, args.split, args.raw))
    save_npz(args.out, {**stats, "code_version": code_version()}, item_ids=items[arrays["pairs"]], **arrays)
    write_json(args.stats, stats)
    log.info("%d pairs (%s, k=%d): median target rank %s, %.1f%% also reversible in the target space%s",
             stats["num_pairs"], cfg["mode"], cfg["k"], stats["target_rank_median"],
             100 * stats["target_reversible_fraction"],
             f", label agreement {stats['pair_precision']:.3f} (diagnostic)" if "pair_precision" in stats else "")


def _load(path, dataset: str, load_features):
    """A feature file of `dataset`, verified against its sidecar (dense) or the sha256
    its feature's sidecar recorded (bag of words)."""
    from .. import provenance as P

    if str(path).endswith(".npz"):
        P.check_bow(path)
    M, meta, kind = load_features(path)
    P.check_same_dataset({path: meta}, dataset)
    if kind == "dense":
        P.check_features(path, meta, dataset)
    return M, meta, kind


def _split(args):
    from ..data.splits import load_split

    return load_split(args.split)


def _items(args, n: int):
    """The mined items: the split's database part (a split of --dataset, indices < n), else the
    dataset's database part when it has one (the items build_task indexes), else all."""
    import numpy as np

    from ..io import PseudosupError
    from ..provenance import check_split_items

    if args.split is None:  # the dataset's own protocol: its database part (Oxford/Paris: not the queries)
        from ..data import registry

        part = registry.get(args.dataset).parts(args.raw).get("database") if args.dataset and args.raw else None
        return np.arange(*part, dtype=np.int64) if part else np.arange(n, dtype=np.int64)
    split = _split(args)
    if split.dataset != args.dataset:
        raise PseudosupError(f"{args.split}: split of dataset '{split.dataset}', not '{args.dataset}'")
    check_split_items(split, args.split, n, f"the features have {n} rows (one per item)")
    return split.part("database")


def _verify(images, items, pairs, vcfg: dict, threads: int) -> dict:

    from ..mining.geometric import VerifySettings, verify_pairs

    s = VerifySettings(**{k: v for k, v in vcfg.items() if k not in ("enabled", "drop_unverified")})
    inliers = verify_pairs(_Subset(images, items), pairs, s, threads)
    return {"inliers": inliers, "verified": inliers >= s.min_inliers}


class _Subset:
    def __init__(self, source, items):
        self.source, self.items = source, items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.source[int(self.items[i])]


def _labels(ds, raw, items):
    """Class / group labels for the diagnostic, when the dataset has them."""
    from ..io import PseudosupError

    try:
        return ds.labels(raw)[items]
    except (PseudosupError, NotImplementedError):
        return None
