"""Write a params file that runs paper experiments on stand-ins of their datasets.

    pseudosup standin-params --params params.yaml --out standins.yaml ldph-sift1m cie-oxford5k
    PSEUDOSUP_STANDINS=/srv/standins/manifests snakemake --cores 2 --configfile standins.yaml

Each experiment keeps its features, methods, code lengths and protocol; its dataset
becomes `standin-<dataset>` (the same reader over files named in a stand-in manifest,
data/standin.py) and its split `standin-<protocol>`, drawn from the stand-in by the
`draw_split` rule. benchmarks/standins/README.md builds and serves full-size stand-ins;
tests/test_standins.py runs every paper experiment on tiny ones.
"""

from __future__ import annotations

from pathlib import Path

HELP = "write a params file running experiments on stand-ins of their datasets (local archives)"


def add_arguments(p) -> None:
    p.add_argument("experiments", nargs="+", help="experiment names of the params file")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="the params file to start from")
    p.add_argument("--out", type=Path, required=True, help="the params file to write")
    p.add_argument("--bits", choices=("all", "shortest"), default="all",
                   help="code lengths: all of the experiment's, or only its shortest (a quick check)")


def run(args) -> None:
    import yaml

    from ..data.standin import params_for
    from ..io import atomic_path
    from ..log import log
    from ..params import load

    out = params_for(load(args.params), args.experiments, args.params.resolve().parent, args.bits)
    with atomic_path(args.out) as tmp:
        tmp.write_text("# written by `pseudosup standin-params`: experiments on STAND-INS of their datasets\n"
                       + yaml.safe_dump(out, sort_keys=False))
    log.info("wrote %s: %s on stand-ins", args.out, ", ".join(args.experiments))
