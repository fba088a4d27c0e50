"""Committed split files: named, seeded index sets into a dataset's item order.

A split file (data/splits/<name>.json) lists its parts (queries, database, train,
and e.g. pretrain) as index ranges or explicit index lists, plus how relevance is
defined. `data/splits/SHA256SUMS` records each file's sha256 (the `sha256sum -c`
format); loading a split verifies it, so results always say exactly which split
they used. Files are made by `pseudosup make-split` from a protocol defined here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import PseudosupError, atomic_path

SUMS_NAME = "SHA256SUMS"


@dataclass
class Split:
    name: str
    dataset: str
    description: str
    relevance: str  # "class" (same label) | later: "multilabel", "groundtruth"
    seed: int
    parts: dict[str, np.ndarray] = field(default_factory=dict)

    def part(self, name: str) -> np.ndarray:
        if name not in self.parts:
            raise PseudosupError(f"split '{self.name}' has no part '{name}' (has: {sorted(self.parts)})")
        return self.parts[name]

    def to_json(self) -> str:
        parts = {k: _encode(v) for k, v in self.parts.items()}
        doc = {"name": self.name, "dataset": self.dataset, "description": self.description,
               "relevance": self.relevance, "seed": self.seed,
               "counts": {k: int(len(v)) for k, v in self.parts.items()}, "parts": parts}
        return json.dumps(doc, separators=(",", ":"), indent=None) + "\n"


def _encode(idx: np.ndarray) -> dict:
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        return {"range": [int(idx[0]), int(idx[0] + len(idx))]}
    return {"indices": idx.tolist()}


def _decode(part: dict, where: str) -> np.ndarray:
    if "range" in part:
        a, b = part["range"]
        return np.arange(a, b, dtype=np.int64)
    if "indices" in part:
        return np.asarray(part["indices"], dtype=np.int64)
    raise PseudosupError(f"{where}: a part needs 'range' or 'indices'")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_sums(directory: Path) -> dict[str, str]:
    sums = directory / SUMS_NAME
    if not sums.exists():
        return {}
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip().lstrip("*")] = digest
    return out


def write_sums(directory: Path, sums: dict[str, str]) -> None:
    with atomic_path(directory / SUMS_NAME) as tmp:
        tmp.write_text("".join(f"{sums[k]}  {k}\n" for k in sorted(sums)))


def load_split(path: str | Path, verify: bool = True) -> Split:
    path = Path(path)
    if not path.exists():
        raise PseudosupError(f"{path}: split file not found; splits are committed under data/splits/ "
                             "(make one with `pseudosup make-split --help`)")
    if verify:
        want = read_sums(path.parent).get(path.name)
        if want is None:
            raise PseudosupError(f"{path}: not listed in {path.parent / SUMS_NAME}; "
                                 "register it with `pseudosup make-split`")
        got = sha256_of(path)
        if got != want:
            raise PseudosupError(f"{path}: sha256 {got} does not match {path.parent / SUMS_NAME} ({want}); "
                                 "the split was modified: restore it (git checkout) or regenerate it")
    try:
        doc = json.loads(path.read_text())
        parts = {k: _decode(v, f"{path}: part '{k}'") for k, v in doc["parts"].items()}
        return Split(doc["name"], doc["dataset"], doc["description"], doc["relevance"], doc["seed"], parts)
    except (KeyError, ValueError, TypeError) as e:
        raise PseudosupError(f"{path}: malformed split file ({e})") from None


def save_split(split: Split, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{split.name}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(split.to_json())
    sums = read_sums(directory)
    sums[path.name] = sha256_of(path)
    write_sums(directory, sums)
    return path


# --- protocols: how each named split is drawn ------------------------------------------

PROTOCOLS: dict[str, Callable[[np.ndarray, int], Split]] = {}
PROTOCOL_INFO: dict[str, dict] = {}


def protocol(name: str, dataset: str, summary: str):
    def deco(fn):
        PROTOCOLS[name] = fn
        PROTOCOL_INFO[name] = {"dataset": dataset, "summary": summary}
        return fn
    return deco


def per_class_sample(labels: np.ndarray, pool: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """`per_class` items of each class drawn from `pool` without replacement, sorted."""
    chosen = []
    for c in np.unique(labels[pool]):
        members = pool[labels[pool] == c]
        if len(members) < per_class:
            raise PseudosupError(f"class {c} has {len(members)} items, fewer than {per_class}")
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


@protocol("fmnist-q1k", "fashion-mnist",
          "1,000 test images as queries (100 per class); the 60,000 training images are the "
          "database and the hashers' training set; the other 9,000 test images pre-train the "
          "small CNN (disjoint from queries and database); relevance = same class")
def _fmnist_q1k(labels: np.ndarray, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    test = np.arange(60_000, 70_000)
    queries = per_class_sample(labels, test, 100, rng)
    pretrain = np.setdiff1d(test, queries)
    database = np.arange(60_000)
    return Split("fmnist-q1k", "fashion-mnist", PROTOCOL_INFO["fmnist-q1k"]["summary"], "class", seed,
                 {"queries": queries, "database": database, "train": database, "pretrain": pretrain})


@protocol("fmnist-tiny", "fashion-mnist",
          "for tests: 200 test images as queries (20 per class), 1,000 other test images to "
          "pre-train (100 per class), 3,000 training images as database and training set "
          "(300 per class); relevance = same class")
def _fmnist_tiny(labels: np.ndarray, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    test = np.arange(60_000, 70_000)
    queries = per_class_sample(labels, test, 20, rng)
    pretrain = per_class_sample(labels, np.setdiff1d(test, queries), 100, rng)
    database = per_class_sample(labels, np.arange(60_000), 300, rng)
    return Split("fmnist-tiny", "fashion-mnist", PROTOCOL_INFO["fmnist-tiny"]["summary"], "class", seed,
                 {"queries": queries, "database": database, "train": database, "pretrain": pretrain})


def make_split(name: str, labels: np.ndarray, seed: int) -> Split:
    if name not in PROTOCOLS:
        raise PseudosupError(f"unknown protocol '{name}'; defined: {sorted(PROTOCOLS)}")
    return PROTOCOLS[name](labels, seed)
