"""k-nearest-neighbour graphs of a set of vectors with faiss.

- `knn_graph`: exact (brute force, batched), the reference.
- `build_knn`: exact below a size threshold, an approximate faiss index above it
  (IVF-Flat by default, HNSW on request), with its recall against exact search
  *measured* on a seeded sample of rows and returned with the graph.
- `sparse_knn`: exact cosine kNN of sparse rows (a SIFT bag-of-words inverted
  index), by sparse matrix products in row batches on `threads` threads.
- `rerank_knn`: the k best of given candidate lists under an exact score (used when
  a graph is recomputed after small changes of the vectors, e.g. in CIE).

All graphs exclude each row itself (also when duplicates of it tie with it).
Distances are squared L2; for "cosine" (and sparse rows, which must be
L2-normalised) that is 2 - 2 cos, so ranking by distance = ranking by cosine.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import faiss
import numpy as np
import scipy.sparse as sp

from ..io import PseudosupError
from ..log import log, progress

INDEXES = ("auto", "exact", "ivf", "hnsw")


def normalise_dense(X: np.ndarray, dtype=np.float32) -> np.ndarray:
    """The rows of X scaled to unit L2 norm, computed in `dtype` (default float32; None:
    X's own dtype) on a C-contiguous copy of X; a zero row stays zero (norms are floored
    at 1e-12). Cosine kNN here, CIE, refinement and the graph-mining hashers all use it."""
    X = np.ascontiguousarray(X, dtype=dtype)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def _as_float32(X: np.ndarray, metric: str) -> np.ndarray:
    if metric not in ("l2", "cosine"):
        raise PseudosupError(f"mining.metric: '{metric}' is not one of ['l2', 'cosine']")
    return normalise_dense(X) if metric == "cosine" else np.ascontiguousarray(X, dtype=np.float32)


def _check_k(n: int, k: int) -> int:
    if k < 1:
        raise PseudosupError(f"mining.k: {k} must be at least 1")
    if n < 2:
        raise PseudosupError(f"a kNN graph needs at least 2 items, got {n}")
    return min(k, n - 1)


def knn_graph(X: np.ndarray, k: int, metric: str = "l2", batch: int = 4096, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest neighbours of every row of X among the other rows (exact).

    Returns (distances, indices), both (n, k); self-matches are removed (also when
    duplicates of a point make it not come first). metric "cosine" L2-normalises
    first (so L2 ranking = cosine ranking).
    """
    faiss.omp_set_num_threads(threads)
    X = _as_float32(X, metric)
    k_eff = _check_k(len(X), k)
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    return _search_all(index, X, k_eff, batch, f"exact {k}-NN")


