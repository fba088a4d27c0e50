"""Write dvc.yaml (and dvc-jobs.yaml, its foreach items) from the Snakemake DAG (same
commands, deps, params and outs), or with --check exit non-zero when the committed
files are out of date."""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "generate dvc.yaml from the Snakemake DAG (--check: fail on drift)"


def add_arguments(p) -> None:
    p.add_argument("--root", type=Path, default=Path("."), help="project root (default .)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default <root>): dvc.yaml and dvc-jobs.yaml are written there")
    p.add_argument("--params", default="params.yaml",
                   help="params file relative to the root (default params.yaml, the one dvc.yaml is committed for)")
    p.add_argument("--check", action="store_true", help="compare instead of writing")


def run(args) -> int:
    from ..dvcgen import generate
    from ..io import atomic_path

    folder = args.out or args.root
    files = generate(args.root, args.params)
    if args.check:
        stale = [name for name, text in files.items()
                 if not (folder / name).exists() or (folder / name).read_text() != text]
        if stale:
            print(f"{', '.join(str(folder / n) for n in stale)} out of date: run `pseudosup dvc-yaml` and commit",
                  file=sys.stderr)
            return 1
        print(f"{', '.join(str(folder / n) for n in files)} up to date")
        return 0
    for name, text in files.items():
        with atomic_path(folder / name) as tmp:
            tmp.write_text(text)
        print(f"wrote {folder / name}")
    return 0
