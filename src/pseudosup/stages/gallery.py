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

    from ..data import registry
    from ..data.splits import load_split
    from ..io import load_array
    from ..methods.codes import hamming, to_words
    from ..plots import figures
    from .train import load_model

    cfg = params_of(args).get_key(f"experiments.{args.experiment}.gallery")
    split = load_split(args.split)
    ds = registry.get(args.dataset)
    images, labels = ds.images(args.raw), ds.labels(args.raw)
    X, _ = load_array(args.features)
    model, meta = load_model(args.model)
    q = split.part("queries")[: cfg["queries"]]
    db = split.part("database")
    dist = hamming(to_words(model.encode(np.asarray(X[q]))), to_words(model.encode(np.asarray(X[db]))))
    top = np.argsort(dist, axis=1, kind="stable")[:, : cfg["top"]]
    rows = [(images[qi], [(images[db[j]], labels[db[j]] == labels[qi], int(dist[i, j])) for j in top[i]])
            for i, qi in enumerate(q)]
    title = f"{args.experiment}: {meta['feature']} / {meta['method']} {meta['bits']} bits (top {cfg['top']}, Hamming distance shown)"
    figures.gallery(rows, args.out, title)
