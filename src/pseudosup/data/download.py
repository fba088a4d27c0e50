"""Fetch a dataset's raw files, verified, into its raw directory.

Sources, in order: the mirror directory (params `paths.mirror` or $PSEUDOSUP_MIRROR,
looked up as <mirror>/<file> and <mirror>/<dataset>/<file>), the real data directory
for local-only datasets (`paths.shared_data`), local copies such as Debian's dataset
packages, the download cache, then the URLs (HTTP(S) or FTP, official source first,
then mirrors).

- Every file is verified before use, whatever its source: by its digest(s), or, when
  no digest is known, by size and a full format check (each RemoteFile says which).
  A verification is remembered (size + mtime) in the cache, so large files are not
  re-hashed on every run.
- Downloads go to `<cache>/<file>.part` and resume after an interruption (HTTP
  Range, FTP REST), retrying with exponential back-off; the file is renamed into the
  cache only once complete, and deleted if it fails verification.
- The raw directory is built in a temporary sibling and renamed when complete, so a
  failed run leaves no raw directory at all; extraction refuses archive members
  whose paths would escape it.
- Idempotent: a second run finds the verified files in the cache (or mirror) and
  touches no network.
- Offline ($PSEUDOSUP_OFFLINE=1 or offline=True): no network; if files are missing,
  one error lists all of them with where they were looked for and where to put them.
  The mirror may also hold the already-extracted members of an archive (e.g.
  sift_base.fvecs instead of sift.tar.gz); they are then verified by size and format.
"""

from __future__ import annotations

import contextlib
import ftplib
import gzip
import hashlib
import http.client
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..io import PseudosupError, atomic_path, write_json
from ..log import byte_bar, log
from .loaders import archive
from .registry import Dataset, Member, RemoteFile, shared_data_dir, tar_name

CHUNK = 1 << 20
MIRROR_ENV = "PSEUDOSUP_MIRROR"
OFFLINE_ENV = "PSEUDOSUP_OFFLINE"
RETRIES = 5          # attempts per URL
BACKOFF = 2.0        # seconds before the first retry, doubled after each failure
TIMEOUT = 60.0       # seconds of silence before a connection counts as dead
STAMPS = ".verified.json"


class ChecksumError(PseudosupError):
    pass


class TransientError(Exception):
    """A failure worth retrying (server error, dropped connection, short read)."""


# --- verification -------------------------------------------------------------------

def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    size = path.stat().st_size
    bar = byte_bar(f"{algo} {path.name}", size) if size > 64 * CHUNK else contextlib.nullcontext()
    with open(path, "rb") as f, bar:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
            if size > 64 * CHUNK:
                bar.update(len(block))
    return h.hexdigest()


def content_digest(path: Path) -> str:
    """sha256 of the decompressed payload of a gzip file."""
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                h.update(block)
    except (OSError, EOFError) as e:
        raise ChecksumError(f"{path}: corrupt or truncated gzip stream ({e})") from None
    return h.hexdigest()


def check_format(path: Path, check: str, required: tuple[str, ...] = ()) -> None:
    """Full format check of a file whose digest is unknown (raises PseudosupError)."""
    if check in ("tar", "tar.gz"):
        archive.verify_tar(path, required)
    elif check == "zip":
        archive.verify_zip(path, required)
    elif check == "rar":
        if not archive.is_rar(path):
            raise PseudosupError(f"{path}: not a RAR archive (bad signature); corrupt or not the expected file")
    elif check == "gzip":
        content_digest(path)
    elif check == "pickle":
        from .loaders.safe_pickle import load_pickle
        load_pickle(path)
    elif check in ("fvecs", "ivecs", "bvecs"):
        from .loaders.texmex import VecsFile
        VecsFile(path, check).check_all()
    elif check == "text":
        try:
            with open(path, encoding="utf-8", errors="strict") as f:
                for _ in f:
                    pass
        except UnicodeDecodeError as e:
            raise PseudosupError(f"{path}: not a text file ({e})") from None
    else:
        raise PseudosupError(f"{path}: unknown format check '{check}'")