def _search_all(index, X: np.ndarray, k: int, batch: int, desc: str) -> tuple[np.ndarray, np.ndarray]:
    n = len(X)
    D = np.empty((n, k), dtype=np.float32)
    I = np.empty((n, k), dtype=np.int64)
    for i in progress(range(0, n, batch), desc=desc, total=-(-n // batch)):
        d, idx = index.search(X[i:i + batch], k + 1)
        D[i:i + batch], I[i:i + batch] = _drop_self(d, idx, np.arange(i, min(i + batch, n)), k)
    return D, I


def _drop_self(d: np.ndarray, idx: np.ndarray, rows: np.ndarray, k: int):
    keep = idx != rows[:, None]
    # rows that never saw themselves (ties with duplicates) drop their last column
    keep[keep.sum(1) > k, -1] = False
    return d[keep].reshape(len(rows), k), idx[keep].reshape(len(rows), k)


# --- exact below a threshold, approximate above, recall measured --------------------------

@dataclass
class KnnSettings:
    """How to build a kNN graph (params `mining.*`)."""

    index: str = "auto"            # auto | exact | ivf | hnsw
    exact_max: int = 200_000       # auto: exact up to this many rows
    nlist: int | None = None       # IVF cells (None: 4 sqrt(n), clipped to [16, 65536])
    nprobe: int | None = None      # IVF cells visited (None: smallest reaching target_recall on a tuning sample)
    target_recall: float = 0.95
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int | None = None   # HNSW (None: tuned like nprobe)
    recall_sample: int = 1000      # rows whose exact neighbours are computed to measure recall
    train_size: int | None = None  # IVF k-means sample (None: 50 x nlist)
    pca_dim: int | None = None     # search a PCA projection for shortlist x k candidates, re-rank exactly
    shortlist: int = 4
    batch_size: int = 4096
    seed: int = 0

    def __post_init__(self):
        if self.index not in INDEXES:
            raise PseudosupError(f"mining.index: '{self.index}' is not one of {list(INDEXES)}")
        if not 0 < self.target_recall <= 1:
            raise PseudosupError(f"mining.target_recall: {self.target_recall} must be in (0, 1]")

    @classmethod
    def from_params(cls, cfg: dict, seed: int = 0) -> "KnnSettings":
        known = {f for f in cls.__dataclass_fields__ if f != "seed"}
        return cls(**{k: v for k, v in cfg.items() if k in known}, seed=seed)


@dataclass
class KnnGraph:
    distances: np.ndarray
    indices: np.ndarray
    info: dict = field(default_factory=dict)


def build_knn(X: np.ndarray, k: int, metric: str = "l2", settings: KnnSettings | None = None,
              threads: int = 1) -> KnnGraph:
    """kNN graph of the rows of X: exact up to `settings.exact_max` rows (index "auto"),
    else an approximate index whose recall@k against exact search is measured on a
    seeded sample of rows (reported in `info`, and logged)."""
    s = settings or KnnSettings()
    faiss.omp_set_num_threads(threads)
    X = _as_float32(X, metric)
    n, d = X.shape
    k_eff = _check_k(n, k)
    kind = s.index if s.index != "auto" else ("exact" if n <= s.exact_max else "ivf")
    info = {"index": kind, "n": int(n), "dim": int(d), "k": int(k_eff), "metric": metric}
    t0 = time.time()
    if s.pca_dim and s.pca_dim < d:
        D, I = _pca_shortlist(X, k_eff, kind, s, threads, info)
        info.update(_measured_recall(X, I, D, k_eff, s, seed_offset=1))
        log.info("PCA-%d shortlist + exact re-rank: recall@%d %.4f on %d sampled rows", s.pca_dim, k_eff,
                 info["recall_at_k"], info["recall_sample"])
    elif kind == "exact":
        D, I = knn_graph(X, k_eff, "l2", s.batch_size, threads)
        info.update(recall_at_k=1.0, recall_note="exact search")
    else:
        index, tuning = _approximate_index(X, k_eff, kind, s, info)
        D, I = _search_all(index, X, k_eff, s.batch_size, f"{kind} {k_eff}-NN")
        info["tuning"] = tuning
        info.update(_measured_recall(X, I, D, k_eff, s, seed_offset=1))
        log.info("%s kNN graph: recall@%d %.4f on %d sampled rows (%s)", kind, k_eff, info["recall_at_k"],
                 info["recall_sample"], ", ".join(f"{k}={v}" for k, v in info.items() if k in ("nlist", "nprobe", "ef_search")))
    info["seconds"] = round(time.time() - t0, 2)
    info["settings"] = asdict(s)
    return KnnGraph(D, I, info)


def _pca_shortlist(X: np.ndarray, k: int, kind: str, s: KnnSettings, threads: int, info: dict):
    """kNN of high-dimensional rows: `shortlist` x k candidates from a PCA projection
    (fitted on a seeded sample), then the exact k best of them in the full space."""
    n, d = X.shape
    rows = _sample_rows(n, min(n, s.train_size or 50_000), s.seed)
    sample = X[rows].astype(np.float64)
    mean = sample.mean(0)
    cov = (sample - mean).T @ (sample - mean)  # d x d: cheaper than an SVD of the sample
    _, vecs = np.linalg.eigh(cov)
    P = np.ascontiguousarray(vecs[:, ::-1][:, :s.pca_dim], dtype=np.float32)
    mean = mean.astype(np.float32)
    Y = np.empty((n, s.pca_dim), np.float32)
    for i in range(0, n, 65536):
        Y[i:i + 65536] = (X[i:i + 65536] - mean) @ P
    short = min(n - 1, s.shortlist * k)
    sub = KnnSettings(**{**asdict(s), "pca_dim": None})
    if kind == "exact":
        _, cand = knn_graph(Y, short, "l2", s.batch_size, threads)
        info["shortlist_index"] = "exact"
    else:
        index, tuning = _approximate_index(Y, short, kind, sub, info)
        _, cand = _search_all(index, Y, short, s.batch_size, f"{kind} shortlist")
        info["tuning"] = tuning
    info.update(pca_dim=int(s.pca_dim), shortlist=int(short))
    batch = max(64, (1 << 24) // (short * d))  # about 64 MB of gathered vectors per block
    D, I = rerank_knn(cand, k, None, batch, score_block=dense_block_score(X, "l2"))
    # rerank_knn returns 2 - 2 * score; with score = 1 - |a - b|^2 / 2 that is |a - b|^2
    return D, I


def _approximate_index(X: np.ndarray, k: int, kind: str, s: KnnSettings, info: dict):
    """Build the index and choose its search breadth (the smallest reaching
    target_recall on a tuning sample, itself disjoint from the reporting sample)."""
    n, d = X.shape
    t0 = time.time()
    if kind == "ivf":
        # faiss wants >= 39 training points per cell
        nlist = min(s.nlist or int(np.clip(4 * np.sqrt(n), 16, 65536)), max(1, n // 39))
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist)
        index.cp.seed = s.seed
        train = min(n, s.train_size or 50 * nlist)
        rows = np.sort(np.random.default_rng(s.seed).choice(n, train, replace=False))
        log.info("training IVF (%d cells) on %d rows", nlist, train)
        index.train(X[rows])
        _add_batched(index, X, s.batch_size)
        info.update(nlist=int(nlist), train_size=int(train))
        knob, values = "nprobe", [v for v in (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024)
                                  if v <= nlist] + [nlist]
        fixed = s.nprobe
    else:
        index = faiss.IndexHNSWFlat(d, s.hnsw_m)
        index.hnsw.efConstruction = s.ef_construction
        log.info("building HNSW (M=%d, efConstruction=%d)", s.hnsw_m, s.ef_construction)
        _add_batched(index, X, s.batch_size)
        info.update(hnsw_m=s.hnsw_m, ef_construction=s.ef_construction)
        knob, values = "ef_search", [v for v in (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512) if v >= k + 1]
        fixed = s.ef_search
    info["build_seconds"] = round(time.time() - t0, 2)
    tuning = []
    if fixed is not None:
        values = [fixed]
    else:
        sample = _sample_rows(n, s.recall_sample, s.seed)
        exact_d, exact_i = _exact_for_rows(X, sample, k)
        for v in values:
            _set_knob(index, knob, v)
            d_, i_ = index.search(X[sample], k + 1)
            d_, i_ = _drop_self(d_, i_, sample, k)
            r = _recall(i_, d_, exact_i, exact_d)
            tuning.append({knob: int(v), "recall_at_k": round(r, 5)})
            if r >= s.target_recall:
                break
        else:
            log.warning("no %s reached recall %.3f on the tuning sample; using %s=%d",
                        knob, s.target_recall, knob, values[-1])
    _set_knob(index, knob, values[len(tuning) - 1] if tuning else values[0])
    info[knob] = int(values[len(tuning) - 1] if tuning else values[0])
    return index, tuning


def _add_batched(index, X: np.ndarray, batch: int) -> None:
    step = max(batch, 65536)
    for i in progress(range(0, len(X), step), desc="adding to index", total=-(-len(X) // step)):
        index.add(X[i:i + step])


def _set_knob(index, knob: str, value: int) -> None:
    if knob == "nprobe":
        index.nprobe = int(value)
    else:
        index.hnsw.efSearch = int(value)


def _sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, min(size, n), replace=False))


def _exact_for_rows(X: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    flat = faiss.IndexFlatL2(X.shape[1])
    flat.add(X)
    d, i = flat.search(X[rows], k + 1)
    return _drop_self(d, i, rows, k)


def _recall(approx_i, approx_d, exact_i, exact_d) -> float:
    """Fraction of returned neighbours at least as close as the exact k-th neighbour
    (= id recall@k without ties; with duplicates it does not punish an equally close
    substitute)."""
    kth = exact_d[:, -1:] * (1 + 1e-5) + 1e-6
    valid = approx_i >= 0
    return float(((approx_d <= kth) & valid).sum() / exact_i.size)


def _measured_recall(X: np.ndarray, I: np.ndarray, D: np.ndarray, k: int, s: KnnSettings, seed_offset: int) -> dict:
    sample = _sample_rows(len(X), s.recall_sample, s.seed + seed_offset)
    exact_d, exact_i = _exact_for_rows(X, sample, k)
    id_recall = float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(I[sample], exact_i)]))
    return {"recall_at_k": round(_recall(I[sample], D[sample], exact_i, exact_d), 5),
            "id_recall_at_k": round(id_recall, 5), "recall_sample": int(len(sample))}


# --- sparse rows (bag of words) ---------------------------------------------------------------

def check_sparse_rows(G) -> sp.csr_matrix:
    """CSR float32 with L2-normalised rows (zero rows allowed: an image without words)."""
    if not sp.issparse(G):
        raise PseudosupError("expected a sparse (CSR) bag-of-words matrix")
    G = sp.csr_matrix(G, dtype=np.float32)
    G.sum_duplicates()
    norms = np.sqrt(np.asarray(G.multiply(G).sum(axis=1)).ravel())
    bad = (norms > 0) & (np.abs(norms - 1) > 1e-3)
    if bad.any():
        raise PseudosupError(f"{int(bad.sum())} bag-of-words rows are not L2-normalised "
                             f"(e.g. row {int(np.flatnonzero(bad)[0])} has norm {norms[bad][0]:.4f}); "
                             "normalise the TF-IDF vectors first")
    return G


def sparse_knn(G, k: int, batch: int = 256, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN among the rows of a sparse L2-normalised matrix.

    Scores of a row batch against all rows are one sparse product (the inverted
    index traversal); batches run on `threads` threads (scipy releases the GIL).
    Returns (2 - 2 cos, indices), ties broken by index; a row without words gets
    arbitrary (lowest-index) neighbours at distance 2.
    """
    G = check_sparse_rows(G)
    n = G.shape[0]
    k_eff = _check_k(n, k)
    GT = G.T.tocsr()
    D = np.empty((n, k_eff), dtype=np.float32)
    I = np.empty((n, k_eff), dtype=np.int64)

    def block(i0: int) -> None:
        i1 = min(i0 + batch, n)
        S = (G[i0:i1] @ GT).toarray()
        S[np.arange(i1 - i0), np.arange(i0, i1)] = -np.inf
        D[i0:i1], I[i0:i1] = _top_k(S, k_eff)

    starts = list(range(0, n, batch))
    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(progress(pool.map(block, starts), desc=f"sparse {k_eff}-NN", total=len(starts)))
    return D, I


def _top_k(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Highest k scores per row (ties by column index) as (2 - 2 s, index)."""
    part = np.argpartition(-S, k - 1, axis=1)[:, :k]
    # partition is neither stable nor tie-aware: take every column scoring at least
    # the k-th score, then order by (score desc, index asc)
    kth = np.take_along_axis(S, part, 1).min(axis=1, keepdims=True)
    cand_rows, cand_cols = np.nonzero(S >= kth)
    order = np.lexsort((cand_cols, -S[cand_rows, cand_cols], cand_rows))
    cand_rows, cand_cols = cand_rows[order], cand_cols[order]
    starts = np.searchsorted(cand_rows, np.arange(len(S)))
    take = starts[:, None] + np.arange(k)[None, :]
    I = cand_cols[take]
    return (2 - 2 * np.take_along_axis(S, I, 1)).astype(np.float32), I.astype(np.int64)


# --- re-ranking candidate lists -------------------------------------------------------------

def rerank_knn(candidates: np.ndarray, k: int, score_rows, batch: int = 8192,
               score_block=None) -> tuple[np.ndarray, np.ndarray]:
    """The k best of each row's candidate list.

    `candidates` (n, c) item indices (-1 = none; duplicates and the row itself are
    ignored); `score_rows(rows, cols)` returns the similarity of each (row, col)
    pair (1-d arrays in, 1-d out) - or `score_block(rows (B,), cand (B, c))` the
    (B, c) similarities of a block at once (faster for dense vectors). Returns
    (2 - 2 s, indices) like the other graphs; rows with fewer than k valid
    candidates are padded with -1 at distance inf.
    """
    n, c = candidates.shape
    D = np.full((n, k), np.inf, dtype=np.float32)
    I = np.full((n, k), -1, dtype=np.int64)
    for i0 in progress(range(0, n, batch), desc=f"re-rank {k}-NN", total=-(-n // batch)):
        cand = np.sort(candidates[i0:i0 + batch], axis=1)
        rows = np.arange(i0, i0 + len(cand))[:, None].repeat(c, 1)
        valid = (cand >= 0) & (cand != rows)
        valid[:, 1:] &= cand[:, 1:] != cand[:, :-1]  # sorted: duplicates are adjacent
        if score_block is not None:
            scores = np.where(valid, score_block(rows[:, 0], np.where(valid, cand, 0)), -np.inf)
        else:
            scores = np.full(cand.shape, -np.inf)
            scores[valid] = score_rows(rows[valid], cand[valid])
        order = _order_rows(scores)[:, :k]
        s = np.take_along_axis(scores, order, 1)
        got = np.take_along_axis(cand, order, 1)
        ok = np.isfinite(s)
        kk = min(k, c)
        D[i0:i0 + len(cand), :kk] = np.where(ok, 2 - 2 * s, np.inf)[:, :kk]
        I[i0:i0 + len(cand), :kk] = np.where(ok, got, -1)[:, :kk]
    return D, I


def dense_block_score(X: np.ndarray, kind: str = "dot"):
    """score_block for rerank_knn on dense rows: the dot product ("dot", = cosine for
    normalised rows), or 1 - |a - b|^2 / 2 ("l2": rerank_knn then returns |a - b|^2)."""
    sq = (X.astype(np.float32) ** 2).sum(1) if kind == "l2" else None

    def score(rows, cand):
        dots = np.matmul(X[cand], X[rows][:, :, None])[:, :, 0]
        if kind == "dot":
            return dots
        return 1 - (sq[rows][:, None] - 2 * dots + sq[cand]) / 2
    return score


def _order_rows(scores: np.ndarray) -> np.ndarray:
    """Per row: by score descending; candidates are sorted by index, so the stable
    sort breaks ties by index."""
    return np.argsort(-scores, axis=1, kind="stable")
