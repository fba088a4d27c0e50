"""Fetch a dataset's raw files: mirror directory, local copies, then URLs.

Every file is verified by checksum before use, whatever its source. Downloads go to
a resumable `.part` file in a cache directory and are renamed only once verified, so
an interrupted download resumes (HTTP Range) and a second run touches no network.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..io import PseudosupError, atomic_path, write_json
from ..log import byte_bar, log
from .registry import Dataset, RemoteFile

CHUNK = 1 << 20
MIRROR_ENV = "PSEUDOSUP_MIRROR"
OFFLINE_ENV = "PSEUDOSUP_OFFLINE"


class ChecksumError(PseudosupError):
    pass


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
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


def verify(path: Path, spec: RemoteFile, exact_bytes: bool) -> None:
    """Check `path` against `spec`. `exact_bytes` also checks the archive's own digest
    (true for files claiming to be the official download; a re-compressed local copy
    is checked by its decompressed content only)."""
    checks = []
    if exact_bytes and spec.md5:
        checks.append(("md5", spec.md5, lambda: file_digest(path, "md5")))
    if exact_bytes and spec.sha256:
        checks.append(("sha256", spec.sha256, lambda: file_digest(path, "sha256")))
    if spec.content_sha256:
        checks.append(("content sha256", spec.content_sha256, lambda: content_digest(path)))
    if not checks:
        raise ChecksumError(f"{spec.name}: no checksum known, refusing to use it unverified")
    for label, want, compute in checks:
        got = compute()
        if got != want:
            raise ChecksumError(f"{path}: {label} mismatch (expected {want}, got {got}); "
                                "the file is corrupt or not the expected version")


def _candidates(spec: RemoteFile, dirs: list[Path]) -> list[Path]:
    return [d / spec.name for d in dirs if (d / spec.name).is_file()]


def _try_local(spec: RemoteFile, dirs: list[Path], exact_bytes: bool) -> Path | None:
    for path in _candidates(spec, dirs):
        try:
            verify(path, spec, exact_bytes=exact_bytes)
            return path
        except ChecksumError as e:
            log.warning("ignoring %s: %s", path, e)
    return None


def http_download(url: str, dest: Path, spec: RemoteFile, retries: int = 4, timeout: float = 60) -> None:
    """Download `url` to `dest`, resuming `dest.part` with a Range request."""
    part = dest.with_name(dest.name + ".part")
    delay = 1.0
    for attempt in range(1, retries + 1):
        try:
            _http_once(url, part, spec, timeout)
            os.replace(part, dest)
            return
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            if isinstance(e, urllib.error.HTTPError) and 400 <= e.code < 500 and e.code != 416:
                raise PseudosupError(f"{url}: HTTP {e.code}") from None
            if attempt == retries:
                raise PseudosupError(f"{url}: failed after {retries} attempts ({e}); "
                                     f"partial data kept in {part} for the next run") from None
            log.warning("%s: %s; retrying in %.0f s (attempt %d/%d)", url, e, delay, attempt, retries)
            time.sleep(delay)
            delay *= 2


def _http_once(url: str, part: Path, spec: RemoteFile, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "pseudosup"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if have and resp.status != 206:  # server ignored the Range: start over
            have = 0
        total = spec.size or (have + int(resp.headers.get("Content-Length", 0)) or None)
        mode = "ab" if have else "wb"
        with open(part, mode) as f, byte_bar(spec.name, total, have) as bar:
            for block in iter(lambda: resp.read(CHUNK), b""):
                f.write(block)
                bar.update(len(block))


def fetch_file(spec: RemoteFile, dataset: Dataset, cache: Path, mirror: Path | None, offline: bool) -> tuple[Path, str]:
    """Return a verified local path for `spec` and a description of its source."""
    if mirror is not None:
        found = _try_local(spec, [mirror, mirror / dataset.name], exact_bytes=True)
        if found:
            return found, f"mirror {found}"
    found = _try_local(spec, [Path(d) for d in dataset.local_dirs], exact_bytes=False)
    if found:
        return found, f"local copy {found}"
    cached = cache / spec.name
    if cached.exists():
        try:
            verify(cached, spec, exact_bytes=True)
            return cached, f"cache {cached}"
        except ChecksumError as e:
            log.warning("removing bad cached file: %s", e)
            cached.unlink()
    if offline:
        return None, ""  # type: ignore[return-value]
    cache.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in spec.urls:
        try:
            log.info("downloading %s", url)
            http_download(url, cached, spec)
            verify(cached, spec, exact_bytes=True)
            return cached, url
        except PseudosupError as e:
            errors.append(str(e))
            if cached.exists():
                cached.unlink()
    raise PseudosupError(f"{spec.name}: every source failed:\n  " + "\n  ".join(errors))


def fetch_dataset(dataset: Dataset, out: Path, cache: Path, mirror: Path | None = None,
                  offline: bool | None = None) -> dict:
    """Materialise the dataset's raw files in `out` (atomically) and return the manifest."""
    if mirror is None and os.environ.get(MIRROR_ENV):
        mirror = Path(os.environ[MIRROR_ENV])
    if offline is None:
        offline = os.environ.get(OFFLINE_ENV, "") not in ("", "0")
    sources, missing = {}, []
    for spec in dataset.files:
        path, source = fetch_file(spec, dataset, cache, mirror, offline)
        if path is None:
            missing.append(spec)
        else:
            sources[spec.name] = (path, source)
    if missing:
        where = [str(mirror) if mirror else f"${MIRROR_ENV} / paths.mirror (not set)",
                 *dataset.local_dirs, str(cache)]
        raise PseudosupError(
            f"dataset '{dataset.name}': offline and these files are missing:\n"
            + "".join(f"  {s.name}  (md5 {s.md5}; from {s.urls[0] if s.urls else 'n/a'})\n" for s in missing)
            + "looked in: " + ", ".join(where) + "\n"
            + f"put them in a mirror directory (paths.mirror or ${MIRROR_ENV}) and rerun")
    manifest = {"dataset": dataset.name, "files": {}}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for name, (path, source) in sources.items():
            shutil.copyfile(path, tmp / name)
            manifest["files"][name] = {"source": source, "bytes": (tmp / name).stat().st_size}
        write_json(tmp / "MANIFEST.json", manifest)
    return manifest
