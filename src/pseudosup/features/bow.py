"""Visual vocabulary, bag of visual words with TF-IDF, and a sparse inverted index.

- Vocabulary: faiss k-means on RootSIFT descriptors of a *separate* sample of images
  (`train_vocabulary`); assignment to the nearest word(s) exactly (faiss flat L2) or
  approximately (an HNSW graph over the centroids, for vocabularies of 10^4-10^5
  words: see benchmarks/bench_features.py for its agreement with exact assignment).
- Multiple assignment: each descriptor votes for its `assign_k` nearest words
  (weight 1 each); `assign_k = 1` is hard assignment.
- BoW: word counts per image (scipy CSR), then TF-IDF: tf = count ** tf_power
  (`tf_power` = 1, the default, is the plain count; 0.5 is the power-law / square-root
  TF that damps bursts of one word in one image, Jégou, Douze & Schmid, CVPR 2009),
  idf = log(N / N_w) with N_w the number of images of the IDF set containing word w
  (0 for a word no image contains), then L2 normalisation. An image without
  descriptors is the zero vector.
- Inverted index (`InvertedIndex`): the database's TF-IDF rows stored word-major
  (posting lists = CSR of the transpose); a batch of queries is answered with cosine
  scores by one sparse product.

`tfidf`, `InvertedIndex` and the file format (`save_bow` / `load_bow`) live in
`features.sparse` (no SIFT or faiss dependency) and are re-exported here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from ..io import PseudosupError
from ..log import log, progress
from .images import Fetcher
from .sift import Sift, SiftConfig
from .sparse import InvertedIndex, load_bow, save_bow, tfidf  # noqa: F401  (the BoW API in one place)

# --- vocabulary ------------------------------------------------------------------------------


def train_vocabulary(descriptors: np.ndarray, size: int, iterations: int = 20, seed: int = 0,
                     threads: int = 1) -> np.ndarray:
    """k-means centroids (size, d) float32 of the training descriptors (faiss)."""
    import faiss

    X = np.ascontiguousarray(descriptors, dtype=np.float32)
    if len(X) < size:
        raise PseudosupError(f"vocabulary: {len(X)} training descriptors for {size} words; "
                             "sample more images (vocabulary.sample_images) or choose a smaller size")
    faiss.omp_set_num_threads(threads)
    km = faiss.Kmeans(X.shape[1], size, niter=iterations, seed=seed, verbose=False,
                      max_points_per_centroid=max(256, -(-len(X) // size)))
    km.train(X)
    return km.centroids.astype(np.float32)


class Assigner:
    """Nearest visual word(s) of descriptors: exact (flat L2) or HNSW over the words."""

    def __init__(self, centroids: np.ndarray, method: str = "exact", threads: int = 1, ef_search: int = 64):
        import faiss

        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.method, self.threads = method, threads
        d = self.centroids.shape[1]
        if method == "exact":
            self.index = faiss.IndexFlatL2(d)
        elif method == "hnsw":
            self.index = faiss.IndexHNSWFlat(d, 32)
            self.index.hnsw.efConstruction = 80
        else:
            raise PseudosupError(f"vocabulary.assign: unknown method {method!r} (exact or hnsw)")
        faiss.omp_set_num_threads(threads)
        self.index.add(self.centroids)
        if method == "hnsw":
            self.index.hnsw.efSearch = ef_search

    def assign(self, X: np.ndarray, k: int = 1, batch: int = 65536) -> np.ndarray:
        """(n, k) int64 word ids, nearest first."""
        import faiss

        faiss.omp_set_num_threads(self.threads)
        X = np.ascontiguousarray(X, dtype=np.float32)
        out = np.empty((len(X), k), dtype=np.int64)
        for a in range(0, len(X), batch):
            _, out[a:a + batch] = self.index.search(X[a:a + batch], k)
        return out


# --- bag of words --------------------------------------------------------------------------------

def counts_matrix(words_per_item: list[np.ndarray], n_words: int) -> sp.csr_matrix:
    """CSR (n_items, n_words) int32 of word counts from each item's word ids."""
    lens = np.array([len(w) for w in words_per_item], dtype=np.int64)
    rows = np.repeat(np.arange(len(words_per_item)), lens)
    cols = np.concatenate(words_per_item) if len(words_per_item) and lens.sum() else np.zeros(0, np.int64)
    m = sp.csr_matrix((np.ones(len(cols), np.int32), (rows, cols)), shape=(len(words_per_item), n_words))
    m.sum_duplicates()
    m.sort_indices()
    return m


def idf_of(counts: sp.csr_matrix) -> np.ndarray:
    """log(N / N_w) per word (0 where no item has the word)."""
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    with np.errstate(divide="ignore"):
        return np.where(df > 0, np.log(n / np.maximum(df, 1)), 0.0).astype(np.float32)


