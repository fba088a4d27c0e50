"""Draw a split of a dataset and register it in data/splits/.

Splits are committed files: run this once per split, commit the JSON and
SHA256SUMS, and every later run verifies the split by its checksum. Named protocols
that follow from a dataset's file layout (TEXMEX, UKBench) need no --raw; the
others are drawn from the data (labels, ground-truth files), so run them on a
machine that has it (`pseudosup download` first), then commit the two files:

    pseudosup make-split --protocol cifar10-q1k --raw data/raw/cifar-10
    git add data/splits/cifar10-q1k.json data/splits/SHA256SUMS

Any dataset with classes (your own `folder-<name>` images) takes the generic
`per-class` protocol, with its counts as options or from a params `splits:` entry:

    pseudosup make-split --dataset folder-mine --protocol per-class --queries-per-class 10 \\
        --train-per-class 50 --seed 0 --name mine-q10
    pseudosup make-split --name mine-q10          # the counts of params splits.mine-q10

`--list` prints every protocol with its dataset and definition.
"""

from __future__ import annotations

from pathlib import Path

HELP = "draw a split of a dataset (a named protocol, or per-class counts) and record its sha256"


def add_arguments(p) -> None:
    from ..data.splits import PER_CLASS, PROTOCOLS
    p.add_argument("--protocol",
                   help=f"{PER_CLASS} (any dataset with classes) or one of: {', '.join(sorted(PROTOCOLS))}")
    p.add_argument("--dataset", default=None,
                   help=f"the dataset (required with {PER_CLASS}; a named protocol must be of this dataset)")
    p.add_argument("--name", default=None,
                   help=f"the split's name, data/splits/<name>.json ({PER_CLASS}; alone: the split defined "
                        "under params `splits:`)")
    p.add_argument("--queries-per-class", type=int, default=None, help=f"{PER_CLASS}: queries of each class")
    p.add_argument("--database-per-class", type=int, default=None,
                   help=f"{PER_CLASS}: database items of each class (default: all items that are not queries)")
    p.add_argument("--train-per-class", type=int, default=None,
                   help=f"{PER_CLASS}: training items of each class, drawn from the database (default: the "
                        "whole database)")
    p.add_argument("--raw", type=Path, default=None,
                   help=f"the dataset's raw directory ({PER_CLASS} default: data/raw/<dataset>; not needed "
                        "for layout protocols)")
    p.add_argument("--seed", type=int, default=None, help="seed of the draw (default 0)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"),
                   help="read for --name alone (its `splits:` entry)")
    p.add_argument("--out-dir", type=Path, default=Path("data/splits"), help="default data/splits")
    p.add_argument("--list", action="store_true", help="list the protocols and exit")


def run(args) -> None:
    from ..data.splits import PER_CLASS, PROTOCOL_INFO, per_class_summary, save_split
    from ..log import log

    if args.list:
        for name, info in sorted(PROTOCOL_INFO.items()):
            print(f"{name}  [{info['dataset']}; from {info['needs']}]\n    {info['summary']}")
        print(f"{PER_CLASS}  [any dataset with classes; from labels; --name, --dataset and counts]\n"
              f"    {per_class_summary('<dataset>', 'N', None, None)}")
        return
    split = _draw(args)
    path = _save_locked(split, args.out_dir, save_split)
    log.info("wrote %s (sha256 in %s): %s", path, args.out_dir / "SHA256SUMS",
             {k: len(v) for k, v in split.parts.items()})


def _save_locked(split, out_dir: Path, save_split) -> Path:
    """save_split under an exclusive lock: draw_split jobs running side by side each
    rewrite the shared SHA256SUMS."""
    import fcntl

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return save_split(split, out_dir)


def _draw(args):
    from ..data.splits import PER_CLASS, draw_defined, draw_per_class, draw_split
    from ..data.splits import STANDIN_PREFIX as PREFIX
    from ..io import PseudosupError

    if args.protocol and args.dataset and args.dataset.startswith(PREFIX):
        return _draw_standin(args)

    if args.protocol == PER_CLASS:
        missing = [opt for opt, value in (("--dataset", args.dataset), ("--name", args.name),
                                          ("--queries-per-class", args.queries_per_class)) if value is None]
        if missing:
            raise PseudosupError(f"--protocol {PER_CLASS} needs {', '.join(missing)}")
        raw = args.raw or Path("data/raw") / args.dataset
        return draw_per_class(args.name, args.dataset, raw, args.seed or 0, args.queries_per_class,
                              args.database_per_class, args.train_per_class)
    _refuse_counts(args)
    if args.protocol:
        if args.name not in (None, args.protocol):
            raise PseudosupError(f"protocol '{args.protocol}' writes split '{args.protocol}'; --name "
                                 f"{args.name} is for --protocol {PER_CLASS}")
        return draw_split(args.protocol, args.raw, args.seed or 0, args.dataset)
    if args.name:
        if args.seed is not None or args.dataset is not None:
            raise PseudosupError(f"--name {args.name} alone draws params splits.{args.name}: its dataset and seed "
                                 "are set there (or give --protocol per-class with all options)")
        return draw_defined(args.name, _defined(args.params, args.name), args.raw)
    raise PseudosupError("give --protocol NAME, or --name of a split under params `splits:` (or --list)")


def _draw_standin(args):
    """A real dataset's protocol drawn from its stand-in: split standin-<protocol>."""
    from ..data.splits import STANDIN_PREFIX as PREFIX
    from ..data.standin import draw_split
    from ..io import PseudosupError

    _refuse_counts(args)
    if args.name not in (None, PREFIX + args.protocol):
        raise PseudosupError(f"protocol '{args.protocol}' on stand-in '{args.dataset}' writes split "
                             f"'{PREFIX}{args.protocol}', not '{args.name}'")
    return draw_split(args.protocol, args.dataset, args.raw, args.seed or 0)


def _refuse_counts(args) -> None:
    """Counts belong to per-class: silently ignoring them would draw another split."""
    from ..data.splits import PER_CLASS
    from ..io import PseudosupError

    given = [o for o in ("queries_per_class", "database_per_class", "train_per_class") if getattr(args, o) is not None]
    if given:
        raise PseudosupError(f"--{given[0].replace('_', '-')} is an option of --protocol {PER_CLASS}")


def _defined(params_file: Path, name: str) -> dict:
    from ..io import PseudosupError
    from ..params import load

    splits = load(params_file).get("splits", {})
    if name not in splits:
        raise PseudosupError(f"{params_file}: no split '{name}' under `splits:` (defined: {sorted(splits)}); "
                             "define it there or give --protocol per-class --dataset ... --queries-per-class N")
    return splits[name]
