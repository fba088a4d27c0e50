"""Provenance travels with the data, and every stage checks its inputs before any work.

What outputs record, besides their own settings:
- `inputs`: {path: sha256} of the files an output was computed from (for a raw dataset
  directory, its MANIFEST.json, which lists the verified digest of every raw file);
- `machine`: where it was computed (pseudosup.machine);
- a `.npy` array (features, the CIE index): its JSON sidecar also holds `sha256` of the
  .npy itself (written by pseudosup.io.save_array), `dataset`, `feature`, `n`, `dim` and
  `items`: which items of the dataset the rows are, in order (`items_record`);
- `.npz` files (models, pairs, fitted extractors, bags of words) hold the same in their
  `meta` entry except their own hash: a file cannot contain its own hash, and the zip's
  per-member CRC-32 already makes a changed byte fail to load (pseudosup.io.load_npz).
  The sidecar of a sift-bow feature records the sha256 of its `.bow.npz` as well;
- `.pt` checkpoints record the sha256 of their weights (`state_sha256`), checked when the
  features stage loads a pre-trained backbone and by `pseudosup verify` (torch.load
  itself checks nothing);
- run files record the dataset, the split (name and the split file's sha256), the tie
  rule and the feature, which `pseudosup report` and `plot` check (`check_runs_agree`).

The checks raise PseudosupError with one line naming the file and what to do:
pseudosup.io.load_array (sidecar present, sha256 and shape match), `check_features`,
`check_split`, `check_finite`, `check_model`, `check_runs_agree`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .io import PseudosupError, file_sha256, read_json

# raw dataset directories: the download stage's manifest (the instance benchmark's own)
MANIFESTS = ("MANIFEST.json", "manifest.json")
# item ids written into a features sidecar up to this many (Oxford, Holidays, UKBench,
# CIFAR-10 JPEGs, typical image folders: readable next to the rows they name); above it
# (NUS-WIDE's 270k) only their sha256: the ids follow from the raw directory, whose
# manifest hash is in `inputs`, and a separate ids file would be an output that neither
# Snakemake nor DVC knows of
INLINE_IDS = 50_000
FINITE_BLOCK = 65_536
RUN_KEYS = ("dataset", "split", "split_sha256", "tie_rule")


# --- what outputs record -----------------------------------------------------------------

def input_hashes(*paths) -> dict[str, str]:
    """{path: sha256} of the given files (None entries skipped); a directory is
    represented by its manifest."""
    out = {}
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        if p.is_dir():
            p = next((p / m for m in MANIFESTS if (p / m).is_file()), None)
            if p is None:
                continue
        out[str(p)] = file_sha256(p)
    return out


def stamp(*paths) -> dict:
    """`inputs` and `machine` for an output's meta; call it when the work is done."""
    from .machine import machine

    return {"inputs": input_hashes(*paths), "machine": machine()}


def items_record(dataset: str, n: int, ids=None) -> dict:
    """Which dataset items the n rows are, in order: positions 0..n-1 of an array
    dataset (Fashion-MNIST, CIFAR python, vectors: ids are the positions), or the
    item ids of a dataset of files (inline up to INLINE_IDS, always their sha256)."""
    rec = {"dataset": dataset, "count": int(n)}
    ids = None if ids is None else [str(i) for i in ids]
    if ids is None or ids == [str(i) for i in range(len(ids))]:
        rec["range"] = [0, int(n)]
        return rec
    if len(ids) != n:
        raise PseudosupError(f"dataset '{dataset}': {len(ids)} item ids for {n} rows")
    rec["ids_sha256"] = ids_sha256(ids)
    if n <= INLINE_IDS:
        rec["ids"] = ids
    return rec


def ids_sha256(ids) -> str:
    return hashlib.sha256("\n".join(str(i) for i in ids).encode()).hexdigest()


def split_record(split, path) -> dict:
    """How a run or model names its split: the name and the split file's sha256."""
    return {"split": split.name, "split_sha256": file_sha256(path)}


