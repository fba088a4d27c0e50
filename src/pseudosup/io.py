"""File helpers shared by all stages: atomic writes and self-describing arrays.

Every stage writes through these helpers so that an interrupted or failed job never
leaves a file that looks complete: data goes to a temporary sibling first and is
renamed into place only when it is whole.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np


class PseudosupError(Exception):
    """An error the user can fix; the CLI prints its message without a traceback."""


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it to `path` on success.

    Works for files and directories. On any exception the temporary is removed and
    `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PseudosupError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise PseudosupError(f"{path}: not valid JSON ({e}); delete it and rerun the stage that makes it") from None


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def sidecar_path(array_path: str | os.PathLike) -> Path:
    p = Path(array_path)
    return p.with_suffix(".json")


def save_array(path: str | os.PathLike, array: np.ndarray, meta: dict) -> None:
    """Save a float32 .npy (memory-mappable) and its JSON sidecar, both atomically.

    The sidecar is written first and the array last: the array is the declared
    output, so its presence means both are complete.
    """
    write_json(sidecar_path(path), meta)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_rows(path: str | os.PathLike, source, meta: dict, block: int = 65536) -> tuple[int, int]:
    """Like save_array, for a large (n, d) array-like read by row ranges (e.g. vector
    files): streamed into the .npy block by block, so it is never whole in memory."""
    from numpy.lib.format import open_memmap

    n, d = source.shape
    write_json(sidecar_path(path), meta)
    with atomic_path(path) as tmp:
        out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
        for i in range(0, n, block):
            rows = np.asarray(source[i:i + block], dtype=np.float32)
            if not np.isfinite(rows).all():
                raise PseudosupError(f"{path}: NaN/inf values in rows {i}..{i + len(rows) - 1} of the source")
            out[i:i + len(rows)] = rows
        out.flush()
        del out
    return n, d


def load_array(path: str | os.PathLike, mmap: bool = True) -> tuple[np.ndarray, dict]:
    path = Path(path)
    if not path.exists():
        raise PseudosupError(f"{path}: file not found; run the stage that produces it")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None)
    except ValueError as e:
        raise PseudosupError(f"{path}: not a valid .npy file ({e})") from None
    meta = read_json(sidecar_path(path)) if sidecar_path(path).exists() else {}
    return arr, meta


def save_npz(path: str | os.PathLike, meta: dict, **arrays: np.ndarray) -> None:
    """Save arrays plus a JSON `meta` entry in one .npz (self-describing model file)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta, default=_json_default)), **arrays)


def load_npz(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    path = Path(path)
    if not path.exists():
        raise PseudosupError(f"{path}: file not found; run the stage that produces it")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/ValueError variants
        raise PseudosupError(f"{path}: not a readable .npz file ({e})") from None
    if "meta" not in arrays:
        raise PseudosupError(f"{path}: no 'meta' entry; not a pseudosup file")
    meta = json.loads(str(arrays.pop("meta")))
    return meta, arrays
