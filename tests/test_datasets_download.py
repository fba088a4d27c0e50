"""Download -> verify -> extract -> load, over real HTTP and FTP servers on 127.0.0.1,
with fixtures in the original formats; every failure the issue lists gives a clear
error or recovers, and leaves nothing partial behind."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from pseudosup.data import download as dl
from pseudosup.data.download import fetch_dataset
from pseudosup.data.loaders.texmex import VecsFile, write_vecs
from pseudosup.data.registry import RemoteFile
from pseudosup.io import PseudosupError

from .dataset_fixtures import evil_tarball, md5, sha256, texmex_arrays, texmex_dataset, texmex_tarball
from .servers import FTPFileServer, HTTPFileServer

FAST = {"retries": 3, "backoff": 0.01}


@pytest.fixture(scope="module")
def sift(tmp_path_factory):
    d = tmp_path_factory.mktemp("sift")
    arrays = texmex_arrays()
    return texmex_tarball(d / "sift.tar.gz", "sift", arrays), arrays


@pytest.fixture
def http():
    with HTTPFileServer() as server:
        yield server


@pytest.fixture
def ftp(tmp_path):
    root = tmp_path / "ftproot"
    root.mkdir()
    with FTPFileServer(root) as server:
        yield server


def nothing_partial(tmp_path, out):
    assert not out.exists()
    assert not [p for p in tmp_path.rglob("*.tmp-*")], "temporary files left behind"


def check_texmex(raw, arrays, ds):
    v = ds.vectors(raw)
    n = {r: len(arrays[r]) for r in ("base", "query", "learn")}
    assert v.shape == (sum(n.values()), arrays["base"].shape[1])
    assert np.array_equal(v[: n["base"]], arrays["base"])
    assert np.array_equal(v[n["base"]: n["base"] + n["query"]], arrays["query"])
    assert np.array_equal(v[n["base"] + n["query"]:], arrays["learn"])
    assert np.array_equal(ds.groundtruth(raw), arrays["groundtruth"])
    assert ds.parts(raw) == {"base": (0, n["base"]), "query": (n["base"], n["base"] + n["query"]),
                             "learn": (n["base"] + n["query"], sum(n.values()))}


def test_http_download_verify_extract_load(tmp_path, http, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [http.add("sift.tar.gz", path)], arrays, sha256=sha256(path))
    out, cache = tmp_path / "raw", tmp_path / "cache"
    manifest = fetch_dataset(ds, out, cache, offline=False, **FAST)
    assert sorted(p.name for p in out.iterdir()) == ["MANIFEST.json", "sift_base.fvecs", "sift_groundtruth.ivecs",
                                                     "sift_learn.fvecs", "sift_query.fvecs"]
    assert manifest["files"]["sift.tar.gz"]["verified"] == "sha256"
    check_texmex(out, arrays, ds)
    # the archive stays in the download cache (not a DVC output); the raw dir has the members only
    assert (cache / "sift.tar.gz").is_file() and not (out / "sift.tar.gz").exists()


def test_second_run_touches_no_network(tmp_path, http, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [http.add("sift.tar.gz", path)], arrays, sha256=sha256(path))
    fetch_dataset(ds, tmp_path / "raw1", tmp_path / "cache", **FAST)
    before = len(http.requests)
    m = fetch_dataset(ds, tmp_path / "raw2", tmp_path / "cache", **FAST)
    assert len(http.requests) == before == 1
    assert m["files"]["sift.tar.gz"]["source"].startswith("cache")
    assert "remembered" in m["files"]["sift.tar.gz"]["verified"]  # not re-hashed either


def test_http_500_then_success(tmp_path, http, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [http.add("sift.tar.gz", path)], arrays, md5=md5(path))
    http.faults["sift.tar.gz"] += ["500", "500"]
    fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    assert [r["fault"] for r in http.requests] == ["500", "500", None]
    check_texmex(tmp_path / "raw", arrays, ds)


def test_http_connection_cut_mid_file_resumes_with_range(tmp_path, http, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [http.add("sift.tar.gz", path)], arrays, sha256=sha256(path))
    http.faults["sift.tar.gz"] += [("cut", 5000), ("cut", 3000)]
    fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    assert [r["range"] for r in http.requests] == [None, "bytes=5000-", "bytes=8000-"]
    check_texmex(tmp_path / "raw", arrays, ds)
    assert not list((tmp_path / "cache").glob("*.part"))


def test_server_ignoring_range_restarts_cleanly(tmp_path, http, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [http.add("sift.tar.gz", path)], arrays, sha256=sha256(path))
    http.faults["sift.tar.gz"] += [("cut", 4000), "ignore-range"]
    fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    check_texmex(tmp_path / "raw", arrays, ds)


def test_ftp_download_cut_then_resumed_with_rest(tmp_path, ftp, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [ftp.add("sift.tar.gz", path)], arrays, sha256=sha256(path))
    ftp.faults["sift.tar.gz"] += [("cut", 6000)]
    fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    assert ftp.rests == [6000]
    check_texmex(tmp_path / "raw", arrays, ds)


def test_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path, http, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [http.add("sift.tar.gz", path)], arrays, sha256="0" * 64)
    with pytest.raises(PseudosupError, match="sha256 mismatch"):
        fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    nothing_partial(tmp_path, tmp_path / "raw")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name != dl.STAMPS]


def test_mirror_url_used_when_official_fails(tmp_path, http, sift):
    path, arrays = sift
    http.add("sift.tar.gz", path)
    ds = texmex_dataset("sift-fixture", "sift", [http.url("gone/sift.tar.gz"), http.url("sift.tar.gz")], arrays,
                        sha256=sha256(path))
    m = fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    assert m["files"]["sift.tar.gz"]["source"] == http.url("sift.tar.gz")


def test_retries_exhausted_keeps_part_then_next_run_resumes(tmp_path, http, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [http.add("sift.tar.gz", path)], arrays, sha256=sha256(path))
    http.faults["sift.tar.gz"] += [("cut", 2000)] * 3
    with pytest.raises(PseudosupError, match="failed after 3 attempts.*kept"):
        fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    nothing_partial(tmp_path, tmp_path / "raw")
    assert (tmp_path / "cache" / "sift.tar.gz.part").stat().st_size == 6000
    fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    assert http.requests[-1]["range"] == "bytes=6000-"
    check_texmex(tmp_path / "raw", arrays, ds)


def test_corrupt_archive_without_published_checksum(tmp_path, http, sift):
    path, arrays = sift
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\x00" * 64  # corrupt deflate stream, same size
    ds = texmex_dataset("sift-fixture", "sift", [http.add("sift.tar.gz", bytes(data))], arrays)
    with pytest.raises(PseudosupError, match="corrupt|CRC|invalid|Error"):
        fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    nothing_partial(tmp_path, tmp_path / "raw")
    assert not (tmp_path / "cache" / "sift.tar.gz").exists()


def test_truncated_archive_without_published_checksum(tmp_path, http, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [http.add("sift.tar.gz", path.read_bytes()[:-3000])], arrays)
    with pytest.raises(PseudosupError, match="corrupt or truncated"):
        fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    nothing_partial(tmp_path, tmp_path / "raw")


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
@pytest.mark.parametrize("unpack", ["extract", "tar"])
def test_member_escaping_the_target_is_refused(tmp_path, http, how, unpack):
    evil = evil_tarball(tmp_path / "evil.tar.gz", how)
    members = (dl.Member("sift/ok.txt", "ok.txt"),) if unpack == "extract" else ()
    spec = RemoteFile("evil.tar.gz", (http.add("evil.tar.gz", evil),), sha256=sha256(evil), unpack=unpack,
                      members=members)
    ds = texmex_dataset("evil", "sift", [], texmex_arrays(nb=5, nq=2, nl=2, k=2))
    ds = dataclasses.replace(ds, files=(spec,))
    with pytest.raises(PseudosupError, match="escape|outside"):
        fetch_dataset(ds, tmp_path / "out" / "raw", tmp_path / "cache", **FAST)
    nothing_partial(tmp_path, tmp_path / "out" / "raw")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert not os.path.exists("/tmp/pseudosup-evil.txt")


def test_fvecs_with_inconsistent_dimension(tmp_path):
    good = tmp_path / "good.fvecs"
    write_vecs(good, np.ones((50, 8), np.float32))
    raw = bytearray(good.read_bytes())
    raw[10 * 36: 10 * 36 + 4] = np.int32(9).tobytes()  # vector 10 claims d = 9
    bad = tmp_path / "bad.fvecs"
    bad.write_bytes(bytes(raw))
    with pytest.raises(PseudosupError, match=r"bad\.fvecs: vector 10 has dimension 9.*inconsistent"):
        VecsFile(bad).check_all()
    # a vector of another length shifts every later record: caught on open, by the size
    short = tmp_path / "short.fvecs"
    short.write_bytes(good.read_bytes()[:36 * 20] + np.int32(7).tobytes() + b"\0" * 28 + good.read_bytes()[36 * 21:])
    with pytest.raises(PseudosupError, match="short.fvecs.*inconsistent dimensions"):
        VecsFile(short)


def test_extracted_fvecs_with_inconsistent_dimension_fails_the_download(tmp_path, http):
    arrays = texmex_arrays(nb=40, nq=4, nl=8, d=8, k=3)
    path = texmex_tarball(tmp_path / "sift.tar.gz", "sift", arrays)
    # rebuild the archive with a base file whose vector 7 claims another dimension
    import tarfile
    base = tmp_path / "_sift_files" / "sift_base.fvecs"
    data = bytearray(base.read_bytes())
    data[7 * 36: 7 * 36 + 4] = np.int32(3).tobytes()
    base.write_bytes(bytes(data))
    with tarfile.open(path, "w:gz") as tf:
        for f in sorted((tmp_path / "_sift_files").iterdir()):
            tf.add(f, arcname=f"sift/{f.name}")
    ds = texmex_dataset("sift-fixture", "sift", [http.add("sift.tar.gz", path)], arrays, sha256=sha256(path))
    with pytest.raises(PseudosupError, match="vector 7 has dimension 3"):
        fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    nothing_partial(tmp_path, tmp_path / "raw")


def test_offline_mirror_is_used_without_network(tmp_path, http, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [http.url("sift.tar.gz")], arrays, sha256=sha256(path))
    mirror = tmp_path / "mirror" / "sift-fixture"  # <mirror>/<dataset>/<file> works too
    mirror.mkdir(parents=True)
    (mirror / "sift.tar.gz").write_bytes(path.read_bytes())
    m = fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", mirror=tmp_path / "mirror", offline=True)
    assert m["files"]["sift.tar.gz"]["source"].startswith("mirror") and http.requests == []
    check_texmex(tmp_path / "raw", arrays, ds)


def test_mirror_via_environment_and_extracted_members(tmp_path, monkeypatch, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", ["http://127.0.0.1:9/never"], arrays, sha256=sha256(path))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for role in ("base", "query", "learn", "groundtruth"):  # what users often have: the extracted files
        ext = "ivecs" if role == "groundtruth" else "fvecs"
        write_vecs(mirror / f"sift_{role}.{ext}", arrays[role])
    monkeypatch.setenv(dl.MIRROR_ENV, str(mirror))
    monkeypatch.setenv(dl.OFFLINE_ENV, "1")
    m = fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache")
    assert "extracted members" in m["files"]["sift.tar.gz"]["source"]
    check_texmex(tmp_path / "raw", arrays, ds)


def test_mirror_with_wrong_bytes_is_ignored_then_offline_error_lists_everything(tmp_path, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", ["ftp://example.invalid/sift.tar.gz"], arrays, sha256=sha256(path))
    extra = RemoteFile("extra.bin", ("https://example.invalid/extra.bin",), size=3, md5="0" * 32)
    ds = dataclasses.replace(ds, files=ds.files + (extra,))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "sift.tar.gz").write_bytes(b"not the file")
    with pytest.raises(PseudosupError) as e:
        fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", mirror=mirror, offline=True)
    msg = str(e.value)
    assert "offline and these files are missing" in msg
    assert "sift.tar.gz" in msg and "extra.bin" in msg and str(mirror) in msg and "PSEUDOSUP_MIRROR" in msg
    assert "ftp://example.invalid/sift.tar.gz" in msg
    nothing_partial(tmp_path, tmp_path / "raw")


def test_http_404_is_not_retried(tmp_path, http, sift):
    path, arrays = sift
    ds = texmex_dataset("sift-fixture", "sift", [http.url("missing.tar.gz")], arrays, sha256=sha256(path))
    with pytest.raises(PseudosupError, match="HTTP 404"):
        fetch_dataset(ds, tmp_path / "raw", tmp_path / "cache", **FAST)
    assert len(http.requests) == 1


def test_download_throughput_is_not_the_bottleneck(tmp_path, http):
    """A 40 MB file over loopback: the copy loop must run far faster than any real
    network (> 50 MB/s here; benchmarks/bench_datasets.py records the number)."""
    import time
    data = np.random.default_rng(0).integers(0, 256, 40 << 20, dtype=np.uint8).tobytes()
    spec = RemoteFile("big.bin", (http.add("big.bin", data),), size=len(data), sha256=__import__("hashlib").sha256(data).hexdigest())
    t = time.perf_counter()
    dl.download(spec.urls[0], tmp_path / "big.bin", spec, retries=1)
    assert (len(data) / (time.perf_counter() - t)) / 1e6 > 50
    assert (tmp_path / "big.bin").read_bytes() == data