def state_sha256(state_dict) -> str:
    """sha256 over a torch state_dict's names, shapes, dtypes and bytes (in order)."""
    h = hashlib.sha256()
    for name, t in state_dict.items():
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --- checks before any work ------------------------------------------------------------------

def check_features(path, meta: dict, dataset: str | None = None) -> dict:
    """A features file (already verified by io.load_array) is what the stage was told:
    of `dataset`, named as the pipeline lays it out, one row per item. Returns `items`."""
    path = Path(path)
    for key in ("dataset", "feature", "items"):
        if meta.get(key) is None:
            raise PseudosupError(f"{path}: its sidecar records no '{key}' (written by an older pseudosup?); "
                                 f"delete it and rerun `snakemake {path}`")
    if dataset is not None and meta["dataset"] != dataset:
        raise PseudosupError(f"{path}: features of dataset '{meta['dataset']}' (its sidecar), not '{dataset}'; "
                             f"give the features of '{dataset}'")
    placed = layout_names(path)
    if placed is not None and placed != (meta["dataset"], meta["feature"]):
        raise PseudosupError(f"{path}: its sidecar describes feature '{meta['feature']}' of dataset "
                             f"'{meta['dataset']}', but the file's place says '{placed[1]}' of '{placed[0]}' "
                             f"(a copied or renamed file?); delete it and rerun `snakemake {path}`")
    items = meta["items"]
    if items.get("dataset") != meta["dataset"] or items.get("count") != meta.get("n"):
        raise PseudosupError(f"{path}: its sidecar's items ({items.get('count')} of '{items.get('dataset')}') are "
                             f"not its {meta.get('n')} rows of '{meta['dataset']}'; delete it and rerun "
                             f"`snakemake {path}`")
    return items


def layout_names(path) -> tuple[str, str] | None:
    """(dataset, feature) from a path of the pipeline's layout
    data/features/<dataset>/<feature>.npy; None elsewhere (files given by hand)."""
    path = Path(path)
    if path.suffix == ".npy" and path.parent.parent.name == "features":
        return path.parent.name, path.stem
    return None


def check_bow(path) -> None:
    """A sift-bow feature's sparse bag of words (<feature>.bow.npz) is the file the
    sidecar of its feature (<feature>.json, next to it) recorded."""
    path = Path(path)
    name = path.name[:-len(".bow.npz")] if path.name.endswith(".bow.npz") else path.stem
    side = path.with_name(name + ".json")
    if not side.is_file():
        raise PseudosupError(f"{path}: no sidecar {side.name} of its feature next to it (it records the file's "
                             f"sha256); rerun `snakemake {path}`")
    want = read_json(side).get("bow_sha256")
    if want is None or want != file_sha256(path):
        raise PseudosupError(f"{path}: content hash differs from the one {side.name} recorded (file changed after "
                             f"it was written?); delete it and rerun `snakemake {path}`")


def check_item_count(path, meta: dict, n_items: int, what: str) -> None:
    """The features have one row per item of the dataset as it is here (e.g. its labels)."""
    if meta["items"]["count"] != n_items:
        raise PseudosupError(f"{path}: {meta['items']['count']} rows but dataset '{meta['dataset']}' has "
                             f"{n_items} items ({what}); the features are of another version of the dataset: "
                             f"delete them and rerun `snakemake {path}`")


def check_split(split, split_path, meta: dict, path) -> None:
    """The split belongs to the features' dataset and indexes only rows they have."""
    if split.dataset != meta["dataset"]:
        raise PseudosupError(f"{split_path}: split of dataset '{split.dataset}', but {path} holds features of "
                             f"'{meta['dataset']}'; use a split of '{meta['dataset']}' or features of "
                             f"'{split.dataset}'")
    n = meta["items"]["count"]
    check_split_items(split, split_path, n, f"{path} has {n} rows (the items of '{meta['dataset']}')")


