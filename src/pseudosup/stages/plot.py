"""Figures of an experiment, from its run files only: mAP vs code length per method
and feature (Euclidean ceiling dashed), and precision-recall curves over Hamming
radii at the longest code."""

from __future__ import annotations

from pathlib import Path

HELP = "plot mAP vs bits and precision-recall curves of an experiment"


def add_arguments(p) -> None:
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="run files from `pseudosup evaluate`")
    p.add_argument("--map-vs-bits", type=Path, required=True, help="output .png")
    p.add_argument("--pr-curves", type=Path, required=True, help="output .png")
    p.add_argument("--title", default="", help="figure title prefix")


def run(args) -> None:
    from ..io import read_json
    from ..plots import figures

    runs = [read_json(p) for p in args.runs]
    figures.map_vs_bits(runs, args.map_vs_bits, args.title)
    figures.pr_curves(runs, args.pr_curves, args.title)
