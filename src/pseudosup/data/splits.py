"""Committed split files: named, seeded index sets into a dataset's item order.

A split file (data/splits/<name>.json) lists its parts (queries, database, train,
and e.g. pretrain) as index ranges or explicit index lists into the dataset's item
order, plus how relevance is defined:

- "class": same label (labels(raw), int64);
- "multilabel": at least one shared concept (labels(raw), multi-hot); `extra` names
  the label columns of the protocol and the mAP cut-off (`map_at`);
- "groundtruth": the dataset's groundtruth(raw) (TEXMEX: top-`top_k` exact L2
  neighbours of each query, indices into the database);
- "instance": the dataset's groundtruth(raw), an InstanceGroundTruth (Oxford/Paris
  ok/junk and boxes, Holidays and UKBench groups); `extra.protocol` says how to score.

`extra` (absent when empty) carries such protocol details. `data/splits/SHA256SUMS`
records each file's sha256 (the `sha256sum -c` format); loading a split verifies
it, so results always say exactly which split they used. Files are made by
`pseudosup make-split` from a protocol defined here; protocols that need the data
(labels, file lists) are drawn on the first machine that has it, and committed.

Named protocols belong to one dataset. The generic `per-class` protocol draws a split
of any dataset with class labels (e.g. your own `folder-<name>` images) from counts:
queries per class, database (the rest, or a number per class), training set (per
class, drawn from the database) and a seed; the counts come from `make-split` options
or from a params `splits:` entry, and are recorded in the file's `extra`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import PseudosupError, atomic_path

# A stand-in dataset, and a split drawn on it, is named standin-<name> (data/standin.py).
# Defined here, beside the protocols, so that params validation (which every stage runs)
# can recognise those names without importing the stand-in and registry code.
STANDIN_PREFIX = "standin-"

SUMS_NAME = "SHA256SUMS"
MANIFEST = "MANIFEST.json"  # written by the download stage; names the dataset
PER_CLASS = "per-class"
SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class Split:
    name: str
    dataset: str
    description: str
    relevance: str  # "class" | "multilabel" | "groundtruth" | "instance" (see above)
    seed: int
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def part(self, name: str) -> np.ndarray:
        if name not in self.parts:
            raise PseudosupError(f"split '{self.name}' has no part '{name}' (has: {sorted(self.parts)})")
        return self.parts[name]

    def to_json(self) -> str:
        parts = {k: _encode(v) for k, v in self.parts.items()}
        doc = {"name": self.name, "dataset": self.dataset, "description": self.description,
               "relevance": self.relevance, "seed": self.seed,
               "counts": {k: int(len(v)) for k, v in self.parts.items()}, "parts": parts}
        if self.extra:  # absent when empty: older split files stay byte-identical
            doc["extra"] = self.extra
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
        return Split(doc["name"], doc["dataset"], doc["description"], doc["relevance"], doc["seed"], parts,
                     doc.get("extra", {}))
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

PROTOCOLS: dict[str, Callable[[object, int], Split]] = {}
PROTOCOL_INFO: dict[str, dict] = {}
NEEDS = ("labels", "raw", "layout")


def protocol(name: str, dataset: str, summary: str, needs: str = "labels"):
    """Register how split `name` is drawn. The function gets, by `needs`: "labels" ->
    labels(raw); "raw" -> (dataset, raw directory); "layout" -> the dataset only (the
    split follows from the dataset's documented file layout, e.g. TEXMEX counts)."""
    assert needs in NEEDS

    def deco(fn):
        # counts must be named parameters: `protocol_counts` checks a stand-in's against them
        assert not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()), name
        PROTOCOLS[name] = fn
        PROTOCOL_INFO[name] = {"dataset": dataset, "summary": summary, "needs": needs}
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
    """Draw a label-based protocol from its labels (see draw_split for the others)."""
    if name not in PROTOCOLS:
        raise PseudosupError(f"unknown protocol '{name}'; defined: {sorted(PROTOCOLS)}")
    if PROTOCOL_INFO[name]["needs"] != "labels":
        raise PseudosupError(f"protocol '{name}' is not drawn from labels; use draw_split")
    return PROTOCOLS[name](labels, seed)


