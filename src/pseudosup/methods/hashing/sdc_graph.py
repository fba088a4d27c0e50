"""`sdc_graph` (ours): SDC whose calibration order comes from the training set's
neighbourhood graph instead of raw feature cosines.

SDC (sdc.py) sorts each batch's pairs by their *feature* cosine and pulls the code
cosines, in that order, onto Beta(5, 5) quantiles. At short codes the order matters
most, and raw cosines of CNN features mis-order pairs of one class lying far apart on
its manifold. Here the order is taken from graph-smoothed features: the training items'
cosine kNN graph (k = `neighbours`, self excluded, edge weight max(cos, 0)^`power`, plus
each item itself with weight 1) is applied `hops` times,

    t_i <- normalise(t_i + sum_{j in kNN(i)} w_ij t_j),   t^0 = x / ||x||,

i.e. DBA (Arandjelovic & Zisserman 2012, alpha-weighted as Radenovic et al. 2018)
iterated: a truncated diffusion of the features over the mined graph (the
pseudo-supervision of CIE and MLS3RDUH, the reversible/diffusion neighbours). The head
still sees the raw features only - at query time nothing but the query's own feature is
needed; the graph is only the teacher of the similarity order. Everything else (head,
loss, schedule) is SDC's.

Measured in benchmarks/results/bench_hashers_cifar_mnv2.md (3 seeds) and
docs/hashing.md; the probes behind the defaults (k 10, 3 hops) are stated there.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..registry import register
from .sdc import SDC, SDC_DEFAULTS

GRAPH_DEFAULTS = {**SDC_DEFAULTS, "neighbours": 10, "hops": 3, "power": 3.0}


def smoothing_graph(X: np.ndarray, k: int, power: float, threads: int = 1) -> sp.csr_matrix:
    """I + W: W_ij = max(cos_ij, 0)^power for j among i's k nearest cosine neighbours
    (self excluded; not symmetrised: each item averages over its own neighbours)."""
    from ...mining.knn import knn_graph

    D, nbr = knn_graph(X, k, metric="cosine", threads=threads)
    n, kk = nbr.shape
    w = np.maximum(1 - D / 2, 0) ** power   # squared L2 of unit vectors = 2 - 2 cos
    rows = np.repeat(np.arange(n), kk)
    W = sp.csr_matrix((w.ravel(), (rows, nbr.ravel())), shape=(n, n), dtype=np.float64)
    return (W + sp.identity(n, format="csr")).tocsr()


def smoothed_features(X: np.ndarray, k: int, hops: int, power: float, threads: int = 1) -> np.ndarray:
    """The teacher features: `hops` rounds of t <- normalise((I + W) t) from the unit rows."""
    from ...mining.knn import normalise_dense

    A = smoothing_graph(X, k, power, threads)
    T = normalise_dense(X)
    for _ in range(hops):
        T = normalise_dense(A @ T, dtype=None).astype(np.float32)   # in the product's float64, then float32
    return T


@register("sdc_graph")
class SDCGraph(SDC):
    name = "sdc_graph"
    defaults = GRAPH_DEFAULTS

    def _prepare(self, X, rng) -> None:
        import torch

        from ...mining.knn import normalise_dense

        T = smoothed_features(X, int(self.p("neighbours")), int(self.p("hops")), float(self.p("power")),
                              self.threads)
        self.teacher = torch.from_numpy(T)
        # how far the teacher moved from the raw features: mean cosine of t_i with x_i
        self.history.append({"epoch": 0, "hops": int(self.p("hops")),
                             "mean_cos_teacher_raw": float((T * normalise_dense(X)).sum(axis=1).mean())})

    def _order_inputs(self, x, rows):
        import torch

        # SDC's loss, its pairs ordered by the teacher's cosines, not the inputs'
        return self.teacher[torch.from_numpy(rows)]
