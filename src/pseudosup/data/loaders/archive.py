"""Archives: safe member names, extraction, and random access to members.

Image datasets keep their archives whole in the raw directory (a DVC output of a few
large files, not 100,000s of small ones) and read members straight from them:
an uncompressed tar through a one-time index of member offsets (`<tar>.index.json`),
a zip through its own central directory, or a plain directory. All three expose
the same `Members` interface: `.names` (sorted member paths) and `.read(name)`.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from ...io import PseudosupError, atomic_path
from ...log import progress
from .decode import decode_bytes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class UnsafeArchive(PseudosupError):
    pass


def check_member_name(name: str, archive: Path | str) -> str:
    """The member's normalised relative path; raises when it would escape the target
    directory (absolute path, drive letter, '..' component, backslash tricks)."""
    if "\x00" in name:
        raise UnsafeArchive(f"{archive}: member name with a NUL byte ({name!r}); refusing the archive")
    p = name.replace("\\", "/")
    if p.startswith("/") or (len(p) > 1 and p[1] == ":"):
        raise UnsafeArchive(f"{archive}: member '{name}' has an absolute path and would escape the "
                            "target directory; refusing the archive (it is corrupt or malicious)")
    norm = posixpath.normpath(p)
    if norm == ".." or norm.startswith("../") or ".." in PurePosixPath(p).parts:
        raise UnsafeArchive(f"{archive}: member '{name}' would escape the target directory ('..'); "
                            "refusing the archive (it is corrupt or malicious)")
    return norm


def check_tar_member(m: tarfile.TarInfo, archive: Path | str) -> str:
    """Name check plus type check: links pointing outside and device files are refused."""
    name = check_member_name(m.name, archive)
    if m.issym() or m.islnk():
        target = m.linkname if m.islnk() else posixpath.join(posixpath.dirname(name), m.linkname)
        try:
            check_member_name(target if m.islnk() else posixpath.normpath(target), archive)
        except UnsafeArchive:
            raise UnsafeArchive(f"{archive}: link '{m.name}' -> '{m.linkname}' points outside the target "
                                "directory; refusing the archive") from None
    elif m.isdev() or m.isfifo():
        raise UnsafeArchive(f"{archive}: member '{m.name}' is a device or FIFO; refusing the archive")
    return name


def open_tar(path: Path, mode: str = "r:*") -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise PseudosupError(f"{path}: not a readable tar archive ({e}); the file is corrupt or "
                             "truncated: delete it and download it again") from None


def iter_tar(path: Path):
    """Yield (member, normalised name) of every member, checking names as it goes and
    turning a corrupt stream into a clear error."""
    tf = open_tar(path, "r|*")
    try:
        while True:
            try:
                m = tf.next()
            except (tarfile.TarError, OSError, EOFError, ValueError) as e:
                raise PseudosupError(f"{path}: corrupt or truncated archive ({e}); delete it and download "
                                     "it again") from None
            if m is None:
                return
            yield tf, m, check_tar_member(m, path)
    finally:
        tf.close()


def verify_tar(path: Path, required: tuple[str, ...] = ()) -> int:
    """Read the whole archive (every byte is decompressed, so truncation and corrupt
    data are caught), check member names, and that `required` members exist.
    Returns the number of members."""
    seen, n = set(), 0
    for tf, m, name in progress(iter_tar(path), f"checking {Path(path).name}", unit="member"):
        n += 1
        seen.add(name)
        if m.isfile():
            f = tf.extractfile(m)
            try:
                while f.read(1 << 20):
                    pass
            except (tarfile.TarError, OSError, EOFError, ValueError) as e:
                raise PseudosupError(f"{path}: corrupt or truncated archive at member '{m.name}' ({e}); "
                                     "delete it and download it again") from None
    missing = [r for r in required if r not in seen]
    if missing:
        raise PseudosupError(f"{path}: archive lacks {missing}; it is not the expected file")
    return n


def extract_members(archive: Path, wanted: dict[str, Path]) -> None:
    """Extract the members `wanted` (archive path -> destination file) in one pass.
    Every member name is checked on the way: an archive holding an escaping path is
    refused (the caller builds the raw directory in a temporary sibling, which is then
    discarded); writes only ever go to the fixed destinations, each atomically."""
    todo = {check_member_name(k, archive): v for k, v in wanted.items()}
    for tf, m, name in progress(iter_tar(archive), f"extracting {Path(archive).name}", unit="member"):
        if name in todo and m.isfile():
            with atomic_path(todo.pop(name)) as tmp, open(tmp, "wb") as out:
                try:
                    shutil.copyfileobj(tf.extractfile(m), out, 1 << 20)
                except (tarfile.TarError, OSError, EOFError) as e:
                    raise PseudosupError(f"{archive}: corrupt or truncated at member '{m.name}' ({e})") from None
    if todo:
        raise PseudosupError(f"{archive}: archive lacks {sorted(todo)}; it is not the expected file")


def safe_extract_all(archive: Path, target: Path) -> list[str]:
    """Extract every regular file under `target` (after checking all names)."""
    for _ in iter_tar(archive):
        pass
    names = []
    for tf, m, name in iter_tar(archive):
        if m.isfile():
            dest = target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as out:
                shutil.copyfileobj(tf.extractfile(m), out, 1 << 20)
            names.append(name)
    return names


RAR_MAGIC = b"Rar!\x1a\x07"


def is_rar(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(6) == RAR_MAGIC


def extract_rar(archive: Path, wanted: dict[str, Path]) -> None:
    """Extract members (matched by file name) from a RAR archive with bsdtar."""
    tool = shutil.which("bsdtar")
    if tool is None:
        raise PseudosupError(
            f"{archive}: extracting RAR archives needs bsdtar (Debian: apt-get install libarchive-tools); "
            "or extract it yourself (unrar x) and put " + ", ".join(sorted(wanted)) + " in the mirror directory")
    listing = subprocess.run([tool, "-tf", str(archive)], capture_output=True, text=True)
    if listing.returncode:
        raise PseudosupError(f"{archive}: unreadable RAR archive ({listing.stderr.strip()})")
    by_name = {line.rsplit("/", 1)[-1]: line for line in listing.stdout.splitlines()}
    for name, dest in wanted.items():
        if name not in by_name:
            raise PseudosupError(f"{archive}: no member named {name}")
        with atomic_path(dest) as tmp, open(tmp, "wb") as f:
            proc = subprocess.run([tool, "-xOf", str(archive), by_name[name]], stdout=f, stderr=subprocess.PIPE)
            if proc.returncode:  # inside the block: the partial file is removed
                raise PseudosupError(f"{archive}: cannot extract {name} ({proc.stderr.decode(errors='replace')})")


def to_plain_tar(src: Path, dest: Path) -> None:
    """Copy an archive (any compression) as an uncompressed tar of its regular files,
    checking every name; then index it. A plain tar is copied as is."""
    if _is_plain_tar(src):
        for _ in iter_tar(src):
            pass
        shutil.copyfile(src, dest)
    else:
        with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
            for tf, m, name in progress(iter_tar(src), f"decompressing {Path(src).name}", unit="member"):
                if m.isfile():
                    m.name = name
                    out.addfile(m, tf.extractfile(m))
    write_tar_index(dest)


def _is_plain_tar(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    return len(head) == 512 and head[257:262] == b"ustar"


def index_path(tar_path: Path) -> Path:
    return tar_path.with_name(tar_path.name + ".index.json")


def write_tar_index(tar_path: Path) -> dict:
    """name -> [offset of data, size] of every regular file of an uncompressed tar."""
    members = {}
    with open_tar(tar_path, "r:") as tf:
        for m in tf:
            name = check_tar_member(m, tar_path)
            if m.isfile():
                members[name] = [m.offset_data, m.size]
    index = {"tar": tar_path.name, "bytes": tar_path.stat().st_size, "members": members}
    with atomic_path(index_path(tar_path)) as tmp:
        tmp.write_text(json.dumps(index, separators=(",", ":")))
    return index


def _per_process(handles: dict, opener):
    """This process's handle, opened on first use. Threads that race to open it all get
    the one stored first (dict.setdefault is atomic): replacing a handle another thread
    is reading through closed its descriptor under it (EBADF, or another file's bytes
    if the number was reused)."""
    pid = os.getpid()
    handle = handles.get(pid)
    if handle is None:
        handle = handles.setdefault(pid, opener())
    return handle


class TarMembers:
    """Random access to the members of an uncompressed tar through its index."""

    def __init__(self, path: Path):
        self.path = Path(path)
        ipath = index_path(self.path)
        if not self.path.is_file():
            raise PseudosupError(f"{self.path}: file not found; run the download stage")
        try:
            index = json.loads(ipath.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            index = write_tar_index(self.path)
        if index.get("bytes") != self.path.stat().st_size:
            raise PseudosupError(f"{ipath} does not describe {self.path} (size changed); the raw directory "
                                 "was modified: rerun the download stage")
        self._members = index["members"]
        self.names = sorted(self._members)
        self._handles: dict[int, object] = {}  # pid -> open file: one handle per process (workers fork)

    def __contains__(self, name: str) -> bool:
        return name in self._members

    def read(self, name: str) -> bytes:
        fh = _per_process(self._handles, lambda: open(self.path, "rb"))
        try:
            offset, size = self._members[name]
        except KeyError:
            raise PseudosupError(f"{self.path}: no member '{name}'") from None
        # pread: no shared file position, so threads (e.g. SIFT extraction on 2 threads)
        # can read members concurrently; seek + read interleaved and returned other bytes
        data = os.pread(fh.fileno(), size, offset)
        if len(data) != size:
            raise PseudosupError(f"{self.path}: truncated at member '{name}'; rerun the download stage")
        return data


class ZipMembers:
    """Random access to the members of a zip archive."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with zipfile.ZipFile(self.path) as z:
                infos = z.infolist()
        except (zipfile.BadZipFile, OSError) as e:
            raise PseudosupError(f"{self.path}: not a readable zip archive ({e})") from None
        self._names = {}
        for info in infos:
            if not info.is_dir():
                self._names[check_member_name(info.filename, self.path)] = info.filename
        self.names = sorted(self._names)
        self._handles: dict[int, object] = {}  # pid -> ZipFile (its reads are thread-safe)

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def read(self, name: str) -> bytes:
        zf = _per_process(self._handles, lambda: zipfile.ZipFile(self.path))
        try:
            return zf.read(self._names[name])
        except KeyError:
            raise PseudosupError(f"{self.path}: no member '{name}'") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise PseudosupError(f"{self.path}: corrupt member '{name}' ({e})") from None


