"""Write dvc.yaml from the Snakemake DAG (same commands, deps, params and outs), or
with --check exit non-zero when the committed dvc.yaml is out of date."""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "generate dvc.yaml from the Snakemake DAG (--check: fail on drift)"


def add_arguments(p) -> None:
    p.add_argument("--root", type=Path, default=Path("."), help="project root (default .)")
    p.add_argument("--out", type=Path, default=None, help="output (default <root>/dvc.yaml)")
    p.add_argument("--params", default="params.yaml",
                   help="params file relative to the root (default params.yaml, the one dvc.yaml is committed for)")
    p.add_argument("--check", action="store_true", help="compare instead of writing")


def run(args) -> int:
    from ..dvcgen import generate
    from ..io import atomic_path

    out = args.out or args.root / "dvc.yaml"
    text = generate(args.root, args.params)
    if args.check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            print(f"{out} is out of date: run `pseudosup dvc-yaml` and commit it", file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    print(f"wrote {out}")
    return 0
