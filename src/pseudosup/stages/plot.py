"""Figures of an experiment, from its run files only: mAP vs code length per method
and feature (Euclidean ceiling dashed; NDCG for multi-label relevance), and
precision-recall curves over Hamming radii at the longest code; for feature-only
experiments, one bar per feature. The runs must agree on dataset, split and tie rule
(pseudosup.provenance.check_runs_agree)."""

from __future__ import annotations

from pathlib import Path

HELP = "plot mAP vs bits and precision-recall curves of an experiment"


def add_arguments(p) -> None:
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="run files from `pseudosup evaluate`")
    p.add_argument("--map-vs-bits", type=Path, default=None, help="output .png (hashing experiments)")
    p.add_argument("--pr-curves", type=Path, default=None, help="output .png (hashing experiments)")
    p.add_argument("--feature-map", type=Path, default=None, help="output .png (feature-only experiments)")
    p.add_argument("--title", default="", help="figure title prefix")


def run(args) -> None:
    from ..io import read_json
    from ..plots import figures
    from ..provenance import check_runs_agree

    runs = [read_json(p) for p in args.runs]
    check_runs_agree(runs, args.runs)
    if args.map_vs_bits:
        figures.map_vs_bits(runs, args.map_vs_bits, args.title)
    if args.pr_curves:
        figures.pr_curves(runs, args.pr_curves, args.title)
    if args.feature_map:
        figures.feature_map(runs, args.feature_map, args.title)