class DirectoryMembers:
    """The files under a directory, with the same interface (relative POSIX paths)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise PseudosupError(f"{self.path}: directory not found")
        self.names = sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file())
        self._set = set(self.names)

    def __contains__(self, name: str) -> bool:
        return name in self._set

    def read(self, name: str) -> bytes:
        if name not in self._set:
            raise PseudosupError(f"{self.path}: no file '{name}'")
        return (self.path / name).read_bytes()


def open_members(path: Path):
    path = Path(path)
    if path.is_dir():
        return DirectoryMembers(path)
    if zipfile.is_zipfile(path):
        return ZipMembers(path)
    return TarMembers(path)


def verify_zip(path: Path, required: tuple[str, ...] = ()) -> int:
    """CRC-check every member, check names and that `required` members exist."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            names = {check_member_name(i.filename, path) for i in z.infolist()}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise PseudosupError(f"{path}: corrupt or truncated zip archive ({e}); delete it and download "
                             "it again") from None
    if bad is not None:
        raise PseudosupError(f"{path}: member '{bad}' fails its CRC check; the archive is corrupt")
    missing = [r for r in required if r not in names]
    if missing:
        raise PseudosupError(f"{path}: archive lacks {missing}; it is not the expected file")
    return len(names)


def decode_image(data: bytes, where: str) -> np.ndarray:
    """uint8 (H, W) for grey images, (H, W, 3) RGB otherwise, every pixel mode scaled
    correctly (the rules: loaders/decode.py). EXIF orientation is not applied: pixels are
    used as stored, as the standard evaluation code does."""
    return decode_bytes(data, where)[0]


class MemberImages:
    """Image source over archive members: src[i] decodes member `names[i]`;
    src.read_with_note(i) also returns what the decoding did (None, or e.g.
    "mode I;16: 16-bit -> 8-bit (x/257)"), which the feature Fetcher records."""

    def __init__(self, members, names: list[str], ids: list[str] | None = None, transform=None):
        self.members = members
        self.names = list(names)
        self.ids = ids if ids is not None else list(self.names)
        self.transform = transform  # (i, image) -> image, e.g. a query crop or a rotation

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.read_with_note(i)[0]

    def read_with_note(self, i: int) -> tuple[np.ndarray, str | None]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        name = self.names[i]
        img, note = decode_bytes(self.members.read(name), f"{self.members.path}:{name}")
        return (self.transform(i % len(self), img) if self.transform else img), note
