"""Archive members read from several threads at once return exactly their own bytes
(feature extraction reads images on `threads` threads)."""

import io
import tarfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pseudosup.data.loaders.archive import TarMembers, ZipMembers


def _payloads(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return {f"m/{i:04d}.bin": rng.bytes(int(rng.integers(1, 40000))) for i in range(n)}


def _tar(path, payloads):
    with tarfile.open(path, "w") as tf:
        for name, data in payloads.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_tar_members_concurrent_reads_are_exact(tmp_path):
    payloads = _payloads()
    _tar(tmp_path / "a.tar", payloads)
    members = TarMembers(tmp_path / "a.tar")
    names = list(payloads) * 4
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(members.read, names))
    assert all(g == payloads[n] for g, n in zip(got, names))


def test_zip_members_concurrent_reads_are_exact(tmp_path):
    import zipfile

    payloads = _payloads(100, seed=1)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        for name, data in payloads.items():
            z.writestr(name, data)
    members = ZipMembers(tmp_path / "a.zip")
    names = list(payloads) * 4
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(members.read, names))
    assert all(g == payloads[n] for g, n in zip(got, names))
