"""Figures of the cross-feature experiments.

- --map-plot: mAP per method (SIFT, CNN, late fusion, CIE, fine-tuned; from
  `pseudosup evaluate-retrieval`) and the CIE mAP per iteration (from the CIE
  history), with the single-feature baselines as horizontal lines;
- --finetune-plot: the fine-tuning loss terms and mAP per epoch (epoch 0 =
  pretrained);
- --gallery: for the first `retrieval.gallery_queries` queries, the top
  `retrieval.gallery_top` results of SIFT, CNN and CIE side by side (green =
  relevant, red = not, grey = junk / ignored); its inputs are checked first
  (pseudosup.provenance: sidecar hashes, one dataset, the same items).
"""

from __future__ import annotations

from pathlib import Path

from .cie import add_task_args, build_task
from .common import add_params_args, params_of

HELP = "plot CIE / fine-tuning results and a SIFT / CNN / CIE retrieval gallery"


def add_arguments(p) -> None:
    add_params_args(p, "retrieval")
    p.add_argument("--results", type=Path, required=True, help="results of `pseudosup evaluate-retrieval` (.json)")
    p.add_argument("--cie-history", type=Path, default=None, help="history of `pseudosup cie` (.json)")
    p.add_argument("--finetune-history", type=Path, default=None, help="history of `pseudosup finetune` (.json)")
    p.add_argument("--map-plot", type=Path, required=True, help="output .png")
    p.add_argument("--finetune-plot", type=Path, default=None, help="output .png")
    p.add_argument("--gallery", type=Path, default=None, help="output .png (needs --bow, --cnn, --cie and the task)")
    p.add_argument("--bow", type=Path, default=None)
    p.add_argument("--cnn", type=Path, default=None)
    p.add_argument("--cie", type=Path, default=None)
    add_task_args(p)


def run(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from ..io import PseudosupError, read_json

    cfg = params_of(args).get_key("retrieval")
    results = read_json(args.results)
    map_plot(results, read_json(args.cie_history) if args.cie_history else None, args.map_plot)
    if args.finetune_plot:
        if not args.finetune_history:
            raise PseudosupError("--finetune-plot needs --finetune-history")
        finetune_plot(read_json(args.finetune_history), args.finetune_plot)
    if args.gallery:
        if not (args.bow and args.cnn and args.cie and args.dataset and args.raw):
            raise PseudosupError("--gallery needs --bow, --cnn, --cie, --dataset and --raw")
        gallery(args, cfg)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def map_plot(results: dict, cie_history: dict | None, out: Path) -> None:
    import matplotlib.pyplot as plt

    from .evaluate_retrieval import LABELS

    res = results["results"]
    methods = [m for m in LABELS if m in res]
    fig, axes = plt.subplots(1, 2 if cie_history else 1, figsize=(11 if cie_history else 6, 3.8), squeeze=False)
    ax = axes[0][0]
    vals = [res[m]["map"] for m in methods]
    ax.barh(range(len(methods)), vals, color=["C0", "C1", "C2", "C3", "C4", "C5"][:len(methods)])
    ax.set_yticks(range(len(methods)), [f"{LABELS[m]}\n{res[m]['bytes_per_image']:,.0f} B/image" for m in methods],
                  fontsize=7)
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mAP")
    ax.set_xlim(0, min(1.0, max(vals) * 1.25 + 0.02))
    ax.set_title(f"{results.get('name') or results['task']}: {results['queries']} queries, {results['database']} images",
                 fontsize=9)
    if cie_history:
        ax = axes[0][1]
        h = cie_history["history"]
        it = [r["iteration"] for r in h]
        for key, label, style in (("map_cie", "CIE (original queries)", "-o"),
                                  ("map_cie_embedded_queries", "CIE (embedded queries)", "--o"),
                                  ("map_sift_embedded", "embedded BoW (SIFT side)", ":s")):
            if key in h[0]:
                ax.plot(it, [r[key] for r in h], style, label=label)
        for m, c in (("sift", "C0"), ("cnn", "C1"), ("fusion", "C2")):
            if m in res:
                ax.axhline(res[m]["map"], color=c, ls="--", lw=0.8, label=LABELS[m])
        ax.set_xlabel("CIE iteration (0 = before)")
        ax.set_ylabel("mAP")
        ax.set_xticks(it)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, out)


