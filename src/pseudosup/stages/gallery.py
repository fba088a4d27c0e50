"""A retrieval gallery: a few queries and their top results by Hamming ranking,
framed green (same class) or red. Ties are shown in database order."""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, params_of

HELP = "draw a few queries with their top-ranked database images"


def add_arguments(p) -> None:
    add_params_args(p, "experiments.<experiment>.gallery")
    p.add_argument("--experiment", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", type=Path, required=True)
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="output .png")


def run(args) -> None:
    import numpy as np

    from .. import provenance as P
    from ..codes import hamming, to_words
    from ..data import registry
    from ..data.splits import load_split
    from ..io import load_array
    from ..methods.models import load_model, model_inputs
    from ..plots import figures
    from ..plots.ties import pick_gallery_queries, top_k_with_ties

    cfg = params_of(args).get_key(f"experiments.{args.experiment}.gallery")
    split = load_split(args.split)
    X, fmeta = load_array(args.features)
    P.check_features(args.features, fmeta, args.dataset)
    P.check_split(split, args.split, fmeta, args.features)
    model, meta = load_model(args.model)
    P.check_model(args.model, meta, args.features, fmeta, split, args.split)
    ds = registry.get(args.dataset)
    images, labels = ds.images(args.raw), ds.labels(args.raw)
    P.check_item_count(args.features, fmeta, len(labels), f"labels in {args.raw}")
    # candidates: the first 20 x `queries` queries; those whose top results are not all at
    # one Hamming distance come first (a row of ties says nothing about the ranking)
    q = split.part("queries")[: 20 * cfg["queries"]]
    db = split.part("database")
    P.check_finite(X, np.concatenate([q, db]), args.features, f"a query or database item of {split.name}")
    Xq, Xdb = model_inputs(meta, X, q, db, images=lambda: images, model=args.model, features=args.features)
    dist = hamming(to_words(model.encode(Xq)), to_words(model.encode(Xdb)))
    rows, ties = [], []
    for i in pick_gallery_queries(dist, cfg["top"], cfg["queries"]):
        top, n_at_kth = top_k_with_ties(dist[i], cfg["top"])
        rows.append((images[q[i]], [(images[db[j]], labels[db[j]] == labels[q[i]], int(dist[i, j])) for j in top]))
        ties.append(n_at_kth)
    title = f"{args.experiment}: {meta['feature']} / {meta['method']} {meta['bits']} bits (top {cfg['top']}, Hamming distance shown)"
    figures.gallery(rows, args.out, title, ties=ties)
