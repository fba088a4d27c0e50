"""Benchmarks of the data layer (issue #3 targets), on synthetic files of the real sizes.

1. SIFT-1M layout: open the vectors of `sift-1m` (1,000,000 base + 10,000 query +
   100,000 learn 128-d .fvecs, 567 MB) through the registry and read one query
   batch (the 10,000 query rows, and 1,000 rows at random positions). Target <= 2 s.
   Measured cold (the files' pages evicted from the page cache with
   posix_fadvise(DONTNEED) first) and warm.
2. GIST-1M size (1,000,000 x 960 float32 .fvecs = 3.84 GB): peak memory (max RSS of
   a fresh process) while (a) streaming it into a .npy, (b) loading it whole into one
   array. Target <= 1.2x the file size (i.e. never two copies).
3. Download throughput against a local HTTP server (loopback, 256 MB) and a local
   FTP server: our resumable, verified path vs a bare urllib read loop.

    python benchmarks/bench_datasets.py [--tmp /tmp] [--skip-gist]

Writes benchmarks/results/datasets.{json,md}. Synthetic files go to --tmp and are
deleted afterwards. The machine load (1-minute load average) is recorded with each
result: the cores may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/servers.py


def load() -> float:
    return round(os.getloadavg()[0], 2)


def write_fvecs_synthetic(path: Path, n: int, d: int, seed: int, chunk: int = 20_000) -> None:
    """n x d integral float32 vectors in .fvecs layout, written in chunks."""
    rng = np.random.default_rng(seed)
    rec = np.dtype([("d", "<i4"), ("v", "<f4", (d,))])
    block = np.empty(chunk, dtype=rec)
    block["d"] = d
    base = rng.integers(0, 128, (chunk, d)).astype(np.float32)
    with open(path, "wb") as f:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            block["v"][:m] = base[:m] + (start // chunk) % 7  # cheap variation between chunks
            block[:m].tofile(f)


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# --- 1. open + query batch ---------------------------------------------------------------

def child_open(raw: str) -> dict:
    t0 = time.perf_counter()
    from pseudosup.data import registry
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    v = registry.get("sift-1m").vectors(raw)
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = v[1_000_000:1_010_000]
    t_query = time.perf_counter() - t0
    rows = np.random.default_rng(0).choice(len(v), 1000, replace=False)
    t0 = time.perf_counter()
    r = v[rows]
    t_random = time.perf_counter() - t0
    assert q.shape == (10_000, 128) and r.shape == (1000, 128)
    return {"import_s": t_import, "open_s": t_open, "query_batch_10000_s": t_query, "random_rows_1000_s": t_random,
            "open_plus_query_batch_s": t_open + t_query}


def bench_open(tmp: Path) -> dict:
    raw = tmp / "sift-1m"
    raw.mkdir()
    sizes = {"base": 1_000_000, "query": 10_000, "learn": 100_000}
    for role, n in sizes.items():
        write_fvecs_synthetic(raw / f"sift_{role}.fvecs", n, 128, seed=len(role))
    out = {"file_bytes": sum((raw / f"sift_{r}.fvecs").stat().st_size for r in sizes)}
    for mode in ("cold", "warm"):
        if mode == "cold":
            for r in sizes:
                evict(raw / f"sift_{r}.fvecs")
        before = load()
        res = run_child("open", str(raw))
        out[mode] = {**{k: round(v, 4) for k, v in res.items()}, "load_before": before, "load_after": load()}
    return out


# --- 2. GIST-1M-sized peak memory -----------------------------------------------------------

def child_stream(src: str, dst: str) -> dict:
    from pseudosup.data.loaders.texmex import vecs_to_npy
    t0 = time.perf_counter()
    n, d = vecs_to_npy(src, dst)
    return {"seconds": time.perf_counter() - t0, "shape": [n, d]}


def child_load(src: str) -> dict:
    from pseudosup.data.loaders.texmex import VecsFile
    t0 = time.perf_counter()
    x = VecsFile(src).load()
    return {"seconds": time.perf_counter() - t0, "shape": list(x.shape), "array_bytes": int(x.nbytes)}


def bench_gist(tmp: Path) -> dict:
    src, dst = tmp / "gist_base.fvecs", tmp / "gist_base.npy"
    t0 = time.perf_counter()
    write_fvecs_synthetic(src, 1_000_000, 960, seed=1, chunk=10_000)
    size = src.stat().st_size
    out = {"file_bytes": size, "write_seconds": round(time.perf_counter() - t0, 1)}
    for name, args in (("stream_to_npy", ("stream", str(src), str(dst))), ("load_into_ram", ("load", str(src)))):
        before = load()
        res, peak = run_child(*args, with_peak=True)
        out[name] = {**res, "peak_rss_bytes": peak, "peak_over_file_size": round(peak / size, 3),
                     "target_max_ratio": 1.2, "meets_target": peak <= 1.2 * size,
                     "load_before": before, "load_after": load()}
        if name == "stream_to_npy":
            arr = np.load(dst, mmap_mode="r")
            assert arr.shape == (1_000_000, 960)
            out[name]["npy_bytes"] = dst.stat().st_size
            dst.unlink()
    src.unlink()
    return out


# --- 3. download throughput -------------------------------------------------------------

def bench_download(tmp: Path) -> dict:
    import hashlib
    import urllib.request

    from pseudosup.data import download as dl
    from pseudosup.data.registry import RemoteFile
    from tests.servers import FTPFileServer, HTTPFileServer

    data = np.random.default_rng(0).integers(0, 256, 256 << 20, dtype=np.uint8).tobytes()
    digest = hashlib.sha256(data).hexdigest()
    out = {"bytes": len(data)}
    with HTTPFileServer() as http:
        url = http.add("big.bin", data)
        before = load()
        t0 = time.perf_counter()
        with urllib.request.urlopen(url) as r:
            while r.read(1 << 20):
                pass
        bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        with urllib.request.urlopen(url) as r, open(tmp / "bare.bin", "wb") as f:
            for block in iter(lambda: r.read(1 << 20), b""):
                f.write(block)
        bare_file = time.perf_counter() - t0
        (tmp / "bare.bin").unlink()
        spec = RemoteFile("big.bin", (url,), size=len(data), sha256=digest)
        t0 = time.perf_counter()
        dl.download(url, tmp / "big.bin", spec, retries=1)
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        dl.verify(tmp / "big.bin", spec)
        check = time.perf_counter() - t0
        (tmp / "big.bin").unlink()
        out["http"] = {"bare_urllib_MBps": round(len(data) / bare / 1e6),
                       "bare_urllib_to_file_MBps": round(len(data) / bare_file / 1e6), "ours_MBps": round(len(data) / ours / 1e6),
                       "sha256_verify_MBps": round(len(data) / check / 1e6), "load_before": before,
                       "load_after": load()}
    root = tmp / "ftp"
    root.mkdir()
    with FTPFileServer(root) as ftp:
        url = ftp.add("big.bin", data)
        spec = RemoteFile("big.bin", (url,), size=len(data), sha256=digest)
        before = load()
        t0 = time.perf_counter()
        dl.download(url, tmp / "big.bin", spec, retries=1)
        ours = time.perf_counter() - t0
        (tmp / "big.bin").unlink()
        out["ftp"] = {"ours_MBps": round(len(data) / ours / 1e6), "load_before": before, "load_after": load()}
    return out


# --- plumbing --------------------------------------------------------------------------------

def run_child(task: str, *args: str, with_peak: bool = False):
    """Run a task in a fresh interpreter; return its result (and its max RSS)."""
    proc = subprocess.run([sys.executable, __file__, "--child", task, *args], capture_output=True, text=True,
                          cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if with_peak:
        return res, res.pop("maxrss_bytes")
    res.pop("maxrss_bytes", None)
    return res


def child_main(task: str, args: list[str]) -> None:
    fn = {"open": child_open, "stream": child_stream, "load": child_load}[task]
    res = fn(*args)
    res["maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps(res))


def markdown(rec: dict) -> str:
    lines = [f"Data layer benchmarks, {rec['date']}, {rec['cpus']} cores ({rec['machine']}), "
             f"1-min load {rec['load_start']} at start; synthetic files of the real sizes.\n"]
    o = rec.get("open")
    if o:
        for mode in ("cold", "warm"):
            m = o[mode]
            lines.append(f"- SIFT-1M layout ({o['file_bytes'] / 1e6:.0f} MB of .fvecs), {mode} page cache: open "
                         f"{m['open_s'] * 1e3:.1f} ms + read the 10,000-query batch {m['query_batch_10000_s'] * 1e3:.1f} ms "
                         f"= {m['open_plus_query_batch_s']:.3f} s (target <= 2 s); 1,000 random rows "
                         f"{m['random_rows_1000_s'] * 1e3:.1f} ms; import {m['import_s']:.2f} s (load {m['load_before']})")
    g = rec.get("gist")
    if g:
        for k, label in (("stream_to_npy", "streaming it to .npy"), ("load_into_ram", "loading it into one array")):
            m = g[k]
            lines.append(f"- GIST-1M size ({g['file_bytes'] / 1e9:.2f} GB .fvecs), {label}: peak RSS "
                         f"{m['peak_rss_bytes'] / 1e9:.2f} GB = {m['peak_over_file_size']:.2f}x the file "
                         f"(target <= 1.2x: {'met' if m['meets_target'] else 'NOT met'}), {m['seconds']:.1f} s "
                         f"(load {m['load_before']})")
    d = rec.get("download")
    if d:
        h, f = d["http"], d["ftp"]
        lines.append(f"- Download of {d['bytes'] >> 20} MiB from a local server: HTTP {h['ours_MBps']} MB/s "
                     f"(bare urllib read loop {h['bare_urllib_MBps']} MB/s, the same writing to a file "
                     f"{h['bare_urllib_to_file_MBps']} MB/s; sha256 verification "
                     f"{h['sha256_verify_MBps']} MB/s), FTP {f['ours_MBps']} MB/s (load {h['load_before']})")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()), help="where synthetic files go")
    ap.add_argument("--skip-gist", action="store_true", help="skip the 3.8 GB measurement")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args.child[0], args.child[1:])
        return 0
    rec = {"name": "datasets", "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
           "machine": platform.machine(), "python": platform.python_version(), "load_start": load()}
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="pseudosup-bench-") as work:
        work = Path(work)
        rec["open"] = bench_open(work)
        for f in (work / "sift-1m").iterdir():
            f.unlink()
        if not args.skip_gist:
            rec["gist"] = bench_gist(work)
        rec["download"] = bench_download(work)
    rec["load_end"] = load()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "datasets.json").write_text(json.dumps(rec, indent=2) + "\n")
    (args.out_dir / "datasets.md").write_text(markdown(rec))
    print(markdown(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
