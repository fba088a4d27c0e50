"""One interface for every dataset (after faiss's contrib/datasets.py).

A dataset is a fixed, ordered list of *items* (images or vectors). Everything else
refers to items by their position in that order ("item index"): labels, ground
truth, features (row i = item i) and splits (data/splits/*.json list item indices).

`registry.get(name) -> Dataset`; every method takes `raw`, the directory the download
stage made (`data/raw/<dataset>/`, a DVC output):

- `num_items(raw) -> int`
- `labels(raw)`: class labels, int64 (n,) for single-label sets (relevance "class");
  a multi-hot uint8 (n, L) for multi-label sets (NUS-WIDE, relevance "multilabel");
  the group id, int64 (n,), for Holidays and UKBench. Datasets without labels
  (TEXMEX vectors, Oxford/Paris) raise PseudosupError saying what to use instead.
- `image_source(raw)`: len(src), src[i] -> uint8 (H, W) grey or (H, W, 3) RGB of any
  size, src.ids -> item ids (file names). Image files are read lazily, straight from
  the archives in `raw` (no extraction of thousands of small files).
- `images(raw)`: all images as one uint8 array (n, H, W[, 3]); only for fixed-size sets
  (Fashion-MNIST, CIFAR-10); others raise and point to image_source.
- `vectors(raw)` (vector datasets): an (n, d) float32 array-like in item order, memory
  mapped: `v[a:b]`, `v[index_array]` and `v.batches(size)` read only those rows;
  `np.asarray(v)` loads everything once (one copy).
- `groundtruth(raw)`: the protocol's ground truth.
  * TEXMEX (relevance "groundtruth"): int64 (nq, K), row j = the official exact
    L2 neighbours of query j, as item indices of base vectors. Base vectors are items
    0..nb-1 and the splits' database is exactly that range, so these are also
    positions in the database.
  * Oxford5k / Paris6k / Holidays / UKBench (relevance "instance"): an
    `InstanceGroundTruth` (query items, per-query `ok` and `junk` item lists, query
    boxes for Oxford/Paris, and whether the query counts as a result).
- `parts(raw) -> {name: (start, stop)}`: named item ranges (e.g. TEXMEX base / query /
  learn, Oxford database / queries).
- `available(paths) -> (bool, reason)`: whether the dataset can be obtained here
  (local-only datasets need `paths.shared_data`); never raises.

Files: each dataset lists its raw files (`RemoteFile`: URLs and mirrors, size,
checksum or the documented reason none is known, how the file lands in `raw`).
The download stage fetches and verifies them (see download.py). See
docs/datasets.md for the table of datasets, sources and protocols.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import PseudosupError
from .splits import STANDIN_PREFIX

SHARED_ENV = "PSEUDOSUP_SHARED_DATA"
RELEVANCE = ("class", "multilabel", "groundtruth", "instance")


@dataclass(frozen=True)
class Member:
    """A file inside an archive that is extracted into the raw directory as `name`."""

    path: str                   # path inside the archive
    name: str                   # file name in the raw directory
    size: int | None = None     # bytes, when known (checked)
    check: str | None = None    # format check of the extracted file: fvecs | ivecs | bvecs


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset's raw copy.

    `md5`/`sha256`/`sha512` check the file as downloaded from `urls` (the first URL is
    the official source, the others mirrors). `content_sha256` checks the decompressed
    payload of a gzip file: it holds for every source, including re-compressed copies
    (Debian's dataset packages re-gzip the originals). When no digest is known
    (`checksum_note` says why), the file is verified by `size` (when known) and
    `check`, a full format check ("tar.gz", "tar", "zip", "pickle", "gzip", "text").

    `unpack` says how the verified file lands in the raw directory:
    - "copy": as is;
    - "extract": only `members` are extracted (each to its `name`); the archive
      itself stays in the download cache;
    - "tar": as an uncompressed tar (a .tar.gz / .tgz is decompressed once) plus a
      member index `<name>.index.json`, so images are read straight from it.
    """

    name: str
    urls: tuple[str, ...] = ()
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    sha512: str | None = None
    content_sha256: str | None = None
    checksum_note: str = ""
    check: str | None = None
    unpack: str = "copy"
    members: tuple[Member, ...] = ()

    @property
    def digests(self) -> dict[str, str]:
        return {k: v for k, v in (("md5", self.md5), ("sha256", self.sha256), ("sha512", self.sha512)) if v}

    @property
    def raw_names(self) -> list[str]:
        """The files this one becomes in the raw directory."""
        if self.unpack == "extract":
            return [m.name for m in self.members]
        if self.unpack == "tar":
            return [tar_name(self.name), tar_name(self.name) + ".index.json"]
        return [self.name]