def draw_split(name: str, raw: str | Path | None, seed: int, dataset: str | None = None) -> Split:
    """Draw protocol `name` from the dataset's raw directory (not needed for layout
    protocols), and check every index against the dataset. `dataset`, when given, must
    be the protocol's (a protocol drawn from another dataset's data is meaningless)."""
    from . import registry

    check_protocol_name(name)
    check_protocol_dataset(name, dataset)
    ds = registry.get(PROTOCOL_INFO[name]["dataset"])
    if PROTOCOL_INFO[name]["needs"] != "layout" and raw is not None and Path(raw).is_dir():
        check_protocol_dataset(name, raw_dataset(raw), f" ({Path(raw) / MANIFEST} says so)")
    return draw_from(name, ds, raw, seed)


def check_protocol_name(name: str) -> None:
    if name not in PROTOCOLS:
        raise PseudosupError(f"unknown protocol '{name}'; defined: {sorted(PROTOCOLS)} "
                             f"(or '{PER_CLASS}' for any dataset with classes)")


def draw_from(name: str, ds, raw: str | Path | None, seed: int, counts: dict | None = None,
              where: str = "") -> Split:
    """Protocol `name` drawn from dataset object `ds` (the registered dataset or a
    stand-in of it): from its layout, or from its labels / files in `raw`; every index
    checked against the dataset whenever its raw directory is given. `counts` are
    keyword arguments of the protocol function (a tiny stand-in scales them); `where`
    names the file they came from, for the error."""
    counts = counts or {}
    draw = PROTOCOLS[name]
    takes = protocol_counts(name)
    unknown = sorted(set(counts) - set(takes))
    if unknown:
        raise PseudosupError(f"{where or 'counts'}: protocol '{name}' takes no counts {unknown} "
                             f"(it takes: {takes or 'none'})")
    needs = PROTOCOL_INFO[name]["needs"]
    if needs == "layout":
        split = draw(ds, seed, **counts)
    else:
        if raw is None or not Path(raw).is_dir():
            raise PseudosupError(f"protocol '{name}' is drawn from the data of '{ds.name}': pass its raw directory "
                                 f"(e.g. --raw data/raw/{ds.name}, made by `pseudosup download`); got {raw}")
        source = ds.labels(raw) if needs == "labels" else (ds, Path(raw))
        split = draw(source, seed, **counts)
    if needs != "layout" or raw is not None:
        check_split(split, ds.num_items(raw))
    return split


def protocol_counts(name: str) -> list[str]:
    """The keyword counts protocol `name` can be scaled by: the parameters of its
    function after the data and the seed."""
    params = list(inspect.signature(PROTOCOLS[name]).parameters.values())[2:]
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_protocol_dataset(name: str, dataset: str | None, why: str = "") -> None:
    """A named protocol draws a split of its own dataset only."""
    own = PROTOCOL_INFO[name]["dataset"]
    if dataset is not None and dataset != own:
        raise PseudosupError(f"protocol '{name}' draws a split of dataset '{own}', not of '{dataset}'{why}; "
                             f"for '{dataset}' use `pseudosup make-split --protocol {PER_CLASS} --dataset "
                             f"{dataset} --queries-per-class N --name <split>` (or one of its own protocols: "
                             "`pseudosup make-split --list`)")


def raw_dataset(raw: str | Path) -> str | None:
    """The dataset a raw directory holds, from its MANIFEST.json (None when unknown)."""
    manifest = Path(raw) / MANIFEST
    try:
        return json.loads(manifest.read_text()).get("dataset")
    except (OSError, ValueError, AttributeError):
        return None


