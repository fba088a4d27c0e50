"""Draw a named split (protocol) of a dataset and register it in data/splits/.

Splits are committed files: run this once per protocol, commit the JSON and
SHA256SUMS, and every later run verifies the split by its checksum. Protocols that
follow from a dataset's file layout (TEXMEX, UKBench) need no --raw; the others are
drawn from the data (labels, ground-truth files), so run them on a machine that has
it (`pseudosup download` first), then commit the two files:

    pseudosup make-split --protocol cifar10-q1k --raw data/raw/cifar-10
    git add data/splits/cifar10-q1k.json data/splits/SHA256SUMS

`--list` prints every protocol with its dataset and definition.
"""

from __future__ import annotations

from pathlib import Path

HELP = "draw a named split of a dataset and record its sha256 (a developer tool)"


def add_arguments(p) -> None:
    from ..data.splits import PROTOCOLS
    p.add_argument("--protocol", help=f"one of: {', '.join(sorted(PROTOCOLS))}")
    p.add_argument("--raw", type=Path, default=None,
                   help="the dataset's raw directory (not needed for layout protocols)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    p.add_argument("--out-dir", type=Path, default=Path("data/splits"), help="default data/splits")
    p.add_argument("--list", action="store_true", help="list the protocols and exit")


def run(args) -> None:
    from ..data.splits import PROTOCOL_INFO, draw_split, save_split
    from ..io import PseudosupError
    from ..log import log

    if args.list:
        for name, info in sorted(PROTOCOL_INFO.items()):
            print(f"{name}  [{info['dataset']}; from {info['needs']}]\n    {info['summary']}")
        return
    if not args.protocol:
        raise PseudosupError("give --protocol NAME (or --list)")
    split = draw_split(args.protocol, args.raw, args.seed)
    path = save_split(split, args.out_dir)
    log.info("wrote %s: %s", path, {k: len(v) for k, v in split.parts.items()})