def tar_name(name: str) -> str:
    """Name of the uncompressed tar made from an archive (x.tar.gz / x.tgz -> x.tar)."""
    for suffix in (".tar.gz", ".tgz"):
        if name.endswith(suffix):
            return name[: -len(suffix)] + ".tar"
    return name


@dataclass
class InstanceGroundTruth:
    """Instance-retrieval ground truth, in item indices.

    `queries[j]` is the item used as query j; `ok[j]` the relevant items (Oxford/Paris:
    good + ok), `junk[j]` items removed from the ranking before scoring (Oxford/Paris;
    empty elsewhere); `boxes` (nq, 4) x1, y1, x2, y2 of the query region in the
    original query image (Oxford/Paris; None elsewhere). `query_is_result`: UKBench
    counts the query itself among its 4 relevant images (N-S score); Holidays excludes
    the query from the ranking.
    """

    queries: np.ndarray
    ok: list[np.ndarray]
    junk: list[np.ndarray]
    boxes: np.ndarray | None = None
    query_is_result: bool = False

    def __len__(self) -> int:
        return len(self.queries)


class ArrayImages:
    """An image source over an in-memory uint8 array (n, H, W[, 3])."""

    def __init__(self, images: np.ndarray, ids: list[str] | None = None):
        self.array = images
        self.ids = ids if ids is not None else [str(i) for i in range(len(images))]

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.array[i]


def shared_data_dir(paths: dict | None = None) -> Path:
    """The real development data: $PSEUDOSUP_SHARED_DATA, else params `paths.shared_data`
    (relative to the project root, i.e. the working directory of every stage)."""
    if os.environ.get(SHARED_ENV):
        return Path(os.environ[SHARED_ENV])
    return Path((paths or {}).get("shared_data") or "../shared/data")