def check_split(split: Split, num_items: int) -> None:
    """Every index within the dataset, no duplicates, queries disjoint from the
    database unless the protocol ranks every item against all (instance sets)."""
    for part, idx in split.parts.items():
        if len(idx) and (idx.min() < 0 or idx.max() >= num_items):
            raise PseudosupError(f"split '{split.name}': part '{part}' indexes outside the {num_items} items")
        if not (np.diff(idx) > 0).all() and len(np.unique(idx)) != len(idx):  # sorted parts: cheap check
            raise PseudosupError(f"split '{split.name}': part '{part}' lists an item twice")
    if not split.extra.get("queries_in_database") and "queries" in split.parts and "database" in split.parts:
        if _overlaps(split.parts["queries"], np.sort(split.parts["database"])):
            raise PseudosupError(f"split '{split.name}': queries and database overlap")


def _overlaps(a: np.ndarray, sorted_b: np.ndarray) -> bool:
    if not len(a) or not len(sorted_b):
        return False
    pos = np.minimum(np.searchsorted(sorted_b, a), len(sorted_b) - 1)
    return bool((sorted_b[pos] == a).any())


def per_label_sample(multihot: np.ndarray, pool: np.ndarray, per_label: int, rng: np.random.Generator) -> np.ndarray:
    """For each label column in turn, `per_label` items of `pool` carrying it that were
    not drawn yet (multi-label sets: an item counts for one label only), sorted."""
    taken = np.zeros(len(multihot), dtype=bool)
    chosen = []
    for c in range(multihot.shape[1]):
        cand = pool[(multihot[pool, c] > 0) & ~taken[pool]]
        if len(cand) < per_label:
            raise PseudosupError(f"label column {c} has {len(cand)} items left, fewer than {per_label}")
        pick = rng.choice(cand, per_label, replace=False)
        taken[pick] = True
        chosen.append(pick)
    return np.sort(np.concatenate(chosen))


def _ranges(**parts) -> dict[str, np.ndarray]:
    return {k: np.arange(a, b, dtype=np.int64) for k, (a, b) in parts.items()}


def _info(name: str) -> tuple[str, str]:
    return PROTOCOL_INFO[name]["dataset"], PROTOCOL_INFO[name]["summary"]


# --- CIFAR-10 --------------------------------------------------------------------------

@protocol("cifar10-test-q1k", "cifar10-test-jpg",
          "the 10,000 CIFAR-10 test images (JPEG copies): 1,000 queries (100 per class), the other 9,000 "
          "are the database; training set = 5,000 database images (500 per class), the count of the "
          "standard CIFAR-10 hashing protocol; relevance = same class")
