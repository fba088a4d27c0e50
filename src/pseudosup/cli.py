"""`pseudosup <command>`: one subcommand per pipeline stage (thin: parse, call, write) and
per helper command (pseudosup.commands)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

from . import __version__
from .io import PseudosupError

# subcommand -> module path, imported only when the subcommand runs (or for --help).
# Pipeline stages (pseudosup.stages): a Snakemake rule runs each; in pipeline order.
COMMANDS = {
    "download": "pseudosup.stages.download",
    "make-split": "pseudosup.stages.make_split",
    "pretrain": "pseudosup.stages.pretrain",
    "fit-features": "pseudosup.stages.fit_features",
    "features": "pseudosup.stages.features",
    "mine": "pseudosup.stages.mine",
    "mine-cross": "pseudosup.stages.mine_cross",
    "build-instance-bench": "pseudosup.stages.build_instance_bench",
    "cie": "pseudosup.stages.cie",
    "finetune": "pseudosup.stages.finetune",
    "evaluate-retrieval": "pseudosup.stages.evaluate_retrieval",
    "plot-cie": "pseudosup.stages.plot_cie",
    "train": "pseudosup.stages.train",
    "evaluate": "pseudosup.stages.evaluate",
    "report": "pseudosup.stages.report",
    "plot": "pseudosup.stages.plot",
    "gallery": "pseudosup.stages.gallery",
    # helper commands (pseudosup.commands): no rule runs them
    "standin-params": "pseudosup.commands.standin_params",
    "datasets": "pseudosup.commands.datasets",
    "verify": "pseudosup.commands.verify",
    "check-metrics": "pseudosup.commands.check_metrics",
    "update-baselines": "pseudosup.commands.update_baselines",
    "validate-params": "pseudosup.commands.validate_params",
    "dvc-yaml": "pseudosup.commands.dvc_yaml",
    "dvc-status": "pseudosup.commands.dvc_status",
    "readme": "pseudosup.commands.readme",
    "slurm-check": "pseudosup.commands.slurm_check",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; `only`: build just that command's sub-command (a job imports and
    runs the code of its own stage, not of every stage)."""
    parser = argparse.ArgumentParser(
        prog="pseudosup",
        description="Pseudo-supervised learning for image search: the stages of the pipeline, which "
                    "Snakemake (and DVC) run and each of which also runs by hand, then helper commands "
                    "(datasets, checks, generated files). See README.md.")
    parser.add_argument("--version", action="version", version=f"pseudosup {__version__}")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            continue
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.add_argument("--log", type=Path, default=None,
                       help="write everything this command prints on stderr (logs, progress) to this file")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        p.set_defaults(_module=mod)
    return parser


def _redirect_stderr(log_path: Path):
    """Send fd 2 (Python, tqdm, C libraries) to the log; keep the terminal's stderr."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    terminal = os.dup(2)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    return os.fdopen(terminal, "w", buffering=1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv and argv[0] in COMMANDS else None).parse_args(argv)
    terminal = _redirect_stderr(args.log) if args.log else sys.stderr
    from .log import log, setup_logging

    setup_logging(args.verbose)
    log.info("pseudosup %s", " ".join(argv))
    t0 = time.time()
    try:
        code = args._module.run(args) or 0
    except PseudosupError as e:
        msg = f"pseudosup {args.stage}: error: {e}"
        if args.log:
            log.error("%s", e)
            msg += f"\n(log: {args.log})"
        print(msg, file=terminal)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception:
        log.exception("unexpected error")
        if terminal is not sys.stderr:
            print(f"pseudosup {args.stage}: unexpected error; traceback in {args.log}", file=terminal)
        raise
    log.info("done in %.1f s", time.time() - t0)
    return code


if __name__ == "__main__":
    sys.exit(main())
