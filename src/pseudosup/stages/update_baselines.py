"""Write baselines/<experiment>.json from a run's metrics (review the diff, then commit).

Tolerance per metric = max(--abs-tol, --rel-tol x |value|): runs are seeded and
deterministic on one machine; the tolerance absorbs floating-point differences
between CPUs and BLAS builds."""

from __future__ import annotations

from pathlib import Path

HELP = "write baselines from a run's metrics"


def add_arguments(p) -> None:
    p.add_argument("metrics", type=Path, nargs="+", help="results/metrics/<experiment>.json files")
    p.add_argument("--baselines", type=Path, default=Path("baselines"))
    p.add_argument("--abs-tol", type=float, default=0.01, help="absolute tolerance (default 0.01)")
    p.add_argument("--rel-tol", type=float, default=0.03, help="relative tolerance (default 0.03)")


def run(args) -> None:
    from ..gate import write_baseline
    from ..log import log

    for path in args.metrics:
        log.info("wrote %s", write_baseline(path, args.baselines, args.abs_tol, args.rel_tol))
