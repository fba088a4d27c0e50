"""TEXMEX vector sets (Jegou, Douze & Schmid, TPAMI 2011): SIFT-1M, GIST-1M, and the
local `sift-real-small` (DERIVED, not SIFT-1M).

Items are the base vectors, then the query vectors, then the learning vectors
(`parts(raw)` gives the ranges). The official ground truth lists, for each query,
its exact L2 nearest base vectors: item indices 0..nb-1, which are also positions in
the database of every TEXMEX split (database = the base vectors, in order).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..io import PseudosupError
from .loaders.texmex import StackedVectors, VecsFile
from .registry import Dataset, Member, RemoteFile, register

TEXMEX_FTP = "ftp://ftp.irisa.fr/local/texmex/corpus/"
HOMEPAGE = "http://corpus-texmex.irisa.fr/"
ROLES = ("base", "query", "learn")


@dataclass
class TexmexDataset(Dataset):
    """`role_files` maps base/query/learn/groundtruth to file names in the raw directory;
    `counts` the expected number of vectors of each (checked on every open)."""

    role_files: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    dim: int = 0
    top_k: int = 100

    def _open(self, raw: Path, role: str) -> VecsFile:
        path = Path(raw) / self.role_files[role]
        f = VecsFile(path)
        want_n = self.counts.get(role)
        want_d = self.dim if role != "groundtruth" else self.top_k
        if (want_n is not None and f.n != want_n) or f.d != want_d:
            raise PseudosupError(f"{path}: {f.n} x {f.d}, expected {want_n} x {want_d} for {self.name}; "
                                 "the file is not the expected one: rerun the download stage")
        return f

    def resized(self, counts: dict) -> "TexmexDataset":
        """Other vector counts (a stand-in's): {"base": nb, "query": nq, "learn": nl}."""
        if not counts:
            return self
        unknown = sorted(set(counts) - set(ROLES))
        if unknown:
            raise PseudosupError(f"{self.name}: unknown counts {unknown} (TEXMEX has {list(ROLES)})")
        new = {**{r: self.counts[r] for r in self._roles()}, **{r: int(n) for r, n in counts.items()}}
        prefix = self.role_files["base"].rsplit("_", 1)[0]
        files = tuple(texmex_archive(prefix, f.urls, new, self.dim, self.top_k, **f.digests)
                      if f.unpack == "extract" else f for f in self.files)
        return replace(self, counts={**new, "groundtruth": new["query"]}, files=files)

    def _roles(self) -> list[str]:
        return [r for r in ROLES if r in self.role_files]

    def num_items(self, raw: Path) -> int:
        return sum(self._open(raw, r).n for r in self._roles())

    def parts(self, raw: Path) -> dict[str, tuple[int, int]]:
        out, start = {}, 0
        for r in self._roles():
            n = self._open(raw, r).n
            out[r] = (start, start + n)
            start += n
        return out

    def vectors(self, raw: Path) -> StackedVectors:
        return StackedVectors([self._open(raw, r) for r in self._roles()])

    def groundtruth(self, raw: Path) -> np.ndarray:
        gt = self._open(raw, "groundtruth").load().astype(np.int64)
        nb = self._open(raw, "base").n
        if gt.shape[0] != self._open(raw, "query").n:
            raise PseudosupError(f"{self.role_files['groundtruth']}: {gt.shape[0]} rows for "
                                 f"{self._open(raw, 'query').n} queries")
        if gt.min() < 0 or gt.max() >= nb:
            raise PseudosupError(f"{Path(raw) / self.role_files['groundtruth']}: indices outside the "
                                 f"{nb} base vectors; the file is corrupt")
        return gt


def texmex_archive(prefix: str, urls: tuple[str, ...], counts: dict, dim: int, k: int, **digests) -> RemoteFile:
    """The TEXMEX tarball `<prefix>.tar.gz` holding <prefix>/<prefix>_{base,query,learn}.fvecs and
    <prefix>/<prefix>_groundtruth.ivecs; only those four are extracted (sizes are exact)."""
    members = tuple(Member(f"{prefix}/{prefix}_{r}.fvecs", f"{prefix}_{r}.fvecs", counts[r] * (4 + 4 * dim), "fvecs")
                    for r in ROLES) + (
        Member(f"{prefix}/{prefix}_groundtruth.ivecs", f"{prefix}_groundtruth.ivecs", counts["query"] * (4 + 4 * k),
               "ivecs"),)
    return RemoteFile(f"{prefix}.tar.gz", urls, check="tar.gz", unpack="extract", members=members, **digests)


def texmex_roles(prefix: str) -> dict:
    return {**{r: f"{prefix}_{r}.fvecs" for r in ROLES}, "groundtruth": f"{prefix}_groundtruth.ivecs"}


SIFT_COUNTS = {"base": 1_000_000, "query": 10_000, "learn": 100_000}
GIST_COUNTS = {"base": 1_000_000, "query": 1_000, "learn": 500_000}


@register("sift-1m")
def _sift_1m() -> Dataset:
    return TexmexDataset(
        name="sift-1m", kind="vectors", relevance="groundtruth",
        description="SIFT-1M (ANN_SIFT1M): 1,000,000 base, 10,000 query, 100,000 learn 128-d SIFT "
                    "descriptors; exact L2 top-100 ground truth",
        homepage=HOMEPAGE, license="free for research (see the TEXMEX page)",
        files=(texmex_archive(
            "sift", (TEXMEX_FTP + "sift.tar.gz",), SIFT_COUNTS, 128, 100,
            sha512="1c0c5dcb9d8cad4754ddec94985c0a4c4230f755bce4cd2b93efa9a84d5b2947"
                   "7b496e707ba5ca37804f7c7616d5ce7e5be9a6241ffe654c4fd7be295f0e6224",
            checksum_note="TEXMEX publishes no checksum; sha512 as pinned by ann-benchmarks "
                          "(install/data-sift.sh; an older version pinned md5 b23d1b3b2ee8469d819b61ca900ef0ed); "
                          "the extracted files are also checked by exact size and every vector header"),),
        role_files=texmex_roles("sift"), counts={**SIFT_COUNTS, "groundtruth": SIFT_COUNTS["query"]},
        dim=128, top_k=100)


@register("gist-1m")
def _gist_1m() -> Dataset:
    return TexmexDataset(
        name="gist-1m", kind="vectors", relevance="groundtruth",
        description="GIST-1M (ANN_GIST1M): 1,000,000 base, 1,000 query, 500,000 learn 960-d GIST "
                    "descriptors; exact L2 top-100 ground truth",
        homepage=HOMEPAGE, license="free for research (see the TEXMEX page)",
        files=(texmex_archive(
            "gist", (TEXMEX_FTP + "gist.tar.gz",), GIST_COUNTS, 960, 100,
            sha512="3bed5dc38ef4b10805ce91c13c121fbd261440f5c4685a489a04748b2c0e4edd"
                   "b7fd8645b4e47ce54b142062c134bbaea1e3fdb3a4ef178de3b08e0d3a910e78",
            checksum_note="TEXMEX publishes no checksum; sha512 as pinned by ann-benchmarks "
                          "(install/data-gist.sh); the extracted files are also checked by exact size "
                          "and every vector header"),),
        role_files=texmex_roles("gist"), counts={**GIST_COUNTS, "groundtruth": GIST_COUNTS["query"]},
        dim=960, top_k=100)


# sha256 of the files in ../shared/data/sift-real-small (the source is the local copy)
SIFT_REAL_SMALL = (
    RemoteFile("base.fvecs", size=24_585_336,
               sha256="fe9f5bf3afb2725d367fa8955fa9662197febf6c4d9ea78e6d63f526598e6db8"),
    RemoteFile("query.fvecs", size=516_000,
               sha256="d54b8407cedf2e0238e6ee6ad1a4c4ed73fc54adb507509c698f8b2524441de5"),
    RemoteFile("groundtruth.ivecs", size=404_000,
               sha256="907b992e2dab8c419f8cd642923d87cbef0327b0de8d3611e2f3ddcd0152921f"),
)


@register("sift-real-small")
def _sift_real_small() -> Dataset:
    return TexmexDataset(
        name="sift-real-small", kind="vectors", relevance="groundtruth",
        description="DERIVED, not SIFT-1M: OpenCV SIFT descriptors of 30 real photos, 47,646 base + "
                    "1,000 query 128-d vectors (integral values like SIFT-1M), exact L2 top-100 ground "
                    "truth, in TEXMEX layout; no learn set",
        homepage="../shared/data/README.md", license="as the photos (see SOURCES.txt there)",
        files=SIFT_REAL_SMALL, shared="sift-real-small",
        notes="local only: read from paths.shared_data/sift-real-small (never downloaded)",
        role_files={"base": "base.fvecs", "query": "query.fvecs", "groundtruth": "groundtruth.ivecs"},
        counts={"base": 47_646, "query": 1_000, "groundtruth": 1_000}, dim=128, top_k=100)
