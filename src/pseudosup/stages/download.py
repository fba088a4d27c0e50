"""Fetch a dataset's raw files into a directory, verified by checksum.

Sources, in order: the mirror directory (params `paths.mirror` or $PSEUDOSUP_MIRROR),
the real data directory for local-only datasets (`paths.shared_data`), local copies
such as Debian's dataset packages, the download cache, the official URLs (HTTP(S)
or FTP, then mirrors). Downloads resume (Range / REST) and retry with back-off;
every file is verified before use; the output directory appears only when complete.
With --offline or $PSEUDOSUP_OFFLINE=1 no network is used and missing files are
listed with where to put them. Dataset options (params `datasets.<name>`, e.g. the
images directory of `nus-wide` or of a `folder-<name>` dataset) are read when the
rule passes their key.
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, params_of

HELP = "fetch and verify a dataset's raw files"


def add_arguments(p) -> None:
    add_params_args(p, "paths [datasets.<dataset>]")
    p.add_argument("--dataset", required=True, help="registered dataset name (`pseudosup datasets` lists them)")
    p.add_argument("--out", type=Path, required=True, help="output directory (written atomically)")
    p.add_argument("--cache", type=Path, default=None,
                   help="download cache (default data/cache/downloads/<dataset>; not a DVC output)")
    p.add_argument("--offline", action="store_true", help="use no network (also $PSEUDOSUP_OFFLINE=1)")


def run(args) -> None:
    from ..data import registry
    from ..data.download import fetch_dataset
    from ..io import PseudosupError
    from ..log import log

    params = params_of(args)
    paths = params.get_key("paths")
    dataset = registry.get(args.dataset)
    key = f"datasets.{args.dataset}"
    if key in args.keys:
        try:  # params win over a stand-in manifest's own options (data/standin.py)
            dataset.options = {**dataset.options, **(params.get_key(key) or {})}
        except PseudosupError:  # declared but not set in params: no options of its own
            pass
    cache = args.cache or Path("data/cache/downloads") / dataset.name
    manifest = fetch_dataset(dataset, args.out, cache, Path(paths["mirror"]) if paths.get("mirror") else None,
                             offline=True if args.offline else None,
                             shared=registry.shared_data_dir(paths) if dataset.shared is not None else None)
    for name, info in manifest["files"].items():
        log.info("%s: %s (verified by %s)", name, info["source"], info["verified"])