def _cifar10_test_q1k(labels: np.ndarray, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    everything = np.arange(len(labels))
    queries = per_class_sample(labels, everything, 100, rng)
    database = np.setdiff1d(everything, queries)
    train = per_class_sample(labels, database, 500, rng)
    return Split("cifar10-test-q1k", *_info("cifar10-test-q1k"), "class", seed,
                 {"queries": queries, "database": database, "train": train})


@protocol("cifar10-q1k", "cifar-10",
          "CIFAR-10 (all 60,000): 1,000 test images as queries (100 per class), the other 59,000 images "
          "are the database; training set = 5,000 database images (500 per class); relevance = same class")
def _cifar10_q1k(labels: np.ndarray, seed: int, per_query: int = 100, per_train: int = 500) -> Split:
    # the counts are keywords for tiny stand-ins only (data/standin.py records them in the split)
    rng = np.random.default_rng(seed)
    n = len(labels)  # 60,000; a stand-in has fewer, its test batch still the last sixth
    queries = per_class_sample(labels, np.arange(n * 5 // 6, n), per_query, rng)
    database = np.setdiff1d(np.arange(n), queries)
    train = per_class_sample(labels, database, per_train, rng)
    return Split("cifar10-q1k", *_info("cifar10-q1k"), "class", seed,
                 {"queries": queries, "database": database, "train": train})


# --- NUS-WIDE ---------------------------------------------------------------------------

NUSWIDE21 = ("the 21 most frequent of the 81 concepts; items with at least one of them (195,834 with the "
             "full image set): 2,100 queries (100 per concept), all other such items are the database, "
             "training set = 10,500 database items (500 per concept); relevance = at least one shared "
             "concept among the 21; mAP over the top 5,000")


def nuswide_protocol(name: str, source, seed: int, top: int = 21, per_query: int = 100,
                     per_train: int = 500, map_at: int = 5000) -> Split:
    ds, raw = source
    labels = ds.labels(raw)
    counts = labels.sum(axis=0)
    columns = np.sort(np.argsort(-counts, kind="stable")[:top])
    pool = np.flatnonzero(labels[:, columns].any(axis=1))
    left_out = np.intersect1d(pool, ds.missing(raw))
    pool = np.setdiff1d(pool, left_out)
    rng = np.random.default_rng(seed)
    queries = per_label_sample(labels[:, columns], pool, per_query, rng)
    database = np.setdiff1d(pool, queries)
    train = per_label_sample(labels[:, columns], database, per_train, rng)
    concepts = ds.concepts(raw)
    extra = {"label_columns": columns.tolist(), "concepts": [concepts[c] for c in columns],
             "map_at": map_at, "items_left_out_missing_images": int(len(left_out))}
    return Split(name, *_info(name), "multilabel", seed,
                 {"queries": queries, "database": database, "train": train}, extra)


# the same draw on the image archive and on the official low-level features; partial keeps
# the counts visible to `protocol_counts` (a stand-in may scale them)
protocol("nuswide21-q2100", "nus-wide", NUSWIDE21, needs="raw")(
    functools.partial(nuswide_protocol, "nuswide21-q2100"))
protocol("nuswide21-q2100-lowlevel", "nus-wide-lowlevel", NUSWIDE21 + " (official low-level features)",
         needs="raw")(functools.partial(nuswide_protocol, "nuswide21-q2100-lowlevel"))


# --- TEXMEX vectors: the official files --------------------------------------------------

def texmex_split(name: str, ds, train: tuple[int, int] | None, seed: int) -> Split:
    nb, nq = ds.counts["base"], ds.counts["query"]
    train = train or (nb + nq, nb + nq + ds.counts["learn"])
    return Split(name, *_info(name), "groundtruth", seed,
                 _ranges(queries=(nb, nb + nq), database=(0, nb), train=train),
                 {"top_k": ds.top_k, "groundtruth": ds.role_files["groundtruth"],
                  "groundtruth_indexes": "database positions (= base vector numbers)"})


@protocol("sift1m-k100", "sift-1m",
          "SIFT-1M official files: the 10,000 query vectors; the 1,000,000 base vectors are the database; "
          "training set = the 100,000 learn vectors; relevance = the official exact L2 top-100 of each query",
          needs="layout")
def _sift1m(ds, seed: int) -> Split:
    return texmex_split("sift1m-k100", ds, None, seed)


@protocol("sift1m-ldph-k100", "sift-1m",
          "SIFT-1M as in the LDPH authors' code: the 10,000 queries, the 1,000,000 base vectors as "
          "database, training set = the first 20,000 base vectors; relevance = official top-100",
          needs="layout")
def _sift1m_ldph(ds, seed: int) -> Split:
    return texmex_split("sift1m-ldph-k100", ds, (0, 20_000), seed)


@protocol("gist1m-k100", "gist-1m",
          "GIST-1M official files: the 1,000 query vectors; the 1,000,000 base vectors are the database; "
          "training set = the 500,000 learn vectors; relevance = the official exact L2 top-100",
          needs="layout")
def _gist1m(ds, seed: int) -> Split:
    return texmex_split("gist1m-k100", ds, None, seed)


@protocol("gist1m-ldph-k100", "gist-1m",
          "GIST-1M with the LDPH authors' SIFT-1M rule: the 1,000 queries, the 1,000,000 base vectors as "
          "database, training set = the first 20,000 base vectors; relevance = official top-100",
          needs="layout")
def _gist1m_ldph(ds, seed: int, train: int = 20_000) -> Split:
    # `train`: a tiny stand-in (tests) scales it; a full-size one keeps the 20,000
    return texmex_split("gist1m-ldph-k100", ds, (0, train), seed)


@protocol("sift-real-small-k100", "sift-real-small",
          "sift-real-small (DERIVED SIFT of 30 real photos, not SIFT-1M): its 1,000 query vectors; all "
          "47,646 base vectors are the database; training set = the first 20,000 base vectors (the LDPH "
          "authors' SIFT setting); relevance = its exact L2 top-100 ground truth file",
          needs="layout")
def _sift_real_small(ds, seed: int) -> Split:
    return texmex_split("sift-real-small-k100", ds, (0, 20_000), seed)


# --- instance retrieval --------------------------------------------------------------------

def buildings_split(name: str, source, seed: int) -> Split:
    ds, raw = source
    parts = ds.parts(raw)
    return Split(name, *_info(name), "instance", seed,
                 _ranges(queries=parts["queries"], database=parts["database"], train=parts["database"]),
                 {"protocol": "oxford", "queries_cropped": True, "positives": "good+ok", "junk": "removed",
                  "ap": "trapezoid (revisitop compute_map)", "groundtruth": ds.gnd_file})


@protocol("oxford5k-55q", "oxford5k",
          "Oxford5k: the 55 queries (cropped to their boxes) against the 5,063 database images; "
          "relevant = good + ok, junk removed from the ranking; training set = the database (unsupervised "
          "methods); drawn from gnd_oxford5k.pkl", needs="raw")
def _oxford5k(source, seed: int) -> Split:
    return buildings_split("oxford5k-55q", source, seed)


@protocol("paris6k-55q", "paris6k",
          "Paris6k: the 55 queries (cropped to their boxes) against the 6,392 database images; "
          "relevant = good + ok, junk removed; training set = the database; drawn from gnd_paris6k.pkl",
          needs="raw")
def _paris6k(source, seed: int) -> Split:
    return buildings_split("paris6k-55q", source, seed)


@protocol("holidays-500q", "holidays",
          "INRIA Holidays: the first image of each of the 500 groups queries all 1,491 images (itself "
          "excluded from its ranking); relevant = same group; training set = all images", needs="raw")
def _holidays(source, seed: int) -> Split:
    ds, raw = source
    n = ds.num_items(raw)
    queries = ds.groundtruth(raw).queries
    return Split("holidays-500q", *_info("holidays-500q"), "instance", seed,
                 {"queries": queries, **_ranges(database=(0, n), train=(0, n))},
                 {"protocol": "holidays", "queries_in_database": True, "query_in_ranking": False,
                  "ap": "trapezoid (INRIA holidays_map)"})


@protocol("ukbench-all", "ukbench",
          "UKBench: each of the 10,200 images queries all 10,200 (itself included); relevant = the 4 images "
          "of its object; score = N-S (relevant images in the top 4, 4 = perfect)", needs="layout")
def _ukbench(ds, seed: int) -> Split:
    n = ds.expected_images
    return Split("ukbench-all", *_info("ukbench-all"), "instance", seed,
                 _ranges(queries=(0, n), database=(0, n), train=(0, n)),
                 {"protocol": "ukbench", "queries_in_database": True, "query_in_ranking": True,
                  "score": "N-S: relevant in the top 4"})


@protocol("scene-test", "scene",
          "scene (Boutell, 294 colour moments, 6 labels): the 1,196 test rows are the queries; the 1,211 "
          "training rows are the database and the training set; relevance = number of shared labels "
          "(multi-label)", needs="raw")
def _scene_test(source, seed: int) -> Split:
    ds, raw = source
    parts = ds.parts(raw)
    return Split("scene-test", *_info("scene-test"), "multilabel", seed,
                 _ranges(queries=parts["test"], database=parts["train"], train=parts["train"]))


@protocol("cifar10-mosaic2x2-q500", "cifar10-mosaic2x2",
          "cifar10-mosaic2x2 (DERIVED: seeded 2x2 mosaics of CIFAR-10 test JPEGs, labels = classes present): "
          "the 500 query mosaics against the 5,000 database mosaics, which are also the training set; "
          "query and database mosaics come from disjoint source images; relevance = number of shared "
          "classes (multi-label)", needs="raw")
def _mosaic_q500(source, seed: int) -> Split:
    ds, raw = source
    parts = ds.parts(raw)
    return Split("cifar10-mosaic2x2-q500", *_info("cifar10-mosaic2x2-q500"), "multilabel", seed,
                 _ranges(queries=parts["queries"], database=parts["database"], train=parts["database"]))


# --- the generic protocol: counts per class, any dataset with classes ---------------------

def check_split_name(name: str) -> None:
    if not SPLIT_NAME.fullmatch(name or "") or name.endswith(".json"):
        raise PseudosupError(f"split name {name!r}: use letters, digits, '-', '_' and '.' (it names "
                             f"data/splits/<name>.json)")
    if name in PROTOCOLS:
        raise PseudosupError(f"split name '{name}' is the named protocol of dataset "
                             f"'{PROTOCOL_INFO[name]['dataset']}'; choose another name")


def per_class_summary(dataset: str, queries: int, database: int | None, train: int | None) -> str:
    db = "all the other items" if database is None else f"{database} of the other items per class"
    tr = "the whole database" if train is None else f"{train} database items per class"
    return (f"{dataset}, generic per-class protocol: {queries} queries per class; database = {db}; "
            f"training set = {tr}; relevance = same class")


def draw_per_class(name: str, dataset: str, raw: str | Path, seed: int, queries_per_class: int,
                   database_per_class: int | None = None, train_per_class: int | None = None) -> Split:
    """Draw split `name` of `dataset` (class labels) with the generic per-class protocol:
    queries first, then the database from the rest, then the training set from the
    database, each with `rng` seeded once, so the same data and counts give the same file."""
    from . import registry

    check_split_name(name)
    ds = registry.get(dataset)
    if ds.relevance != "class":
        raise PseudosupError(f"protocol '{PER_CLASS}' needs a dataset with one class per item; '{dataset}' has "
                             f"relevance '{ds.relevance}': use one of its protocols (`pseudosup make-split --list`)")
    if not Path(raw).is_dir():
        raise PseudosupError(f"{raw}: raw directory of '{dataset}' not found; make it first with "
                             f"`snakemake --cores 2 data/raw/{dataset}` (or pass --raw)")
    held = raw_dataset(raw)
    if held is not None and held != dataset:
        raise PseudosupError(f"{raw}: holds dataset '{held}' ({Path(raw) / MANIFEST}), not '{dataset}'")
    labels = ds.labels(raw)
    classes = _classes(ds, raw, labels)
    rng = np.random.default_rng(seed)
    everything = np.arange(len(labels))
    queries = _per_class(labels, everything, queries_per_class, rng, classes, "queries")
    rest = np.setdiff1d(everything, queries)
    database = rest if database_per_class is None else _per_class(labels, rest, database_per_class, rng, classes,
                                                                  "database items")
    train = database if train_per_class is None else _per_class(labels, database, train_per_class, rng, classes,
                                                                "training items (drawn from the database)")
    extra = {"protocol": PER_CLASS, "queries_per_class": queries_per_class,
             "database_per_class": database_per_class, "train_per_class": train_per_class,
             "classes": [n for _, n in classes]}
    split = Split(name, dataset, per_class_summary(dataset, queries_per_class, database_per_class, train_per_class),
                  "class", seed, {"queries": queries, "database": database, "train": train}, extra)
    check_split(split, len(labels))
    return split


def draw_defined(name: str, spec: dict, raw: str | Path | None = None) -> Split:
    """Draw the split a params `splits.<name>` entry defines (schema: $defs.split)."""
    raw = raw or Path("data/raw") / spec["dataset"]
    return draw_per_class(name, spec["dataset"], raw, spec.get("seed", 0), spec["queries_per_class"],
                          spec.get("database_per_class"), spec.get("train_per_class"))


def _classes(ds, raw, labels: np.ndarray) -> list[tuple[int, str]]:
    """(label value, class name) of every class present. Folder datasets label by the
    position in class_names, except list files with integer labels (names = the values)."""
    from .imagefolder import check_classes

    values = np.unique(labels).tolist()
    names = [str(c) for c in ds.class_names(raw)] if hasattr(ds, "class_names") else []
    if names != [str(v) for v in values] and values != list(range(len(names))):
        names = [str(v) for v in values]
    check_classes(names, f"dataset '{ds.name}' ({raw})")
    return list(zip(values, names))


def _per_class(labels: np.ndarray, pool: np.ndarray, per_class: int, rng: np.random.Generator,
               classes: list[tuple[int, str]], what: str) -> np.ndarray:
    """`per_class` items of every class from `pool`, sorted; a class with too few items
    left is named (all classes are drawn: none may silently drop out)."""
    if per_class < 1:
        raise PseudosupError(f"{what} per class: {per_class}; give at least 1")
    chosen = []
    for c, cname in classes:
        members = pool[labels[pool] == c]
        if len(members) < per_class:
            raise PseudosupError(f"class '{cname}' has {len(members)} items left for the {what}, fewer than "
                                 f"{per_class} per class: lower the count")
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


# --- MIRFLICKR-25K ----------------------------------------------------------------------------

MIRFLICKR25K_Q2000 = (
    "MIRFLICKR-25K with its 24 potential concepts (the <concept>.txt files of the v080 annotations, DSRH's 24 "
    "labels): images with at least one of them (unlabelled images are left out); 2,000 of them drawn at random "
    "(seeded) are the queries, all the others the database; training set = 5,000 database images drawn at "
    "random; relevance = number of shared concepts (multi-label, relevant = at least one); mAP over the top 1,000")


def mirflickr_protocol(name: str, source, seed: int, queries: int = 2000, train: int = 5000,
                       map_at: int = 1000) -> Split:
    """Queries, then the training set from the database, each drawn with one rng seeded
    once (uniformly, not per concept: the convention of the deep-hashing code this follows);
    items with none of the 24 labels are in no part. The split records its label columns
    (all 24 columns of labels(raw)) and how many items it left out."""
    ds, raw = source
    labels = ds.labels(raw)
    pool = np.flatnonzero(labels.any(axis=1))
    if len(pool) < queries + train:
        raise PseudosupError(f"protocol '{name}': {len(pool)} labelled images, fewer than the {queries} queries "
                             f"plus {train} training images drawn from the database; not the full dataset")
    rng = np.random.default_rng(seed)
    q = np.sort(rng.choice(pool, queries, replace=False))
    database = np.setdiff1d(pool, q)
    tr = np.sort(rng.choice(database, train, replace=False))
    extra = {"label_columns": list(range(labels.shape[1])), "concepts": list(ds.concepts(raw)),
             "label_set": "potential (<concept>.txt)", "map_at": map_at,
             "items_left_out_unlabelled": int(len(labels) - len(pool))}
    return Split(name, *_info(name), "multilabel", seed, {"queries": q, "database": database, "train": tr}, extra)


protocol("mirflickr25k-q2000", "mirflickr-25k", MIRFLICKR25K_Q2000, needs="raw")(
    functools.partial(mirflickr_protocol, "mirflickr25k-q2000"))