def finetune_plot(history: dict, out: Path) -> None:
    import matplotlib.pyplot as plt

    h = history["history"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    ep = [r["epoch"] for r in h if "loss" in r]
    for key in ("loss", "ranking", "drift"):
        a.plot(ep, [r[key] for r in h if "loss" in r], "-o", label=key)
    a.set_xlabel("epoch")
    a.set_title("fine-tuning loss (mean per batch)", fontsize=9)
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    if "map" in h[0]:
        b.plot([r["epoch"] for r in h], [r["map"] for r in h], "-o", color="C3")
        b.set_xlabel("epoch (0 = pretrained)")
        b.set_ylabel("mAP")
        b.grid(alpha=0.3)
        b.set_title("retrieval mAP per epoch (diagnostic)", fontsize=9)
    _save(fig, out)


def gallery(args, cfg: dict) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from ..data import instance_bench, registry  # noqa: F401 (registers copydays-style-synth)
    from ..evaluation.protocols import rank_by_scores
    from ..mining.features_io import load_dense, load_sparse
    from .evaluate_retrieval import score_all

    from .. import provenance as P
    from ..io import PseudosupError

    P.check_bow(args.bow)
    G, gmeta = load_sparse(args.bow)
    X, xmeta = load_dense(args.cnn)
    E, emeta = load_dense(args.cie)
    dataset = P.check_same_dataset({args.bow: gmeta, args.cnn: xmeta, args.cie: emeta}, args.dataset)
    P.check_features(args.cnn, xmeta, dataset)
    P.check_features(args.cie, emeta, dataset)
    db, task = build_task(args, X.shape[0], dataset)
    if G.shape[0] != X.shape[0] or len(E) != len(db):
        raise PseudosupError(f"{args.bow} ({G.shape[0]} rows), {args.cnn} ({X.shape[0]}) and {args.cie} "
                             f"({len(E)}, expected {len(db)} database rows) do not describe the same items")
    scores = score_all(task, G, X, np.asarray(E))
    images = registry.get(args.dataset).image_source(args.raw)
    nq, top = min(cfg["gallery_queries"], len(task.queries)), cfg["gallery_top"]
    rows = [(q, m) for q in range(nq) for m in ("sift", "cnn", "cie")]
    fig, axes = plt.subplots(len(rows), top + 1, figsize=(1.3 * (top + 1), 1.35 * len(rows)), squeeze=False)
    for r, (q, m) in enumerate(rows):
        order = rank_by_scores(scores[m][0][q:q + 1], task.query_pos[q:q + 1] if task.kind == "instance" else None)[0]
        _thumb(axes[r][0], images[int(task.queries[q])], "black", m)
        for c, pos in enumerate(order[:top], start=1):
            _thumb(axes[r][c], images[int(task.database[pos])], _colour(task, q, pos), "")
    fig.suptitle("query (left) and top results: green relevant, red not, grey ignored", fontsize=9, y=0.995)
    fig.subplots_adjust(top=0.97, wspace=0.05, hspace=0.08)
    _save(fig, args.gallery)


def _colour(task, q: int, pos: int) -> str:
    if task.kind == "class":
        return "green" if task.query_labels[q] == task.db_labels[pos] else "red"
    if pos in set(task.junk[q].tolist()):
        return "grey"
    return "green" if pos in set(task.ok[q].tolist()) else "red"


def _thumb(ax, img, colour: str, title: str) -> None:
    import cv2

    ax.imshow(cv2.resize(img, (96, 96), interpolation=cv2.INTER_AREA))
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_edgecolor(colour)
        s.set_linewidth(3)
    if title:
        ax.set_ylabel(title, fontsize=8)