def verify(path: Path, spec: RemoteFile, exact_bytes: bool = True) -> str:
    """Check `path` against `spec`; return how it was verified. `exact_bytes` also
    checks size and the digests of the file itself (true for anything claiming to be
    the official download; a re-compressed local copy is checked by its decompressed
    content only)."""
    size = path.stat().st_size
    if exact_bytes and spec.size is not None and size != spec.size:
        raise ChecksumError(f"{path}: {size} bytes, expected {spec.size}; the file is truncated, corrupt "
                            "or not the expected version")
    done = []
    for algo, want in (spec.digests.items() if exact_bytes else ()):
        got = file_digest(path, algo)
        if got != want:
            raise ChecksumError(f"{path}: {algo} mismatch (expected {want}, got {got}); the file is corrupt "
                                "or not the expected version")
        done.append(algo)
    if spec.content_sha256:
        got = content_digest(path)
        if got != spec.content_sha256:
            raise ChecksumError(f"{path}: content sha256 mismatch (expected {spec.content_sha256}, got {got}); "
                                "the file is corrupt or not the expected version")
        done.append("content sha256")
    if not done:
        if not spec.check:
            raise ChecksumError(f"{spec.name}: no checksum or format check known, refusing to use it unverified")
        required = tuple(m.path for m in spec.members)
        try:
            check_format(path, spec.check, required)
        except PseudosupError as e:
            raise ChecksumError(str(e)) from None
        done.append(f"{'size + ' if spec.size else ''}{spec.check} format (no published checksum)")
    return " + ".join(done)


class Stamps:
    """Verified files (path -> size, mtime, how), kept in the cache directory."""

    def __init__(self, cache: Path):
        self.path = cache / STAMPS
        try:
            self.data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self.data = {}

    @staticmethod
    def _key(path: Path, spec: RemoteFile) -> str:
        return f"{path.resolve()}|{spec.name}|{spec.size}|{sorted(spec.digests.items())}|{spec.content_sha256}"

    def get(self, path: Path, spec: RemoteFile) -> str | None:
        entry = self.data.get(self._key(path, spec))
        st = path.stat()
        if entry and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns:
            return entry["how"]
        return None

    def put(self, path: Path, spec: RemoteFile, how: str) -> None:
        st = path.stat()
        self.data[self._key(path, spec)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "how": how}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.data)


def verified(path: Path, spec: RemoteFile, stamps: Stamps | None, exact_bytes: bool = True) -> str:
    how = stamps.get(path, spec) if stamps and exact_bytes else None
    if how:
        return how + " (remembered)"
    how = verify(path, spec, exact_bytes)
    if stamps and exact_bytes:
        stamps.put(path, spec, how)
    return how


# --- transports ---------------------------------------------------------------------

def download(url: str, dest: Path, spec: RemoteFile, retries: int = RETRIES, backoff: float = BACKOFF,
             timeout: float = TIMEOUT) -> None:
    """Download `url` to `dest` through `dest.part`, resuming it after failures."""
    part = dest.with_name(dest.name + ".part")
    scheme = urllib.parse.urlparse(url).scheme
    once = {"http": _http_once, "https": _http_once, "ftp": _ftp_once, "file": _file_once}.get(scheme)
    if once is None:
        raise PseudosupError(f"{url}: unsupported URL scheme '{scheme}'")
    delay = backoff
    for attempt in range(1, retries + 1):
        try:
            once(url, part, spec, timeout)
            if spec.size is not None and part.stat().st_size != spec.size:
                raise TransientError(f"got {part.stat().st_size} bytes, expected {spec.size}")
            os.replace(part, dest)
            return
        except TransientError as e:
            if attempt == retries:
                raise PseudosupError(f"{url}: failed after {retries} attempts ({e}); the partial data is kept "
                                     f"in {part} and the next run resumes it") from None
            log.warning("%s: %s; retrying in %.1f s (attempt %d/%d)", url, e, delay, attempt, retries)
            time.sleep(delay)
            delay *= 2


