"""Draw a named split (protocol) of a dataset and register it in data/splits/.

Splits are committed files: run this once per protocol, commit the JSON and
SHA256SUMS, and every later run verifies the split by its checksum.
"""

from __future__ import annotations

from pathlib import Path

HELP = "draw a named split of a dataset and record its sha256 (a developer tool)"


def add_arguments(p) -> None:
    from ..data.splits import PROTOCOLS
    p.add_argument("--protocol", required=True, help=f"one of: {', '.join(sorted(PROTOCOLS))}")
    p.add_argument("--raw", type=Path, required=True, help="the dataset's raw directory (for labels)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    p.add_argument("--out-dir", type=Path, default=Path("data/splits"), help="default data/splits")


def run(args) -> None:
    from ..data import registry
    from ..data.splits import PROTOCOL_INFO, make_split, save_split
    from ..log import log

    info = PROTOCOL_INFO.get(args.protocol)
    dataset = registry.get(info["dataset"]) if info else None
    labels = dataset.labels(args.raw) if dataset else None
    split = make_split(args.protocol, labels, args.seed)
    path = save_split(split, args.out_dir)
    log.info("wrote %s: %s", path, {k: len(v) for k, v in split.parts.items()})
