"""Arguments and helpers shared by the stage commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..params import ParamSlice, load_slice


def add_params_args(p: argparse.ArgumentParser, keys_help: str) -> None:
    p.add_argument("--params", type=Path, default=Path("params.yaml"),
                   help="params file (validated against workflow/schemas/params.schema.yaml)")
    p.add_argument("--keys", nargs="+", default=[], metavar="KEY",
                   help=f"dotted params keys this stage may read ({keys_help}); "
                        "the rule declares the same keys so that changing them reruns the stage")


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1, help="threads for numpy/torch/faiss (default 1)")


def params_of(args) -> ParamSlice:
    return load_slice(args.params, args.keys)


def set_threads(n: int) -> None:
    """Cap every thread pool at n (the job's Snakemake `threads`)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:  # optional: env vars above still apply to new pools
        pass


def evaluation_settings(params) -> dict:
    """params `evaluation`, updated by the experiment's own `evaluation` overrides when
    the rule declared them (e.g. tie_rule: index for the LDPH authors' protocol)."""
    cfg = dict(params.get_key("evaluation"))
    for key in params:
        if key.startswith("experiments.") and key.endswith(".evaluation"):
            cfg.update(params.get_key(key) or {})
    return cfg


def weights_file(cfg: dict) -> Path | None:
    """The local weights file a feature reads (an input to record; extractors whose
    registry entry has `weights`), else None."""
    from ..features.extractors import entry

    w = cfg.get("weights") if entry(cfg["extractor"]).weights else None
    return Path(w) if w and w not in ("torchvision", "random") and Path(w).is_file() else None
