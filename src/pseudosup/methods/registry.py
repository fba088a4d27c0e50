"""Hashers by name (params.yaml `methods.<name>.hasher`).

The table below is the one place that says where each hasher lives and what it needs
(labels, images, PCA directions, a reference hasher). Nothing is imported until a
hasher is used (`get`), so listing names or reading capabilities is cheap, and a job's
code dependencies are the plugin it uses (see pseudosup.workflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..io import PseudosupError


@dataclass(frozen=True)
class Hasher:
    """Where a hasher lives and what its training needs."""

    module: str
    supervised: bool = False   # fit(X, labels): needs the training items' labels
    inputs: str = "features"   # "features" | "images" (reads the dataset's images)
    pca: bool = False          # projects onto `bits` PCA directions: bits <= feature dims
    zscore: bool = False       # scales those directions: bits <= varying feature columns
    reference: bool = False    # fits a reference hasher first (params `reference`)
    torch: bool = False        # trains a torch model (the train stage caps torch's threads)
    threads: bool = False      # its constructor takes `threads` (faiss searches in training): the job's are passed

    @property
    def reads_dataset(self) -> bool:
        """Training reads the dataset itself (labels or images), not only features."""
        return self.supervised or self.inputs == "images"


_H = "pseudosup.methods.hashing."
ENTRIES = {
    "bihalf": Hasher(_H + "bihalf", torch=True, threads=True),
    "dsrh": Hasher(_H + "dsrh", supervised=True, torch=True),
    "dsrh_cnn": Hasher(_H + "dsrh", supervised=True, inputs="images", torch=True),
    "greedyhash": Hasher(_H + "greedyhash", torch=True, threads=True),
    "itq": Hasher(_H + "itq", pca=True),
    "ldph": Hasher(_H + "ldph", pca=True, zscore=True, reference=True),
    "ldph_nn": Hasher(_H + "ldph_nn", pca=True, zscore=True, reference=True, threads=True),
    "lsh": Hasher(_H + "lsh"),
    "mls3rduh": Hasher(_H + "mls3rduh", torch=True, threads=True),
    "pcah": Hasher(_H + "pcah", pca=True),
    "sdc": Hasher(_H + "sdc", torch=True, threads=True),
    "sdc_graph": Hasher(_H + "sdc_graph", torch=True, threads=True),
    "sdc_rnn": Hasher(_H + "sdc", torch=True, threads=True),
    "sh": Hasher(_H + "sh"),
}
DEFAULT_REFERENCE = "itq"  # params schema $defs.ldph_reference default
CAPABILITIES = ("supervised", "inputs")  # also class attributes, set from the entry

HASHERS: dict[str, Callable] = {}


def register(name: str):
    """Class decorator of a hasher plugin: the class gets its name and the entry's
    capabilities (a class attribute that contradicts the table is an error)."""
    def deco(cls):
        e = entry(name)
        for cap in CAPABILITIES:
            declared = cls.__dict__.get(cap, getattr(e, cap))
            if declared != getattr(e, cap):
                raise PseudosupError(f"hasher '{name}' ({cls.__module__}) declares {cap}={declared!r} but "
                                     f"methods/registry.py ENTRIES says {getattr(e, cap)!r}; make them agree")
            setattr(cls, cap, getattr(e, cap))
        HASHERS[name] = cls
        cls.name = name
        return cls
    return deco


def entry(name: str) -> Hasher:
    """What hasher `name` needs, without importing it."""
    if name not in ENTRIES:
        raise PseudosupError(f"unknown hasher '{name}'; registered: {names()}")
    return ENTRIES[name]


def reference_of(cfg: dict) -> str | None:
    """The reference hasher a method's params use (None for hashers without one)."""
    return cfg.get("reference", DEFAULT_REFERENCE) if entry(cfg["hasher"]).reference else None


def get(name: str):
    """The hasher class `name` (its module imported now)."""
    import importlib

    e = entry(name)
    importlib.import_module(e.module)
    if name not in HASHERS:
        raise PseudosupError(f"methods/registry.py ENTRIES says hasher '{name}' is in {e.module}, but that "
                             "module registers no such name; fix the table or the module's @register")
    return HASHERS[name]


def names() -> list[str]:
    """Registered hasher names (no plugin is imported)."""
    return sorted(ENTRIES)
