"""Fetch a dataset's raw files into a directory, verified by checksum.

Sources, in order: the mirror directory (params `paths.mirror` or $PSEUDOSUP_MIRROR),
local copies such as Debian's dataset packages, the download cache, the official
URLs. With $PSEUDOSUP_OFFLINE=1 no network is used and missing files are listed.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, params_of

HELP = "fetch and verify a dataset's raw files"


def add_arguments(p) -> None:
    add_params_args(p, "paths")
    p.add_argument("--dataset", required=True, help="registered dataset name")
    p.add_argument("--out", type=Path, required=True, help="output directory (written atomically)")
    p.add_argument("--cache", type=Path, default=None,
                   help="download cache (default data/cache/downloads/<dataset>)")


def run(args) -> None:
    from ..data import registry
    from ..data.download import fetch_dataset
    from ..log import log

    params = params_of(args)
    mirror = params.get_key("paths.mirror")
    dataset = registry.get(args.dataset)
    cache = args.cache or Path("data/cache/downloads") / dataset.name
    manifest = fetch_dataset(dataset, args.out, cache, Path(mirror) if mirror else None)
    for name, info in manifest["files"].items():
        log.info("%s: %s (%d bytes)", name, info["source"], info["bytes"])