def _http_once(url: str, part: Path, spec: RemoteFile, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "pseudosup"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the part file is complete (or too long)
            if spec.size is not None and have > spec.size:
                part.unlink()
                raise TransientError("partial file longer than the expected size; restarting") from None
            return
        if e.code >= 500 or e.code in (408, 429):
            raise TransientError(f"HTTP {e.code}") from None
        raise PseudosupError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise TransientError(str(getattr(e, "reason", e))) from None
    with resp:
        if have and resp.status != 206:  # server ignored the Range: start over
            have = 0
        elif have and not resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            raise TransientError(f"unexpected Content-Range {resp.headers.get('Content-Range')!r}")
        length = resp.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        total = spec.size or expected
        _copy_stream(resp, part, have, total, spec.name, url)
        if expected is not None and part.stat().st_size < expected:
            raise TransientError(f"connection closed after {part.stat().st_size} of {expected} bytes")


def _copy_stream(src, part: Path, have: int, total: int | None, label: str, url: str) -> None:
    with open(part, "ab" if have else "wb") as f, byte_bar(label, total, have) as bar:
        try:
            for block in iter(lambda: src.read(CHUNK), b""):
                f.write(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException, socket.timeout) as e:
            raise TransientError(f"connection lost after {f.tell()} bytes ({e.__class__.__name__})") from None


def _ftp_once(url: str, part: Path, spec: RemoteFile, timeout: float) -> None:
    u = urllib.parse.urlparse(url)
    path = urllib.parse.unquote(u.path)
    ftp = ftplib.FTP(timeout=timeout)
    try:
        ftp.connect(u.hostname, u.port or 21)
        ftp.login(urllib.parse.unquote(u.username or "anonymous"), urllib.parse.unquote(u.password or "anonymous@"))
        ftp.voidcmd("TYPE I")
        try:
            size = ftp.size(path)
        except ftplib.error_perm:
            size = None
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            have = 0
        if size is not None and have == size:
            return
        with open(part, "ab" if have else "wb") as f, byte_bar(spec.name, spec.size or size, have) as bar:
            def write(block: bytes) -> None:
                f.write(block)
                bar.update(len(block))
            ftp.retrbinary(f"RETR {path}", write, blocksize=CHUNK, rest=have or None)
        if size is not None and part.stat().st_size < size:
            raise TransientError(f"transfer ended after {part.stat().st_size} of {size} bytes")
    except ftplib.error_perm as e:
        raise PseudosupError(f"{url}: FTP error {e}") from None
    except (ftplib.Error, OSError, EOFError) as e:
        raise TransientError(f"FTP: {e}") from None
    finally:
        try:
            ftp.close()
        except OSError:
            pass


def _file_once(url: str, part: Path, spec: RemoteFile, timeout: float) -> None:
    src = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not src.is_file():
        raise PseudosupError(f"{url}: no such file")
    shutil.copyfile(src, part)


# --- finding a verified copy of each file ---------------------------------------------

def _try_local(spec: RemoteFile, dirs: list[Path], exact_bytes: bool, stamps: Stamps | None):
    for d in dirs:
        path = d / spec.name
        if path.is_file():
            try:
                return path, verified(path, spec, stamps, exact_bytes)
            except ChecksumError as e:
                log.warning("ignoring %s: %s", path, e)
    return None


def _try_members(spec: RemoteFile, dirs: list[Path]):
    """The already-extracted members of an archive, in a mirror directory."""
    if spec.unpack != "extract":
        return None
    for d in dirs:
        paths = [d / m.name for m in spec.members]
        if all(p.is_file() for p in paths):
            try:
                for m, p in zip(spec.members, paths):
                    check_member_file(p, m)
                return d, "extracted members, verified by size and format"
            except PseudosupError as e:
                log.warning("ignoring extracted members in %s: %s", d, e)
    return None


def check_member_file(path: Path, m: Member) -> None:
    if m.size is not None and path.stat().st_size != m.size:
        raise PseudosupError(f"{path}: {path.stat().st_size} bytes, expected {m.size}")
    if m.check:
        check_format(path, m.check)


def fetch_file(spec: RemoteFile, dataset: Dataset, cache: Path, mirror: Path | None, offline: bool,
               shared: Path | None = None, retries: int = RETRIES, backoff: float = BACKOFF):
    """Return (path, how it was verified, source) of a verified copy of `spec`, or
    None when offline and nowhere to be found. For an archive whose extracted members
    are in the mirror, path is that directory and the source says so."""
    stamps = Stamps(cache)
    mirrors = [mirror, mirror / dataset.name] if mirror is not None else []
    found = _try_local(spec, mirrors, True, stamps)
    if found:
        return found[0], found[1], f"mirror {found[0]}"
    found = _try_members(spec, mirrors)
    if found:
        return found[0], found[1], f"mirror {found[0]} (extracted members)"
    if dataset.shared is not None and shared is not None:
        found = _try_local(spec, [shared / dataset.shared], True, stamps)
        if found:
            return found[0], found[1], f"local file {found[0]}"
    found = _try_local(spec, [Path(d) for d in dataset.local_dirs], False, None)
    if found:
        return found[0], found[1], f"local copy {found[0]}"
    cached = cache / spec.name
    if cached.exists():
        try:
            return cached, verified(cached, spec, stamps), f"cache {cached}"
        except ChecksumError as e:
            log.warning("removing bad cached file: %s", e)
            cached.unlink()
    if offline or not spec.urls:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in spec.urls:
        try:
            log.info("downloading %s", url)
            download(url, cached, spec, retries=retries, backoff=backoff)
            return cached, verified(cached, spec, stamps), url
        except PseudosupError as e:
            errors.append(str(e))
            if cached.exists():  # a complete download that failed verification
                cached.unlink()
    raise PseudosupError(f"{spec.name}: every source failed:\n  " + "\n  ".join(errors))


def _missing_error(dataset: Dataset, missing: list[RemoteFile], mirror: Path | None, shared: Path | None,
                   cache: Path, offline: bool) -> PseudosupError:
    where = [f"{mirror} (and {mirror}/{dataset.name})" if mirror
             else f"mirror: not set (paths.mirror or ${MIRROR_ENV})"]
    if dataset.shared is not None:
        where.append(f"{(shared or shared_data_dir()) / dataset.shared} (paths.shared_data)")
    where += [*dataset.local_dirs, str(cache)]
    lines = []
    for s in missing:
        check = ", ".join(f"{k} {v}" for k, v in s.digests.items()) or (
            f"no published checksum: checked by {'size ' + str(s.size) + ' + ' if s.size else ''}{s.check} format")
        src = s.urls[0] if s.urls else "no download URL: " + (dataset.notes or "provide it yourself")
        lines.append(f"  {s.name}  ({check}; from {src})\n")
    why = "offline and these files are missing" if offline else "these files have no download source"
    return PseudosupError(
        f"dataset '{dataset.name}': {why}:\n" + "".join(lines)
        + "looked in: " + "; ".join(where) + "\n"
        + f"put them in a mirror directory (paths.mirror or ${MIRROR_ENV}) and rerun")


# --- building the raw directory -------------------------------------------------------

def _place(src: Path, dest: Path, may_link: bool) -> None:
    """Hard-link from the cache when possible (no second copy on disk), else copy."""
    if may_link:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    shutil.copyfile(src, dest)


def materialise(spec: RemoteFile, path: Path, tmp: Path, from_cache: bool) -> list[str]:
    """Put a verified file into the raw directory being built (`tmp`), as its
    `unpack` mode says; return the names written."""
    if path.is_dir():  # extracted members from a mirror
        for m in spec.members:
            shutil.copyfile(path / m.name, tmp / m.name)
        return [m.name for m in spec.members]
    if spec.unpack == "copy":
        if spec.check == "zip":
            archive.ZipMembers(path)  # refuses member names that would escape
        _place(path, tmp / spec.name, from_cache)
        return [spec.name]
    if spec.unpack == "extract":
        if archive.is_rar(path):  # member paths inside are not known: matched by file name
            archive.extract_rar(path, {m.name: tmp / m.name for m in spec.members})
        else:
            archive.extract_members(path, {m.path: tmp / m.name for m in spec.members})
        for m in spec.members:
            check_member_file(tmp / m.name, m)
        return [m.name for m in spec.members]
    if spec.unpack == "tar":
        dest = tmp / tar_name(spec.name)
        log.info("writing %s (uncompressed, indexed)", dest.name)
        archive.to_plain_tar(path, dest)
        return [dest.name, archive.index_path(dest).name]
    raise PseudosupError(f"{spec.name}: unknown unpack mode '{spec.unpack}'")


def fetch_dataset(dataset: Dataset, out: Path, cache: Path, mirror: Path | None = None,
                  offline: bool | None = None, shared: Path | None = None,
                  retries: int = RETRIES, backoff: float = BACKOFF) -> dict:
    """Materialise the dataset's raw files in `out` (atomically) and return the manifest."""
    out, cache = Path(out), Path(cache)
    if mirror is None and os.environ.get(MIRROR_ENV):
        mirror = Path(os.environ[MIRROR_ENV])
    if offline is None:
        offline = os.environ.get(OFFLINE_ENV, "") not in ("", "0")
    if dataset.shared is not None:
        shared = shared or shared_data_dir()
        ok, why = dataset.available({"shared_data": str(shared)})
        if not ok and mirror is None:
            raise PseudosupError(why)
    found, missing = {}, []
    for spec in dataset.files:
        got = fetch_file(spec, dataset, cache, mirror, offline, shared, retries, backoff)
        if got is None:
            missing.append(spec)
        else:
            found[spec.name] = (spec, *got)
    if missing:
        raise _missing_error(dataset, missing, mirror, shared, cache, offline)
    manifest = {"dataset": dataset.name, "files": {}}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for name, (spec, path, how, source) in found.items():
            written = materialise(spec, path, tmp, from_cache=path.parent == cache)
            manifest["files"][name] = {"source": source, "verified": how,
                                       "bytes": path.stat().st_size if path.is_file() else None,
                                       "raw": {w: (tmp / w).stat().st_size for w in written}}
        manifest.update(dataset.materialise_local(tmp))
        write_json(tmp / "MANIFEST.json", manifest)
    return manifest

