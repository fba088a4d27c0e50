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

from ..methods.cie_task import LABELS, add_task_args
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
    from ..plots import cie as cie_plots

    cie_plots.cie_map(results, read_json(args.cie_history) if args.cie_history else None, args.map_plot, LABELS)
    if args.finetune_plot:
        if not args.finetune_history:
            raise PseudosupError("--finetune-plot needs --finetune-history")
        cie_plots.finetune(read_json(args.finetune_history), args.finetune_plot)
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


def gallery(args, cfg: dict) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from .. import provenance as P
    from ..data import instance_bench, registry  # noqa: F401 (registers copydays-style-synth)
    from ..evaluation.protocols import rank_by_scores
    from ..io import PseudosupError
    from ..methods.cie_task import TaskSource, build_task, score_all
    from ..mining.features_io import load_dense, load_sparse

    P.check_bow(args.bow)
    G, gmeta = load_sparse(args.bow)
    X, xmeta = load_dense(args.cnn)
    E, emeta = load_dense(args.cie)
    dataset = P.check_same_dataset({args.bow: gmeta, args.cnn: xmeta, args.cie: emeta}, args.dataset)
    P.check_features(args.cnn, xmeta, dataset)
    P.check_features(args.cie, emeta, dataset)
    db, task = build_task(TaskSource.from_args(args), X.shape[0], dataset)
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
