"""The sparse side of the bag of words, without SIFT or faiss: TF-IDF weighting, the
inverted index (cosine search) and the .bow.npz file. Kept apart from `bow` (which
extracts and encodes descriptors) so that stages which only *read* bags of words
(evaluate, mining, CIE) do not depend on the descriptor code.

On disk (`save_bow` / `load_bow`): one .npz written with pseudosup.io.save_npz:
`counts_{data,indices,indptr,shape}` (int32 counts, CSR rows = items in dataset
order), `idf` (float32, one per word) and `meta` (JSON). `load_bow(path)` returns
(CSR float32 TF-IDF L2-normalised rows, counts CSR, idf, meta).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..io import PseudosupError, load_npz, save_npz


def tfidf(counts: sp.csr_matrix, idf: np.ndarray, tf_power: float = 1.0) -> sp.csr_matrix:
    """TF-IDF rows, L2-normalised (zero rows stay zero), float32 CSR; tf = count ** tf_power."""
    if not 0 <= tf_power <= 1:
        raise PseudosupError(f"tf_power: {tf_power} is outside [0, 1] (1 = plain counts, 0.5 = square-root TF)")
    tf = counts.astype(np.float32)
    if tf_power != 1:
        tf.eliminate_zeros()  # an explicitly stored 0 must stay 0 (0 ** 0 would be 1)
        tf.data **= np.float32(tf_power)
    m = tf.multiply(idf[None, :]).tocsr()
    m.eliminate_zeros()
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    m = sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-30), 0.0).astype(np.float32)) @ m
    m = m.tocsr().astype(np.float32)
    m.sort_indices()
    return m


class InvertedIndex:
    """Posting lists of a database of L2-normalised sparse rows; cosine search."""

    def __init__(self, G_db: sp.csr_matrix):
        self.n_db, self.n_words = G_db.shape
        # row w of `postings` = the images containing word w and their weights
        self.postings = sp.csr_matrix(G_db.T, dtype=np.float32)
        self.postings.sort_indices()

    def scores(self, G_q: sp.csr_matrix) -> np.ndarray:
        """Dense (n_queries, n_db) cosine scores: sum over shared words of q_w * d_w."""
        if G_q.shape[1] != self.n_words:
            raise PseudosupError(f"queries have {G_q.shape[1]} words, the index {self.n_words}")
        return np.asarray((sp.csr_matrix(G_q, dtype=np.float32) @ self.postings).todense())

    def search(self, G_q: sp.csr_matrix, k: int, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query, best first; ties by database index."""
        k = min(k, self.n_db)
        S = np.empty((G_q.shape[0], k), np.float32)
        I = np.empty((G_q.shape[0], k), np.int64)
        for a in range(0, G_q.shape[0], batch):
            s = self.scores(G_q[a:a + batch])
            order = np.argsort(-s, axis=1, kind="stable")[:, :k]
            I[a:a + batch], S[a:a + batch] = order, np.take_along_axis(s, order, 1)
        return S, I


def save_bow(path, counts: sp.csr_matrix, idf: np.ndarray, meta: dict) -> None:
    counts = counts.tocsr()
    save_npz(path, meta, counts_data=counts.data.astype(np.int32), counts_indices=counts.indices.astype(np.int32),
             counts_indptr=counts.indptr.astype(np.int64), counts_shape=np.array(counts.shape, np.int64),
             idf=idf.astype(np.float32))


def load_bow(path) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, dict]:
    """(TF-IDF L2-normalised CSR float32, counts CSR int32, idf, meta) of a .bow.npz."""
    meta, a = load_npz(path)
    try:
        counts = sp.csr_matrix((a["counts_data"], a["counts_indices"], a["counts_indptr"]),
                               shape=tuple(a["counts_shape"]))
        idf = a["idf"]
    except KeyError as e:
        raise PseudosupError(f"{path}: not a bag-of-words file (missing {e})") from None
    return tfidf(counts, idf), counts, idf, meta
