"""Validate params.yaml against workflow/schemas/params.schema.yaml and the
cross-references between its sections; print the effective values (defaults filled).

The checks are those of every params load (pseudosup.params.load), so every stage and
Snakemake refuse the same files: no key twice in a mapping (YAML would keep the last
silently); names that exist; each experiment's split committed in data/splits/ or
drawable by `pseudosup make-split` (a named protocol or a `splits:` entry), and a
split of the experiment's own dataset."""

from __future__ import annotations

from pathlib import Path

HELP = "validate params.yaml (schema + references)"


def add_arguments(p) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--show", action="store_true", help="print the validated params with defaults filled")


def run(args) -> None:
    import yaml

    from ..params import load

    params = load(args.params)
    if args.show:
        print(yaml.safe_dump(params, sort_keys=False))
    print(f"{args.params}: valid")
