"""SDC: unsupervised hashing with similarity distribution calibration (Ng, Zhu, Hoe,
Chan, Zhang, Song & Xiang, BMVC 2023; the authors' code kamwoh/sdc, configs/model/sdc.yaml).

Head on frozen features: Linear(d, d) - GELU - Linear(d, bits) - BatchNorm1d(bits);
codes = sign of its output v. Loss on a batch whose first half is paired with its second
half (HEAD_DEFAULTS: batch 64, 100 epochs, Adam 1e-4):
- calibration: the pairs' feature cosines are sorted; the code cosines, taken in that
  order, are pulled (L1) to the quantiles (2i - 1) / 2m of Beta(a, b), mapped to [-1, 1]
  (a = b = 5): the code similarities are spread over the whole range in the order of
  the feature similarities, instead of collapsing ("similarity collapse");
- quantisation: `quan` x mean(1 - cos(v, sign v)).
Its contrastive variant (sdc_simclr.yaml: SimCLR on two augmented views, targets clipped
at 0) needs images through the backbone; on frozen features there are no views, so it is
not offered here. `sdc_rnn` (ours, below) uses mined reversible neighbours as the
positive "view" instead.

`sdc_rnn` (ours): SDC plus a SimCLR term (temperature 0.3, weight `cont`, targets
clipped at 0 as in the authors' contrastive variant) whose positive for each item of
the batch's first half is one of its *reversible* nearest neighbours in the training
set (i among j's k nearest cosine neighbours and j among i's; CIE's reversible-NN
pseudo-supervision), drawn afresh each step; items without one are their own positive.
Calibration spreads the code similarities, the mined pairs say which should be near.
"""

from __future__ import annotations

import numpy as np

from ..registry import register
from .head import HeadHasher, paired_cosine

SDC_DEFAULTS = {"beta_a": 5.0, "beta_b": 5.0, "rec": 1.0, "quan": 1.0, "ortho_constraint": False}


def calibration_targets(m: int, a: float, b: float, clip_at_zero: bool) -> np.ndarray:
    """The m quantiles (2i - 1) / 2m of Beta(a, b), mapped to [-1, 1], ascending."""
    from scipy import stats

    grid = np.arange(1.0, 2 * m, 2.0) / (2 * m)
    t = stats.beta.ppf(grid, a, b) * 2 - 1
    return np.maximum(t, 0) if clip_at_zero else t


def _head(d: int, bits: int):
    from torch import nn

    return nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, bits), nn.BatchNorm1d(bits))


@register("sdc")
class SDC(HeadHasher):
    name = "sdc"
    defaults = SDC_DEFAULTS

    def _build(self, d):
        return _head(d, self.bits)

    def _sdc_terms(self, x, v):
        import torch
        import torch.nn.functional as F

        feat = paired_cosine(x).detach()
        code = paired_cosine(v)
        order = torch.argsort(feat, stable=True)
        rec = F.l1_loss(code[order], self._targets(len(feat)))
        quan = (1 - F.cosine_similarity(v, v.sign())).mean()
        return rec, quan

    def _targets(self, m: int):
        """calibration_targets for m pairs as a float32 tensor, computed once per m: scipy's
        Beta quantiles cost ~2 ms, paid on each of the 7,800 steps of a 5,000-item run."""
        import torch

        key = (m, float(self.p("beta_a")), float(self.p("beta_b")), bool(self.p("ortho_constraint")))
        cache = self.__dict__.setdefault("_target_cache", {})
        if key not in cache:  # keyed on the settings too: params edited between fits must not reuse it
            cache[key] = torch.from_numpy(calibration_targets(*key).astype(np.float32))
        return cache[key]

    def _order_inputs(self, x, rows):
        """What the calibration orders the batch's pairs by: the inputs themselves
        (sdc_graph orders them by its graph-smoothed teacher instead)."""
        return x

    def _loss(self, x, v, rows, features, rng):
        rec, quan = self._sdc_terms(self._order_inputs(x, rows), v)
        loss = float(self.p("rec")) * rec + float(self.p("quan")) * quan
        return loss, {"calibration": float(rec.item()), "quantisation": float(quan.item())}


RNN_DEFAULTS = {**SDC_DEFAULTS, "ortho_constraint": True, "cont": 1.0, "temperature": 0.3, "neighbours": 10}


def simclr(z1, z2, temperature: float):
    """NT-Xent of paired rows (z1[i], z2[i]); every other row of the 2m is a negative."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    m = len(z1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(m, 2 * m), torch.arange(0, m)])
    return F.cross_entropy(sim, target)


@register("sdc_rnn")
class SDCRNN(SDC):
    name = "sdc_rnn"
    defaults = RNN_DEFAULTS

    def _prepare(self, X, rng) -> None:
        from ...mining.knn import knn_graph
        from ...mining.reciprocal import reversible_adjacency

        # self.threads: the job's thread count (the train stage passes Snakemake's `threads`)
        _, nbr = knn_graph(X, int(self.p("neighbours")), metric="cosine", threads=self.threads)
        A = reversible_adjacency(nbr)
        self.partners = (A.indptr, A.indices)
        self.history.append({"epoch": 0, "reversible_pairs": int(A.nnz // 2),
                             "items_with_a_partner": int((np.diff(A.indptr) > 0).sum()), "items": int(len(X))})

    def _positives(self, rows, rng):
        """One reversible neighbour per row (uniformly among them), or the row itself."""
        indptr, indices = self.partners
        start, count = indptr[rows], np.diff(indptr)[rows]
        pick = start + (rng.random(len(rows)) * np.maximum(count, 1)).astype(np.int64)
        return np.where(count > 0, indices[np.minimum(pick, len(indices) - 1)], rows)

    def _loss(self, x, v, rows, features, rng):
        import torch

        rec, quan = self._sdc_terms(x, v)
        h = len(rows) // 2
        pos = self._positives(rows[:h], rng)
        # the positives' codes, through the same head (BatchNorm in training mode sees
        # them as a batch of their own; their features are the frozen training features)
        vp = self.head(features[torch.from_numpy(pos)])
        cont = simclr(v[:h], vp, float(self.p("temperature")))
        loss = float(self.p("rec")) * rec + float(self.p("quan")) * quan + float(self.p("cont")) * cont
        return loss, {"calibration": float(rec.item()), "quantisation": float(quan.item()),
                      "contrastive": float(cont.item())}
