"""Stand-ins: a registered dataset's reader over other files in the same archive format.

`standin-<name>` is dataset `<name>` (its reader, raw layout, file names, protocols)
fetched from the URLs and verified by the sha256 and sizes of a *stand-in manifest*
instead of the official ones, with its own item counts. It exists to prove the whole
download -> features -> train -> evaluate path at the size of a dataset this machine
cannot download (archives built by benchmarks/standins/, or tiny fixtures in tests/),
served from a local HTTP/FTP server. It is never the real dataset: its name, its
description, its splits (`standin-<protocol>`) and every result say so.

The manifest is `$PSEUDOSUP_STANDINS/<name>.json`:

    {"dataset": "sift-1m",
     "description": "how the files were made (from what, seed)",
     "files": {"sift.tar.gz": {"url": "ftp://127.0.0.1:2121/sift.tar.gz",
                               "sha256": "...", "size": 123}},
     "counts": {"base": 1000, "query": 10, "learn": 100}}

`files` must name every file of the real dataset (same names: the readers expect
them); `counts` (optional) are the dataset's own size parameters (see `resized` of
each dataset class: TEXMEX base/query/learn, CIFAR-10 per_batch); `protocol`
(optional, tiny stand-ins only) scales the counts of a protocol drawn from the data
(e.g. {"per_query": 10, "per_train": 50}), and the split says so; `options` (optional)
are the dataset's download options (params `datasets.<name>`, which win), e.g. the
images directory of NUS-WIDE.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from ..io import PseudosupError
from .registry import Dataset, RemoteFile
from .splits import STANDIN_PREFIX

PREFIX = STANDIN_PREFIX
ENV = "PSEUDOSUP_STANDINS"


def real_name(name: str) -> str:
    """`standin-sift-1m` -> `sift-1m`."""
    if not name.startswith(PREFIX) or len(name) == len(PREFIX):
        raise PseudosupError(f"'{name}' is not a stand-in name ({PREFIX}<dataset>)")
    return name[len(PREFIX):]


def manifest_path(name: str) -> Path | None:
    """Where the manifest of stand-in `name` is looked for (None: $PSEUDOSUP_STANDINS unset)."""
    root = os.environ.get(ENV)
    return Path(root) / f"{real_name(name)}.json" if root else None


def load_manifest(name: str) -> dict:
    path = manifest_path(name)
    if path is None:
        raise PseudosupError(f"dataset '{name}' is a stand-in: set ${ENV} to the directory holding its manifest "
                             f"{real_name(name)}.json (benchmarks/standins/serve.py writes it)")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise PseudosupError(f"{path}: no stand-in manifest for '{name}' (${ENV}={os.environ[ENV]}); build and "
                             "serve the stand-in first (benchmarks/standins/README.md)") from None
    except json.JSONDecodeError as e:
        raise PseudosupError(f"{path}: not valid JSON ({e})") from None
    problems = [k for k in ("dataset", "description", "files") if k not in manifest]
    if problems:
        raise PseudosupError(f"{path}: stand-in manifest lacks {problems}")
    if manifest["dataset"] != real_name(name):
        raise PseudosupError(f"{path}: manifest of '{manifest['dataset']}', not of '{real_name(name)}'")
    return manifest


def standin(name: str) -> Dataset:
    """Dataset `standin-<real>`: the real dataset's reader over the manifest's files."""
    return _from_manifest(name, load_manifest(name))


def _from_manifest(name: str, manifest: dict) -> Dataset:
    from . import registry

    real = registry.get(real_name(name))
    if real.shared is not None or not real.files:
        raise PseudosupError(f"dataset '{real.name}' is not downloaded (local files or your own); "
                             "a stand-in would prove nothing about its download path")
    sized = real.resized(manifest.get("counts") or {})
    files = tuple(_swap(f, manifest, manifest_path(name)) for f in sized.files)
    return dataclasses.replace(
        sized, name=name, files=files, local_dirs=(), options=dict(manifest.get("options") or {}),
        description=f"STAND-IN of {real.name} (not the real data): {manifest['description']}",
        notes=f"stand-in files from the manifest {manifest_path(name)}")


def _swap(f: RemoteFile, manifest: dict, where: Path) -> RemoteFile:
    entry = manifest["files"].get(f.name)
    if entry is None:
        raise PseudosupError(f"{where}: files lacks '{f.name}', a file of dataset '{manifest['dataset']}' "
                             f"(has: {sorted(manifest['files'])})")
    missing = [k for k in ("url", "sha256", "size") if k not in entry]
    if missing:
        raise PseudosupError(f"{where}: files.{f.name} lacks {missing}")
    return dataclasses.replace(f, urls=(entry["url"],), size=int(entry["size"]), sha256=entry["sha256"],
                               md5=None, sha512=None, content_sha256=None,
                               checksum_note="sha256 of the stand-in file, from its manifest")


def available(name: str) -> tuple[bool, str]:
    """Whether stand-in `name` can be used here (its manifest exists); never raises."""
    try:
        path = manifest_path(name)
    except PseudosupError as e:
        return False, str(e)
    if path is None or not path.is_file():
        return False, (f"dataset '{name}' is a stand-in and ${ENV} does not hold its manifest "
                       f"({path or 'unset'}); benchmarks/standins/README.md says how to build and serve it")
    return True, f"stand-in manifest {path}"


def draw_split(protocol: str, name: str, raw: Path | None, seed: int):
    """The real dataset's protocol drawn from the stand-in: split `standin-<protocol>`
    of dataset `name`, its description saying whose data it is."""
    from . import splits

    splits.check_protocol_name(protocol)
    splits.check_protocol_dataset(protocol, real_name(name))
    manifest = load_manifest(name)
    ds = _from_manifest(name, manifest)
    # a tiny stand-in may scale the protocol's counts (manifest "protocol": keywords of the
    # protocol function, e.g. per_query); recorded in the split, so no result hides it
    scaled = manifest.get("protocol") or {}
    split = splits.draw_from(protocol, ds, raw, seed, scaled, where=f"{manifest_path(name)}: protocol")
    note = f"; protocol counts SCALED for the stand-in: {scaled}" if scaled else ""
    extra = {**split.extra, "standin_protocol_counts": scaled} if scaled else split.extra
    return dataclasses.replace(split, name=PREFIX + protocol, dataset=name, extra=extra,
                               description=f"STAND-IN data ({name}): {split.description}{note}")


# --- a params file that runs experiments on stand-ins ----------------------------------

WEIGHT_KEYS = ("weights", "backbone_weights")


def params_for(params: dict, experiments: list[str], source_dir: Path, bits: str = "all") -> dict:
    """`params` with only `experiments`, each on the stand-in of its dataset
    (`standin-<dataset>`, split `standin-<protocol>`), everything else unchanged; they
    are the targets. `bits`: "all" keeps the experiment's code lengths, "shortest" keeps
    its shortest one (the CI check of every definition, in minutes). Relative weight
    files are made absolute against `source_dir` (the params file's directory), so the
    file also runs from a copy of the project."""
    import copy

    from .splits import PROTOCOL_INFO

    unknown = [e for e in experiments if e not in params.get("experiments", {})]
    if unknown:
        raise PseudosupError(f"unknown experiment(s) {unknown}; defined: {sorted(params.get('experiments', {}))}")
    if bits not in ("all", "shortest"):
        raise PseudosupError(f"bits: '{bits}' is neither 'all' nor 'shortest'")
    out = copy.deepcopy(params)
    out["experiments"] = {}
    for name in experiments:
        exp = copy.deepcopy(params["experiments"][name])
        if exp["dataset"].startswith(PREFIX):
            raise PseudosupError(f"experiments.{name}: dataset '{exp['dataset']}' is already a stand-in")
        split = exp.get("split")
        if split and split not in PROTOCOL_INFO:
            raise PseudosupError(f"experiments.{name}.split: '{split}' is not a named protocol "
                                 "(`pseudosup make-split --list`); a stand-in can only redraw a protocol")
        exp["dataset"] = PREFIX + exp["dataset"]
        # numbers published for the real dataset say nothing about a stand-in
        exp.pop("published", None)
        if split:
            exp["split"] = PREFIX + split
        if bits == "shortest" and exp.get("bits"):
            exp["bits"] = [min(exp["bits"])]
            if exp.get("gallery"):
                exp["gallery"]["bits"] = exp["bits"][0]
        out["experiments"][name] = exp
    out["targets"] = list(experiments)
    for section in ("features", "methods"):
        for entry in out.get(section, {}).values():
            for key in WEIGHT_KEYS:
                w = entry.get(key)
                if isinstance(w, str) and w not in ("torchvision", "random") and not Path(w).is_absolute():
                    entry[key] = str((source_dir / w).resolve())
    if isinstance(out.get("paths", {}).get("shared_data"), str):
        out["paths"]["shared_data"] = str((source_dir / out["paths"]["shared_data"]).resolve())
    return out