@dataclass
class Dataset:
    name: str
    kind: str  # "images" | "vectors"
    description: str
    homepage: str
    license: str
    files: tuple[RemoteFile, ...] = ()
    classes: tuple[str, ...] = ()
    local_dirs: tuple[str, ...] = field(default_factory=tuple)
    relevance: str = "class"
    shared: str | None = None   # local-only: sub-directory of paths.shared_data holding the files
    notes: str = ""             # what the user must do when it cannot be downloaded; caveats
    options: dict = field(default_factory=dict)  # params `datasets.<name>` (download stage only)

    # --- to be provided by each dataset -------------------------------------------
    def num_items(self, raw: Path) -> int:
        raise NotImplementedError

    def labels(self, raw: Path) -> np.ndarray:
        """Class label per item (int64), in item order; see the module docstring."""
        raise PseudosupError(f"dataset '{self.name}' has no class labels (relevance '{self.relevance}'); "
                             "use groundtruth(raw)")

    def images(self, raw: Path) -> np.ndarray:
        """All images as uint8 (n, H, W) or (n, H, W, 3), in item order (small,
        fixed-size datasets only)."""
        if self.kind != "images":
            raise PseudosupError(f"dataset '{self.name}' holds vectors, not images; use vectors(raw)")
        raise PseudosupError(f"dataset '{self.name}': images have different sizes; use image_source(raw)")

    def image_source(self, raw: Path):
        """The images in item order as a sequence: len(src), src[i] -> uint8 array
        (H, W) grey or (H, W, 3) RGB of any size, src.ids -> item ids. Datasets of
        files (Oxford, Holidays, image folders) read lazily; this default wraps
        images()."""
        return ArrayImages(self.images(raw))

    def vectors(self, raw: Path):
        raise PseudosupError(f"dataset '{self.name}' holds images, not vectors; use image_source(raw)")

    def groundtruth(self, raw: Path):
        raise PseudosupError(f"dataset '{self.name}' has no ground-truth file: relevance is "
                             f"'{self.relevance}' (use labels(raw))")

    def parts(self, raw: Path) -> dict[str, tuple[int, int]]:
        return {"all": (0, self.num_items(raw))}

    def resized(self, counts: dict) -> "Dataset":
        """This dataset with other expected sizes (a stand-in's `counts`; see
        data/standin.py): key k sets the reader's field `expected_<k>` (e.g. Holidays
        images/groups, UKBench images, NUS-WIDE images/concepts). Readers whose sizes
        live elsewhere override it (TEXMEX, CIFAR-10, Oxford/Paris)."""
        import dataclasses

        if not counts:
            return self
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(k for k in counts if f"expected_{k}" not in names)
        if unknown:
            known = sorted(n[len("expected_"):] for n in names if n.startswith("expected_"))
            raise PseudosupError(f"dataset '{self.name}': unknown counts {unknown} (it has: {known})")
        changes = {f"expected_{k}": int(v) for k, v in counts.items()}
        if "_cache" in names:
            changes["_cache"] = {}
        return dataclasses.replace(self, **changes)

    def materialise_local(self, tmp: Path) -> dict:
        """Datasets made from material the user provides (image folders, the NUS-WIDE
        images) write it into the raw directory `tmp` here; returns manifest entries."""
        return {}

    def available(self, paths: dict | None = None) -> tuple[bool, str]:
        """(True, where it comes from) or (False, why not and what to do). Never raises."""
        if self.shared is not None:
            root = shared_data_dir(paths) / self.shared
            if not root.is_dir():
                return False, (f"dataset '{self.name}' is read from the real data directory {root}, which is absent "
                               f"(params paths.shared_data or ${SHARED_ENV}); it is never downloaded or faked")
            missing = [f.name for f in self.files if not (root / f.name).is_file()]
            if missing:
                return False, f"dataset '{self.name}': {root} lacks {', '.join(missing)}"
            return True, f"local files in {root}"
        mirror = os.environ.get("PSEUDOSUP_MIRROR") or (paths or {}).get("mirror")
        yours = [f.name for f in self.files if not f.urls
                 and not (mirror and any((Path(mirror) / d / f.name).is_file() for d in ("", self.name)))]
        if yours:
            return False, f"dataset '{self.name}' needs {', '.join(yours)} from you (no download source): {self.notes}"
        hosts = sorted({u.split("/")[2] for f in self.files for u in f.urls[:1] if "://" in u})
        return True, "downloadable from " + ", ".join(hosts) if hosts else "no files needed"


_REGISTRY: dict[str, Callable[[], Dataset]] = {}
FOLDER_PREFIX = "folder-"

# Name -> the module that registers it (imported only when the dataset is used, so that
# listing names or using one dataset never imports the others, and a job's code
# dependencies are the plugin it uses: see pseudosup.workflow).
MODULES = {
    "cifar-10": "pseudosup.data.cifar",
    "cifar10-test-jpg": "pseudosup.data.cifar",
    "cifar10-mosaic2x2": "pseudosup.data.multilabel",
    "copydays-style-synth": "pseudosup.data.instance_bench",
    "fashion-mnist": "pseudosup.data.fashion_mnist",
    "gist-1m": "pseudosup.data.texmex",
    "holidays": "pseudosup.data.holidays",
    "holidays-rotated": "pseudosup.data.holidays",
    "mirflickr-25k": "pseudosup.data.mirflickr",
    "nus-wide": "pseudosup.data.nuswide",
    "nus-wide-lowlevel": "pseudosup.data.nuswide",
    "oxford5k": "pseudosup.data.oxford",
    "paris6k": "pseudosup.data.oxford",
    "scene": "pseudosup.data.multilabel",
    "sift-1m": "pseudosup.data.texmex",
    "sift-real-small": "pseudosup.data.texmex",
    "ukbench": "pseudosup.data.ukbench",
}
FOLDER_MODULE = "pseudosup.data.imagefolder"  # every `folder-<name>` dataset
STANDIN_MODULE = "pseudosup.data.standin"     # every `standin-<dataset>` (data/standin.py)
# Datasets whose plugin reads another registered dataset (get(name) inside the plugin).
USES = {"cifar10-mosaic2x2": ("cifar10-test-jpg",)}


