"""TEXMEX vector files (.fvecs / .ivecs / .bvecs), memory-mapped.

Layout (corpus-texmex.irisa.fr): for each vector, a little-endian int32 dimension d,
then d values: float32 (.fvecs), int32 (.ivecs) or uint8 (.bvecs). Every vector of a
file has the same d.

`VecsFile` exposes an (n, d) array-like without reading the file: `f[a:b]` and
`f[index_array]` read only those rows, by positioned reads (os.pread) of runs of
consecutive records, so the process holds only the rows asked for (the page cache is
shared). `f.array` is a true memory map of the values for code that wants one; note
that touching a memory map maps whole read-around windows into the process (here
~0.75 MB per scattered record, and numpy 2.4 fancy indexing of a structured memmap
touches every page), which is why the loaders do not read through it.

Opening checks the size (a whole number of records) and the header of 1,000 evenly
spaced rows, first and last included (a dimension that differs anywhere shifts every
later record, so this catches inconsistent files at once); `check_all()` reads every
header in bounded-memory chunks (the download stage does this once). Large
conversions stream through ~64 MB buffers: peak memory is one chunk, never a second
copy of the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...io import PseudosupError, atomic_path

VALUE_TYPES = {"fvecs": np.dtype("<f4"), "ivecs": np.dtype("<i4"), "bvecs": np.dtype("u1")}
SAMPLE_ROWS = 1000
CHUNK_BYTES = 64 << 20   # streamed reads: rows per chunk = this / record size


def kind_of(path: Path) -> str:
    kind = Path(path).suffix.lstrip(".")
    if kind not in VALUE_TYPES:
        raise PseudosupError(f"{path}: unknown vector format '{kind}' (expected .fvecs, .ivecs or .bvecs)")
    return kind


class VecsFile:
    """A memory-mapped .fvecs/.ivecs/.bvecs file: shape (n, d), rows read on demand."""

    def __init__(self, path: str | Path, kind: str | None = None):
        self.path = Path(path)
        self.kind = kind or kind_of(self.path)
        vtype = VALUE_TYPES[self.kind]
        if not self.path.is_file():
            raise PseudosupError(f"{self.path}: file not found")
        size = self.path.stat().st_size
        if size < 4:
            raise PseudosupError(f"{self.path}: empty or truncated {self.kind} file ({size} bytes)")
        d = int(np.fromfile(self.path, dtype="<i4", count=1)[0])
        if d <= 0 or d > 1 << 20:
            raise PseudosupError(f"{self.path}: first vector has dimension {d}; not a {self.kind} file "
                                 "(or it is corrupt)")
        record = 4 + d * vtype.itemsize
        if size % record:
            raise PseudosupError(
                f"{self.path}: {size} bytes is not a whole number of {self.kind} records of dimension {d} "
                f"({record} bytes each): the file is truncated or its vectors have inconsistent dimensions")
        self.n, self.d, self.record = size // record, d, record
        self.dtype = vtype.newbyteorder("=") if vtype.itemsize > 1 else vtype
        self._rec = np.dtype([("d", "<i4"), ("v", vtype, (d,))])
        self._mm = None
        self._fd, self._pid = None, None
        self._check_rows(np.unique(np.linspace(0, self.n - 1, min(self.n, SAMPLE_ROWS)).astype(np.int64)))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.d)

    def __len__(self) -> int:
        return self.n

    @property
    def array(self) -> np.ndarray:
        """The (n, d) values as a read-only strided view of a memory map (no copy)."""
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype=self._rec, mode="r", shape=(self.n,))
        return self._mm["v"]

    def __getitem__(self, key) -> np.ndarray:
        """Rows as a contiguous array in native byte order (reads only those rows)."""
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.n)
            if step != 1:
                return self[np.arange(start, stop, step)]
            return np.ascontiguousarray(self._read(start, max(0, stop - start))["v"], dtype=self.dtype)
        return np.ascontiguousarray(self.records(np.asarray(key, dtype=np.int64))["v"], dtype=self.dtype)

    def _read(self, start: int, count: int) -> np.ndarray:
        """`count` records from row `start`, by one positioned read."""
        if self._fd is None or self._pid != os.getpid():  # one descriptor per process (workers fork)
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        buf = bytearray(count * self.record)
        got = os.preadv(self._fd, [buf], start * self.record)
        if got != len(buf):
            raise PseudosupError(f"{self.path}: short read at vector {start} (file truncated?)")
        return np.frombuffer(buf, dtype=self._rec)

    def records(self, rows: np.ndarray) -> np.ndarray:
        """The (header, values) records of `rows` (any order, repeats allowed), read
        as runs of consecutive rows."""
        rows = np.where(rows < 0, rows + self.n, rows)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n):
            raise IndexError(f"row index out of range for {self.n} vectors in {self.path}")
        order = np.argsort(rows, kind="stable")
        sr = rows[order]
        cut = np.flatnonzero(np.diff(sr) != 1) + 1
        out = np.empty(len(rows), dtype=self._rec)
        for a, b in zip(np.r_[0, cut], np.r_[cut, len(sr)]):
            out[order[a:b]] = self._read(int(sr[a]), int(sr[b - 1] - sr[a] + 1))
        return out

    def __del__(self):
        if getattr(self, "_fd", None) is not None and self._pid == os.getpid():
            os.close(self._fd)

    def __array__(self, dtype=None, copy=None):
        return self.load() if dtype is None else self.load().astype(dtype, copy=False)

    def _check_rows(self, rows: np.ndarray) -> None:
        dims = self.records(rows)["d"]
        bad = np.flatnonzero(dims != self.d)
        if len(bad):
            r = int(rows[bad[0]])
            raise PseudosupError(f"{self.path}: vector {r} has dimension {int(dims[bad[0]])}, vector 0 has "
                                 f"{self.d}: inconsistent dimensions (corrupt file)")

    def check_all(self, chunk_rows: int | None = None) -> None:
        """Check every header (streamed: memory stays at one chunk)."""
        for start, block in self._chunks(chunk_rows):
            bad = np.flatnonzero(block["d"] != self.d)
            if len(bad):
                r = start + int(bad[0])
                raise PseudosupError(f"{self.path}: vector {r} has dimension {int(block['d'][bad[0]])}, "
                                     f"vector 0 has {self.d}: inconsistent dimensions (corrupt file)")

    def _chunks(self, chunk_rows: int | None = None):
        """(first row, records) blocks read with plain file reads, not through the map,
        so pages do not accumulate in this process's resident memory."""
        chunk_rows = chunk_rows or max(1, CHUNK_BYTES // self.record)
        with open(self.path, "rb") as f:
            for start in range(0, self.n, chunk_rows):
                count = min(chunk_rows, self.n - start)
                block = np.fromfile(f, dtype=self._rec, count=count)
                if len(block) != count:
                    raise PseudosupError(f"{self.path}: truncated at vector {start + len(block)}")
                yield start, block

    def batches(self, rows: int | None = None):
        """(first row, float/int values (rows, d)) blocks in order, each a fresh array
        (default: about 64 MB per block)."""
        for start, block in self._chunks(rows):
            yield start, np.ascontiguousarray(block["v"], dtype=self.dtype)

    def load(self) -> np.ndarray:
        """All values in one (n, d) array: allocated once, filled chunk by chunk
        (peak memory = the array + one chunk)."""
        out = np.empty((self.n, self.d), dtype=self.dtype)
        for start, block in self.batches():
            out[start:start + len(block)] = block
        return out


def read_vecs(path: str | Path) -> np.ndarray:
    return VecsFile(path).load()


def write_vecs(path: str | Path, array: np.ndarray, kind: str | None = None) -> None:
    """Write an (n, d) array in TEXMEX layout, atomically (for fixtures and tools)."""
    path = Path(path)
    kind = kind or kind_of(path)
    array = np.asarray(array)
    n, d = array.shape
    rec = np.dtype([("d", "<i4"), ("v", VALUE_TYPES[kind], (d,))])
    out = np.empty(n, dtype=rec)
    out["d"] = d
    out["v"] = array
    with atomic_path(path) as tmp:
        out.tofile(tmp)


def vecs_to_npy(src: str | Path, dst: str | Path, chunk_rows: int | None = None) -> tuple[int, int]:
    """Stream a vector file into a .npy (float32 for fvecs), atomically, with one
    chunk in memory at a time. Returns (n, d)."""
    from numpy.lib import format as npformat

    vf = VecsFile(src)
    header = {"descr": npformat.dtype_to_descr(vf.dtype), "fortran_order": False, "shape": (vf.n, vf.d)}
    with atomic_path(dst) as tmp, open(tmp, "wb") as out:
        npformat.write_array_header_1_0(out, header)
        for _, block in vf.batches(chunk_rows):
            out.write(memoryview(block).cast("B"))  # no extra copy
            _drop_written(out)
    return vf.n, vf.d


def _drop_written(f) -> None:
    """Tell the kernel the written pages need not stay cached (keeps the measured
    footprint honest on machines with little free memory; a no-op elsewhere)."""
    if hasattr(os, "posix_fadvise"):
        f.flush()
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


class StackedVectors:
    """Several vector files seen as one (n, d) array in item order (e.g. TEXMEX
    base, then query, then learn). Reads only the rows asked for."""

    def __init__(self, files: list[VecsFile]):
        dims = {f.d for f in files}
        if len(dims) != 1:
            raise PseudosupError("vector files of different dimensions: "
                                 + ", ".join(f"{f.path.name} d={f.d}" for f in files))
        self.files = files
        self.d = dims.pop()
        self.offsets = np.cumsum([0] + [f.n for f in files])
        self.n = int(self.offsets[-1])
        self.dtype = files[0].dtype

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.d)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        if isinstance(key, slice):
            start, stop, step = key.indices(self.n)
            if step == 1:
                return self._range(start, stop)
            key = np.arange(start, stop, step)
        idx = np.asarray(key, dtype=np.int64)
        if idx.ndim != 1:
            raise IndexError("index with a 1-d array of rows")
        if len(idx) and (idx.min() < -self.n or idx.max() >= self.n):
            raise IndexError(f"row index out of range for {self.n} vectors")
        idx = np.where(idx < 0, idx + self.n, idx)
        out = np.empty((len(idx), self.d), dtype=self.dtype)
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for b, f in enumerate(self.files):
            sel = np.flatnonzero(which == b)
            if len(sel):
                local = idx[sel] - self.offsets[b]
                order = np.argsort(local, kind="stable")  # sorted reads touch pages in order
                out[sel[order]] = f[local[order]]
        return out

    def _range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((max(0, stop - start), self.d), dtype=self.dtype)
        for b, f in enumerate(self.files):
            lo, hi = max(start, self.offsets[b]), min(stop, self.offsets[b + 1])
            if lo < hi:
                out[lo - start:hi - start] = f[lo - self.offsets[b]:hi - self.offsets[b]]
        return out

    def batches(self, rows: int | None = None):
        """(first item, values) blocks over all files, in item order."""
        for b, f in enumerate(self.files):
            for start, block in f.batches(rows):
                yield int(self.offsets[b]) + start, block

    def __array__(self, dtype=None, copy=None):
        out = np.empty((self.n, self.d), dtype=self.dtype)
        for start, block in self.batches():
            out[start:start + len(block)] = block
        return out if dtype is None else out.astype(dtype, copy=False)
