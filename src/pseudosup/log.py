"""Logging and progress bars for stages (one log file per job, written by the rule)."""

from __future__ import annotations

import logging
import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")

log = logging.getLogger("pseudosup")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def progress(it: Iterable[T] | None, desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """A tqdm bar on stderr; when stderr is a log file, update at most every 10 s."""
    tty = sys.stderr.isatty()
    return tqdm(it, desc=desc, total=total, unit=unit, file=sys.stderr,
                mininterval=0.2 if tty else 10.0, ascii=not tty, dynamic_ncols=tty)


def byte_bar(desc: str, total: int | None, initial: int = 0) -> tqdm:
    """A byte-count bar (for downloads); update it with the number of bytes written."""
    tty = sys.stderr.isatty()
    return tqdm(desc=desc, total=total, initial=initial, unit="B", unit_scale=True,
                unit_divisor=1024, file=sys.stderr, mininterval=0.2 if tty else 10.0,
                ascii=not tty)