def describe_images(source, sift_cfg: SiftConfig, threads: int = 1, indices=None, desc: str = "sift"):
    """RootSIFT descriptors of items (all, or `indices`) of an image source, computed on
    `threads` threads (OpenCV releases the GIL). Yields (index, descriptors) in order;
    the Fetcher passed back records skips/conversions."""
    fetcher = Fetcher(source, colour=False)
    indices = range(len(fetcher)) if indices is None else indices
    sifts = [Sift(sift_cfg) for _ in range(max(1, threads))]

    def one(job):
        slot, i = job
        img = fetcher.get(i)
        return i, (None if img is None else sifts[slot].describe(img)[0])

    def gen():
        jobs = list(indices)
        with ThreadPoolExecutor(max(1, threads)) as pool:
            # chunks of `threads` jobs, one per SIFT object: no object is used by two threads at once
            for a in range(0, len(jobs), max(1, threads)):
                chunk = [(s, i) for s, i in enumerate(jobs[a:a + max(1, threads)])]
                yield from pool.map(one, chunk)
    return fetcher, gen()


def encode(source, centroids: np.ndarray, sift_cfg: SiftConfig, assign_method: str = "exact", assign_k: int = 1,
           threads: int = 1, ids=None) -> tuple[sp.csr_matrix, dict]:
    """Word-count CSR (n_items, n_words) of every item, and the sidecar report
    (skipped/converted items, zero_keypoints, descriptors per image)."""
    assigner = Assigner(centroids, assign_method, threads)
    fetcher, described = describe_images(source, sift_cfg, threads)
    words, n_desc, zero = [], np.zeros(len(fetcher), np.int64), []
    for i, d in progress(described, desc="sift bow", total=len(fetcher), unit="img"):
        if d is None or len(d) == 0:
            words.append(np.zeros(0, np.int64))
            if d is not None:
                zero.append(i)
            continue
        n_desc[i] = len(d)
        words.append(assigner.assign(d, assign_k).ravel())
    fetcher.check_any_left()
    report = fetcher.report(ids)
    report["zero_keypoints"] = [{"index": int(i), **({"id": str(ids[i])} if ids is not None else {})} for i in zero]
    report["n_zero_keypoints"] = len(zero)
    described_ok = n_desc[n_desc > 0]
    report["descriptors_per_image"] = {"mean": float(described_ok.mean()) if len(described_ok) else 0.0,
                                       "min": int(described_ok.min()) if len(described_ok) else 0,
                                       "max": int(described_ok.max()) if len(described_ok) else 0}
    if zero:
        log.warning("sift: %d image(s) without keypoints (zero bag of words)", len(zero))
    return counts_matrix(words, len(centroids)), report


def sample_descriptors(source, sift_cfg: SiftConfig, indices, max_descriptors: int, seed: int, threads: int = 1):
    """RootSIFT descriptors of the images `indices`, subsampled (seeded) to at most
    `max_descriptors` (each image contributes in proportion to its count)."""
    fetcher, described = describe_images(source, sift_cfg, threads, indices, desc="vocabulary sift")
    parts = [d for _, d in progress(described, desc="vocabulary sift", total=len(indices), unit="img")
             if d is not None and len(d)]
    if not parts:
        raise PseudosupError("vocabulary: no SIFT descriptor in the training sample (all images skipped or "
                             "without keypoints); use the dense grid for tiny images")
    X = np.concatenate(parts)
    if len(X) > max_descriptors:
        X = X[np.sort(np.random.default_rng(seed).choice(len(X), max_descriptors, replace=False))]
    return X, fetcher.report()


# --- dense projection (what goes to hashing) ---------------------------------------------------