def check_split_items(split, split_path, n: int, what: str) -> None:
    """Every index of every part of the split is an item 0..n-1."""
    for name, idx in split.parts.items():
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n):
            bad = int(idx.max()) if int(idx.max()) >= n else int(idx.min())
            raise PseudosupError(f"{split_path}: part '{name}' refers to item {bad}, but {what}; the split is not "
                                 "of this version of the dataset")


def check_finite(X, index, path, what: str) -> None:
    """The rows `index` of X (what the stage uses: queries, database...) are finite;
    read in blocks so a memory-mapped file is never whole in memory."""
    index = np.asarray(index)
    for a in range(0, len(index), FINITE_BLOCK):
        rows = np.asarray(X[index[a:a + FINITE_BLOCK]])
        bad = np.flatnonzero(~np.isfinite(rows).reshape(len(rows), -1).all(axis=1))
        if len(bad):
            raise PseudosupError(f"{path}: NaN/inf values in row {int(index[a + bad[0]])} ({what}; "
                                 f"{len(bad)} such rows in this block); the features are broken: delete them "
                                 f"and rerun `snakemake {path}`")


def check_model(model_path, mmeta: dict, features_path, fmeta: dict, split=None, split_path=None) -> None:
    """A model was trained on these very features (dataset, feature, sha256) and, when
    given, on this split file."""
    for key in ("dataset", "feature"):
        if mmeta.get(key) != fmeta.get(key):
            raise PseudosupError(f"{model_path}: trained on {key} '{mmeta.get(key)}', but {features_path} holds "
                                 f"'{fmeta.get(key)}'; give the matching features or retrain: "
                                 f"`snakemake -R {model_path}`")
    if fmeta["sha256"] not in (mmeta.get("inputs") or {}).values():
        raise PseudosupError(f"{model_path}: trained on other contents of the features than {features_path} has now "
                             f"(sha256 differs); retrain: `snakemake -R {model_path}`")
    if split is not None and mmeta.get("split_sha256") != file_sha256(split_path):
        raise PseudosupError(f"{model_path}: trained on split '{mmeta.get('split')}' (another split file than "
                             f"{split_path}, '{split.name}'); retrain on this split: `snakemake -R {model_path}`")


def check_same_dataset(named: dict, dataset: str | None = None) -> str:
    """{path: meta} of several inputs describe items of one dataset (and of `dataset`
    when given); returns it."""
    seen = {}
    for path, meta in named.items():
        ds = (meta or {}).get("dataset")
        if ds is None:
            raise PseudosupError(f"{path}: records no 'dataset' (written by an older pseudosup?); delete it and "
                                 f"rerun `snakemake {path}`")
        seen[path] = ds
    want = dataset or next(iter(seen.values()))
    for path, ds in seen.items():
        if ds != want:
            raise PseudosupError(f"{path}: items of dataset '{ds}', not '{want}'"
                                 + ("" if dataset else f" like {next(iter(seen))}") + "; give inputs of one dataset")
    return want


def check_runs_agree(runs: list[dict], paths) -> dict:
    """Run files of one experiment share dataset, split (name and sha256) and tie rule;
    returns those values."""
    paths = [str(p) for p in paths]
    for r, p in zip(runs, paths):
        missing = [k for k in RUN_KEYS if k not in r]
        if missing:
            raise PseudosupError(f"{p}: records no {', '.join(missing)} (written by an older pseudosup?); rerun "
                                 f"its evaluation: `snakemake -R {p}`")
    first = {k: runs[0][k] for k in RUN_KEYS} if runs else {k: None for k in RUN_KEYS}
    for r, p in zip(runs[1:], paths[1:]):
        for k in RUN_KEYS:
            if r[k] != first[k]:
                raise PseudosupError(f"{p}: {k} '{r[k]}' but {paths[0]} has '{first[k]}'; the runs of one "
                                     f"experiment must agree: rerun the stale one (`snakemake -R <run file>`)")
    return first
