"""Check every content hash recorded for the files under data/ and models/ (or the given paths).

    pseudosup verify                 # data/ and models/
    pseudosup verify data/features   # one tree, or single files

- `<name>.npy`: the sha256 its sidecar `<name>.json` recorded (no sidecar is a failure);
- `<feature>.bow.npz`: the `bow_sha256` recorded by its feature's sidecar;
- other `.npz` (models, pairs, fitted extractors): every member's zip CRC-32;
- `.pt` checkpoints that record `state_sha256` (pre-trained, fine-tuned CNNs): their weights;
- split files (`data/splits/*.json`): their line in `SHA256SUMS`.

Raw dataset directories are skipped (the download stage verifies them against their
digests). Prints one line per file that fails and a summary; exit status 1 when any
fails (files changed after they were written: delete them and rerun snakemake).
"""

from __future__ import annotations

from pathlib import Path

from ..io import PseudosupError

HELP = "check the content hashes recorded for the files under data/ and models/"
SKIP_DIRS = ("raw", "cache")


def add_arguments(p) -> None:
    p.add_argument("paths", type=Path, nargs="*", default=[Path("data"), Path("models")],
                   help="files or directories to check (default: data/ and models/)")


def run(args) -> int:
    from ..io import PseudosupError
    from ..log import log

    checked = failed = 0
    for path in files(args.paths):
        try:
            checked += check_file(path)
        except PseudosupError as e:
            print(e)
            checked += 1
            failed += 1
    log.info("%d files checked, %d failed", checked, failed)
    print(f"{checked} files checked, {failed} failed")
    return 1 if failed else 0


def files(paths):
    """The files to check, in order; temporaries and raw / cache directories skipped."""
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise PseudosupError(f"{root}: no such file or directory; give files or directories to check "
                                 "(default: data/ and models/)")
        found = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in found:
            if ".tmp-" in p.name or any(d in SKIP_DIRS for d in p.relative_to(root).parts[:-1]):
                continue
            yield p


def check_file(path: Path) -> int:
    """Check one file; 1 if it is of a kind with a recorded hash, 0 if there is nothing to check."""
    from .. import io
    from ..provenance import check_bow

    if path.suffix == ".npy":
        io.verify_sidecar_hash(path, io.read_sidecar(path))
    elif path.name.endswith(".bow.npz"):
        check_bow(path)
    elif path.suffix == ".npz":
        io.load_npz(path)
    elif path.suffix == ".pt":
        return _check_checkpoint(path)
    elif path.suffix == ".json" and path.parent.name == "splits":
        return _check_split(path)
    else:
        return 0
    return 1


def _check_checkpoint(path: Path) -> int:
    import torch

    from ..io import PseudosupError
    from ..provenance import state_sha256

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many kinds for a damaged file
        raise PseudosupError(f"{path}: not a readable checkpoint ({e}); delete it and rerun `snakemake {path}`") from None
    want = (ckpt.get("meta") or {}).get("state_sha256") if isinstance(ckpt, dict) else None
    if want is None:
        return 0
    if state_sha256(ckpt["state_dict"]) != want:
        raise PseudosupError(f"{path}: its weights differ from those it recorded when saved (file changed after it "
                             f"was written?); delete it and rerun `snakemake {path}`")
    return 1


def _check_split(path: Path) -> int:
    from ..data.splits import load_split

    load_split(path)  # verifies the file against SHA256SUMS next to it
    return 1