def fit_projection(G: sp.csr_matrix, dim: int, whiten: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """PCA of L2-normalised TF-IDF rows (centred implicitly: the matrix stays sparse):
    {'mean' (V,), 'projection' (V, dim)}, divided by the singular values when whitening
    (Jégou & Chum 2012)."""
    from scipy.sparse.linalg import LinearOperator, svds

    n, v = G.shape
    dim = min(dim, n - 1, v - 1)
    if dim < 1:
        raise PseudosupError(f"dense projection: needs more than {n} sample images")
    mean = np.asarray(G.mean(axis=0)).ravel().astype(np.float64)
    op = LinearOperator((n, v), dtype=np.float64,
                        matvec=lambda x: G @ np.ravel(x) - mean @ np.ravel(x),
                        rmatvec=lambda y: G.T @ np.ravel(y) - mean * np.ravel(y).sum())
    v0 = np.random.default_rng(seed).standard_normal(min(n, v))
    _, s, vt = svds(op, k=dim, v0=v0, solver="arpack")
    order = np.argsort(s)[::-1]
    s, vt = s[order], vt[order]
    vt = vt * np.sign(vt[np.arange(dim), np.abs(vt).argmax(1)])[:, None]  # deterministic signs
    proj = vt.T / (s / np.sqrt(max(n - 1, 1)) + 1e-6) if whiten else vt.T
    return {"mean": mean.astype(np.float32), "projection": proj.astype(np.float32),
            "singular_values": s.astype(np.float32)}


def project(G: sp.csr_matrix, proj: dict[str, np.ndarray], batch: int = 8192) -> np.ndarray:
    """Dense (n, dim) float32, L2-normalised; zero BoW rows stay zero rows."""
    out = np.zeros((G.shape[0], proj["projection"].shape[1]), dtype=np.float32)
    shift = proj["mean"] @ proj["projection"]
    nnz = np.diff(G.indptr)
    for a in range(0, G.shape[0], batch):
        y = np.asarray(G[a:a + batch] @ proj["projection"]) - shift
        norm = np.linalg.norm(y, axis=1, keepdims=True)
        y = np.where(norm > 0, y / np.maximum(norm, 1e-12), 0.0)
        y[nnz[a:a + batch] == 0] = 0
        out[a:a + batch] = y
    return out


# --- Hamming embedding (stretch; library only, not wired into the stages) ---------------------------

class HammingEmbedding:
    """Hamming embedding (Jégou, Douze & Schmid, ECCV 2008): each descriptor also gets
    a `nbits` binary signature, sign of a fixed random orthogonal projection against the
    per-word median of the training descriptors of that word. Two descriptors match
    only when they share the word *and* their signatures differ in <= `ht` bits, which
    makes a coarse vocabulary as selective as a much finer one."""

    def __init__(self, projection: np.ndarray, thresholds: np.ndarray):
        self.projection, self.thresholds = projection, thresholds

    @classmethod
    def fit(cls, X: np.ndarray, words: np.ndarray, n_words: int, nbits: int = 64, seed: int = 0):
        d = X.shape[1]
        if nbits > d:
            raise PseudosupError(f"Hamming embedding: {nbits} bits from {d}-d descriptors")
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
        P = q[:nbits].astype(np.float32)
        Z = np.asarray(X, np.float32) @ P.T
        tau = np.tile(np.median(Z, axis=0), (n_words, 1)).astype(np.float32)  # unseen words: global median
        order = np.argsort(words, kind="stable")
        starts = np.searchsorted(words[order], np.arange(n_words + 1))
        for w in np.flatnonzero(np.diff(starts)):
            tau[w] = np.median(Z[order[starts[w]:starts[w + 1]]], axis=0)
        return cls(P, tau)

    def signatures(self, X: np.ndarray, words: np.ndarray) -> np.ndarray:
        """(n, nbits / 8) uint8 packed signatures."""
        return np.packbits((np.asarray(X, np.float32) @ self.projection.T) > self.thresholds[words], axis=1)


class HEIndex:
    """Inverted index of (image, signature) per word; voting scores with Hamming
    embedding: sum over matching descriptor pairs of idf(w)^2 exp(-h^2 / sigma^2), h <= ht,
    normalised by the square roots of both images' self-scores (a cosine-like score)."""

    def __init__(self, words: list[np.ndarray], sigs: list[np.ndarray], idf: np.ndarray, ht: int = 20,
                 sigma: float = 16.0):
        self.idf, self.ht, self.sigma, self.n_db = idf.astype(np.float64), ht, sigma, len(words)
        img = np.concatenate([np.full(len(w), i) for i, w in enumerate(words)]) if words else np.zeros(0, int)
        word = np.concatenate(words) if words else np.zeros(0, np.int64)
        order = np.argsort(word, kind="stable")
        self.img, self.word = img[order], word[order]
        self.sig = np.concatenate(sigs)[order] if words else np.zeros((0, 8), np.uint8)
        self.starts = np.searchsorted(self.word, np.arange(len(idf) + 1))
        self.self_db = np.array([self._raw(w, s)[i] for i, (w, s) in enumerate(zip(words, sigs))])

    def _raw(self, words: np.ndarray, sigs: np.ndarray) -> np.ndarray:
        """Unnormalised votes of one image (its descriptors' words and signatures)."""
        lo, hi = self.starts[words], self.starts[words + 1]
        n = hi - lo
        q = np.repeat(np.arange(len(words)), n)               # query descriptor of each candidate pair
        cand = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(n.sum())  # its posting entries
        h = np.bitwise_count(sigs[q] ^ self.sig[cand]).sum(axis=1)
        keep = h <= self.ht
        w = self.idf[words[q[keep]]] ** 2 * np.exp(-(h[keep].astype(np.float64) ** 2) / self.sigma ** 2)
        return np.bincount(self.img[cand[keep]], weights=w, minlength=self.n_db)

    def scores(self, words: list[np.ndarray], sigs: list[np.ndarray]) -> np.ndarray:
        """(n_queries, n_db) normalised scores (a query identical to a database image scores 1)."""
        out = np.zeros((len(words), self.n_db))
        for i, (w, s) in enumerate(zip(words, sigs)):
            raw = self._raw(w, s)
            self_q = HEIndex([w], [s], self.idf, self.ht, self.sigma).self_db[0]
            denom = np.sqrt(self_q * self.self_db)
            out[i] = np.where(denom > 0, raw / np.where(denom > 0, denom, 1), 0.0)
        return out