def availability(name: str, paths: dict | None = None, options: dict | None = None) -> tuple[bool, str]:
    """`get(name).available(paths)` with the dataset's params options (`datasets.<name>`,
    e.g. NUS-WIDE's images), also for a dataset that cannot even be built here (a
    stand-in without its manifest): never raises."""
    import importlib

    if module_of(name) == STANDIN_MODULE:  # its manifest decides (imported by path: no job's code)
        ok, why = importlib.import_module(STANDIN_MODULE).available(name)
        if not ok:
            return ok, why
    try:
        ds = get(name)
        ds.options = {**ds.options, **(options or {})}
        return ds.available(paths)
    except PseudosupError as e:
        return False, str(e)


def to_download(name: str, paths: dict | None = None, root: Path = Path(".")) -> list[str]:
    """The files of dataset `name` that only the network can give here: not in its raw
    directory (data/raw/<name>, made by the download stage), the mirror, a local copy
    (e.g. Debian's package) or the download cache. Local-only datasets and stand-ins
    (served from this machine) download nothing."""
    ds = get(name)
    if ds.shared is not None or name.startswith(STANDIN_PREFIX) or (root / "data/raw" / name).is_dir():
        return []
    mirror = os.environ.get("PSEUDOSUP_MIRROR") or (paths or {}).get("mirror")
    dirs = [Path(d) for d in ds.local_dirs] + [root / "data/cache/downloads" / name]
    if mirror:
        dirs += [Path(mirror), Path(mirror) / name]
    def here(f: RemoteFile) -> bool:  # the archive, or (in a mirror) its extracted members
        names = [[f.name]] + ([[m.name for m in f.members]] if f.members else [])
        return any(all((d / n).is_file() for n in group) for d in dirs for group in names)
    return [f.name for f in ds.files if f.urls and not here(f)]


def register(name: str):
    def deco(factory: Callable[[], Dataset]):
        _REGISTRY[name] = factory
        return factory
    return deco


def module_of(name: str) -> str | None:
    """The module implementing dataset `name` (not imported); None for a dataset
    registered in this process by code outside the table (tests, your own scripts)."""
    if name in MODULES:
        return MODULES[name]
    if name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX):
        return FOLDER_MODULE
    if name.startswith(STANDIN_PREFIX) and name[len(STANDIN_PREFIX):] in MODULES:
        return STANDIN_MODULE
    if name in _REGISTRY:
        return None
    raise PseudosupError(f"unknown dataset '{name}'; registered: {names()} "
                         f"(or '{FOLDER_PREFIX}<name>' for an image folder of your own, "
                         f"'{STANDIN_PREFIX}<dataset>' for a stand-in: data/standin.py)")


def uses(name: str) -> list[str]:
    """`name` and the datasets its plugin reads, transitively."""
    out = [name]
    if name.startswith(STANDIN_PREFIX):  # a stand-in runs its real dataset's reader
        out += [n for n in uses(name[len(STANDIN_PREFIX):]) if n not in out]
    for other in USES.get(name, ()):
        out += [n for n in uses(other) if n not in out]
    return out


def get(name: str) -> Dataset:
    """The dataset called `name`, its module imported now. Names starting with
    `folder-` are the user's own image folders (params `datasets.<name>`; see imagefolder.py)."""
    import importlib

    path = module_of(name)
    if path is None:
        return _REGISTRY[name]()
    module = importlib.import_module(path)
    if path == STANDIN_MODULE:
        return module.standin(name)
    if name not in MODULES:
        return module.user_folder(name)
    if name not in _REGISTRY:
        raise PseudosupError(f"data/registry.py MODULES says dataset '{name}' is in {MODULES[name]}, but that "
                             f"module registers no such name; fix the table or the module's @register")
    return _REGISTRY[name]()


def names() -> list[str]:
    """Registered dataset names (no plugin is imported)."""
    return sorted(set(MODULES) | set(_REGISTRY))
