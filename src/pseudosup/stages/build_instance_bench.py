"""Build `copydays-style-synth`, the small Copydays-style synthetic-variant instance
benchmark, from the real photos in ../shared/data (params `paths.shared_data`, or
$PSEUDOSUP_SHARED_DATA) and those bundled with scikit-image and scikit-learn.

Writes a raw directory (images.tar + manifest.json with provenance, licences, the
transformations of every copy and the `variants` / `multiview` ground truths). It is
a pipeline output, never committed. See pseudosup.data.instance_bench and docs/cie.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import add_params_args, params_of

HELP = "build the Copydays-style synthetic-variant instance benchmark from real photos"


def add_arguments(p) -> None:
    add_params_args(p, "instance_bench, seed, paths")
    p.add_argument("--out", type=Path, required=True, help="output directory (e.g. data/raw/copydays-style-synth)")


def run(args) -> None:
    from .. import code_version
    from ..data import instance_bench as B

    params = params_of(args)
    cfg = params.get_key("instance_bench")
    shared = Path(os.environ.get("PSEUDOSUP_SHARED_DATA") or params.get_key("paths.shared_data"))
    settings = B.BenchSettings(**cfg, seed=params.get_key("seed"))
    B.build(shared, args.out, settings, code_version())
