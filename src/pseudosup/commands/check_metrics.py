"""The metrics gate: exit 1, listing every regression, when any metric of the given
metrics files is worse than its committed baseline beyond its tolerance.

Exit 2 with one line, before any comparison of that file, when a metric value is null or
not finite, when a baseline value or tolerance is not a finite number >= 0, when the run
was made on another protocol (dataset, split, tie rule, precision_at) than its baseline,
or when the baseline is missing or records no protocol; the line names the command that
makes or completes the baseline."""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "compare metrics with committed baselines; non-zero exit on any regression"


def add_arguments(p) -> None:
    p.add_argument("metrics", type=Path, nargs="*",
                   help="results/metrics/<experiment>.json files (default: those of params `targets`)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"),
                   help="with no metrics files given: check every target experiment of this params file "
                        "(targets whose data is unavailable are reported as skipped)")
    p.add_argument("--baselines", type=Path, default=Path("baselines"), help="directory of baselines (default baselines/)")


def run(args) -> int:
    from ..gate import check

    failed = 0
    for path in args.metrics or _target_metrics(args.params):
        regress, improve, new = check(path, args.baselines)
        print(f"{path}: {len(regress)} regression(s), {len(improve)} improvement(s) beyond tolerance, "
              f"{len(new)} metric(s) without a baseline")
        for f in regress:
            print(f"  REGRESSION {f.describe()}")
        for f in improve:
            print(f"  improved   {f.describe()}  (update the baseline to lock it in)")
        for name in new:
            print(f"  not gated  {name}")
        failed += len(regress)
    if failed:
        print(f"metrics gate FAILED: {failed} regression(s)", file=sys.stderr)
        return 1
    print("metrics gate passed")
    return 0


def _target_metrics(params_path: Path) -> list[Path]:
    from ..params import load
    from ..workflow import Plan, path

    plan = Plan(load(params_path))
    for exp, why in plan.skipped().items():
        print(f"{exp}: skipped, not gated: {why}")
    return [Path(path("metrics", experiment=e)) for e in plan.targets()]
