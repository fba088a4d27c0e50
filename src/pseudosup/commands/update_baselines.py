"""Write baselines/<experiment>.json from a run's metrics (review the diff, then commit).

Tolerance per metric = max(--abs-tol, --rel-tol x |value|): runs are seeded and
deterministic on one machine; the tolerance absorbs floating-point differences
between CPUs and BLAS builds. With --spread FILE (spreads measured across CPUs:
{"experiments": {"<experiment>": {"<metric name>": <max abs spread>}}}) it is
max(--abs-tol, --spread-factor x spread) instead; a metric the file lacks takes the
largest spread of its feature in that experiment. --keep-values keeps the committed
baseline's values (and, without --spread, its tolerances): it re-derives tolerances, or
adds the protocol fields (dataset, split, tie_rule, precision_at) an older baseline lacks.
Every baseline is built before any is written: an error leaves all files as they were."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

HELP = "write baselines from a run's metrics"


def add_arguments(p) -> None:
    p.add_argument("metrics", type=Path, nargs="+", help="results/metrics/<experiment>.json files")
    p.add_argument("--baselines", type=Path, default=Path("baselines"))
    p.add_argument("--abs-tol", type=_at_least(0), default=0.01,
                   help="absolute tolerance, the floor with --spread too (default 0.01)")
    p.add_argument("--rel-tol", type=_at_least(0), default=0.03,
                   help="relative tolerance (default 0.03; not used with --spread)")
    p.add_argument("--spread", type=Path, default=None, metavar="FILE",
                   help='JSON of measured spreads {"experiments": {"<experiment>": {"<metric>": <spread>}}}: '
                        "tolerance = max(--abs-tol, --spread-factor x spread)")
    p.add_argument("--spread-factor", type=_at_least(0, strict=True), default=3.0,
                   help="multiple of the measured spread (default 3.0)")
    p.add_argument("--keep-values", action="store_true",
                   help="keep the committed baseline's values (and, without --spread, its tolerances); "
                        "take only the protocol fields it lacks from the metrics file")


def _at_least(low: float, strict: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or v < low or (strict and v == low):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number {'>' if strict else '>='} {low:g}")
        return v
    return parse


def run(args) -> None:
    from ..gate import write_baselines
    from ..log import log

    paths = write_baselines(args.metrics, args.baselines, abs_tol=args.abs_tol, rel_tol=args.rel_tol,
                            spread_path=args.spread, spread_factor=args.spread_factor, keep=args.keep_values)
    for path in paths:
        log.info("wrote %s", path)
