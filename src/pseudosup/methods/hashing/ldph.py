"""LDPH: linear distance preserving (pseudo-supervised) hashing, as the authors
implemented it (Wang, Zhou, Tian & Li; ACM MM 2016, TIP 2017; their public MATLAB code),
and `ldph_nn`, our named variant beyond it.

Faithful pipeline (every setting a param, the authors' value as default):
1. Centre the training features, PCA to `bits` directions.
2. The reference hasher (any registered one; ITQ by default) is fitted on those
   projections and gives the pseudo codes U (0/1) of the training items.
3. z-score the projections (std with N-1, as MATLAB's zscore): the network input x.
4. Sample `pairs_per_sample` x n uniformly random pairs (i, j) (with replacement);
   d_E = plain Euclidean distance of their z-scored inputs.
5. A network [bits, bits, bits] (scaled-tanh hidden layer 1.7159 tanh(2x/3) with
   dropout, sigmoid output), weights uniform in +-4 sqrt(6/(fan_in+fan_out)), is
   pre-trained `pretrain_epochs` epochs to regress its outputs onto U (squared error,
   L2 weight decay `beta`, SGD lr `lr`, momentum `momentum`, batches of `batch_size`
   shuffled items).
6. `outer_iterations` times: fit (b1, b2) by least squares in d_H ~ b1 + b2 d_E (d_H
   from the current codes); then `pair_epochs` epochs over the pairs in their sampled
   order, `batch_size` pairs per batch, both members through the same network ("dual
   networks"). Output error per member: alpha (h - U) + lambda (d_H - b2 d_E - b1)
   (1 - 2 h_partner) / bits, with d_H and h_partner from the rounded outputs; the
   weight gradient gets beta (W + (W W^T - I) W) (biases excluded). After each
   iteration U := the network's own rounded codes of the training items (the authors'
   code passes them as the next targets), and d_H is recomputed from them.
7. Codes = round(sigmoid output) at test time (dropout scaled by 1 - p).

The authors' training function fixes its own random state: the network initialisation
and dropout use `net_seed` (0), so across seeds only the reference hasher and the pairs
change. MATLAB's random streams cannot be reproduced bit for bit; everything else is.

`ldph_nn` (beyond; see docs/hashing.md for what it changes and why):
- partners: for each training item, its `neighbours` nearest training items in the
  z-scored input space (mined with faiss) plus `random_partners` random ones, instead
  of 10 uniformly random partners only -- pseudo-supervision about the near pairs that
  top-K retrieval is judged on;
- the distance term weighted toward near pairs (weight `near_weight` on mined pairs);
- the pseudo codes stay those of the reference (no self-targets), and a bit-balance
  penalty `balance` pulls each bit's batch mean toward 1/2;
- the network starts as the reference itself where possible (skip layer: output
  pre-activation = x A + MLP(x), A initialised to reproduce the reference's linear
  projection when it has one), so training starts from, and is anchored to, the
  reference codes.
"""

from __future__ import annotations

import numpy as np

from ... import codes as C
from ...io import PseudosupError
from ...log import log, progress
from ..registry import get, register
from .base import CHUNK, check_training_data, pca, project

FAITHFUL = {
    "reference": "itq", "reference_params": {}, "pairs_per_sample": 10, "lr": 2.0, "momentum": 0.5,
    "dropout": 0.05, "batch_size": 500, "pretrain_epochs": 50, "outer_iterations": 5, "pair_epochs": 10,
    "alpha": 0.1, "distance_weight": 0.5, "beta": 1e-4, "net_seed": 0, "self_targets": True,
}

TANH_A, TANH_B = 1.7159, 2.0 / 3.0


def _tanh_opt(x):
    return TANH_A * np.tanh(TANH_B * x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _with_bias(a):
    return np.hstack([np.ones((len(a), 1)), a])


class Net:
    """The authors' two-layer network (DeepLearnToolbox conventions: W is
    (out, in + 1) with the bias in column 0)."""

    def __init__(self, sizes: list[int], rng: np.random.Generator, dropout: float):
        self.W = [(rng.random((sizes[i + 1], sizes[i] + 1)) - 0.5) * 2 * 4 * np.sqrt(6 / (sizes[i + 1] + sizes[i]))
                  for i in range(len(sizes) - 1)]
        self.vW = [np.zeros_like(w) for w in self.W]
        self.dropout = dropout

    def forward(self, x, rng=None):
        """Activations (inputs with bias columns) and dropout masks; rng=None = testing."""
        acts, masks = [_with_bias(x)], []
        for W in self.W[:-1]:
            h = _tanh_opt(acts[-1] @ W.T)
            if self.dropout > 0:
                if rng is None:
                    h = h * (1 - self.dropout)
                    masks.append(None)
                else:
                    m = rng.random(h.shape) > self.dropout
                    h = h * m
                    masks.append(m)
            else:
                masks.append(None)
            acts.append(_with_bias(h))
        out = _sigmoid(acts[-1] @ self.W[-1].T)
        return acts, masks, out

    def backward(self, acts, masks, out, err):
        """Weight gradients for output error `err` = y - out (DeepLearnToolbox sign)."""
        d = -err * out * (1 - out)
        grads = [None] * len(self.W)
        for i in range(len(self.W) - 1, -1, -1):
            grads[i] = d.T @ acts[i] / len(d)
            if i == 0:
                break
            a = acts[i]
            back = (d @ self.W[i]) * (TANH_A * TANH_B * (1 - (a / TANH_A) ** 2))
            if masks[i - 1] is not None:
                back = back * np.hstack([np.ones((len(back), 1)), masks[i - 1]])
            d = back[:, 1:]
        return grads

    def apply(self, grads, lr, momentum, l2, orthogonal):
        for i, (W, g) in enumerate(zip(self.W, grads)):
            g = g.copy()
            if l2 > 0:
                Wn = W[:, 1:]
                extra = Wn + ((Wn @ Wn.T - np.eye(len(Wn))) @ Wn if orthogonal else 0.0)
                g[:, 1:] += l2 * extra
            g *= lr
            if momentum > 0:
                self.vW[i] = momentum * self.vW[i] + g
                g = self.vW[i]
            W -= g

    def codes(self, x, batch=65536):
        out = np.empty((len(x), self.W[-1].shape[0]), dtype=bool)
        for i in range(0, len(x), batch):
            out[i:i + batch] = self.forward(x[i:i + batch])[2] > 0.5
        return out


def ols(d_ham: np.ndarray, d_euc: np.ndarray) -> tuple[float, float]:
    """(b1, b2) of d_H ~ b1 + b2 d_E by least squares (MATLAB regress)."""
    A = np.stack([np.ones_like(d_euc), d_euc], axis=1)
    b, *_ = np.linalg.lstsq(A, d_ham, rcond=None)
    return float(b[0]), float(b[1])


def pair_distances(X: np.ndarray, pairs: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Euclidean distance of each pair of rows, in float64, a block of pairs at a time
    (gathering both rows of 5,000,000 pairs at once would hold them all twice)."""
    out = np.empty(len(pairs))
    for i in range(0, len(pairs), chunk):
        a, b = pairs[i:i + chunk, 0], pairs[i:i + chunk, 1]
        diff = np.asarray(X[a], dtype=np.float64) - np.asarray(X[b], dtype=np.float64)
        out[i:i + chunk] = np.sqrt((diff ** 2).sum(axis=1))
    return out


def pair_hamming(U: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return (U[pairs[:, 0]] != U[pairs[:, 1]]).sum(axis=1).astype(np.float64)


class _Prepared:
    """PCA + z-scoring of the inputs: the part of the model before the network."""

    def __init__(self, mean, P, mu, sigma):
        self.mean, self.P, self.mu, self.sigma = mean, P, mu, sigma

    def pca(self, X):
        return (np.asarray(X, dtype=np.float64) - self.mean) @ self.P

    def inputs(self, X):
        return (self.pca(X) - self.mu) / self.sigma


@register("ldph")
class LDPH:
    name = "ldph"
    defaults = FAITHFUL

    def __init__(self, bits: int, params: dict | None = None, seed: int = 0):
        self.bits = int(bits)
        self.params = {**self.defaults, **{k: v for k, v in dict(params or {}).items() if v is not None}}
        self.seed = int(seed)
        self.prep: _Prepared | None = None
        self.net: Net | None = None
        self.history: list[dict] = []

    def p(self, key):
        return self.params[key]

    # --- fitting ---------------------------------------------------------------------
    def fit(self, X: np.ndarray) -> "LDPH":
        check_training_data(X, self.bits, needs_pca=True)
        get(self.p("reference"))  # an unknown reference is an error before any work
        mean, P = pca(X, self._input_dims(X))
        V = project(X, mean, P)
        mu, sigma = V.mean(axis=0), V.std(axis=0, ddof=1)
        if np.any(sigma <= 1e-12 * max(1.0, float(np.abs(V).max()))):
            raise PseudosupError(f"{self.name}: {int((sigma <= 1e-12).sum())} of the {V.shape[1]} PCA directions are "
                                 "constant on the training set; use fewer bits or features that vary")
        self.prep = _Prepared(mean, P, mu, sigma)
        U_ref = self._reference_codes(V[:, :self.bits])
        x = (V - mu) / sigma
        self._raw = X  # only variants that mine pairs in the original space read it
        try:
            self._train(x, U_ref)
        finally:
            del self._raw
        return self

    def _input_dims(self, X: np.ndarray) -> int:
        """PCA directions fed to the network: `bits`, as the authors."""
        return self.bits

    def _reference_codes(self, V: np.ndarray) -> np.ndarray:
        ref = get(self.p("reference"))(self.bits, dict(self.p("reference_params") or {}), self.seed).fit(V)
        self.reference_model = ref
        return C.unpack(ref.encode(V), self.bits).astype(np.float64)

    def _sample_pairs(self, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        n = len(x)
        pairs = rng.integers(0, n, size=(n * int(self.p("pairs_per_sample")), 2))
        return pairs, np.ones(len(pairs))

    def _pair_distances(self, x: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Plain Euclidean distances of the z-scored inputs (as the authors' mex code)."""
        return pair_distances(x, pairs)

    def _new_net(self, x: np.ndarray, net_rng: np.random.Generator) -> Net:
        return Net([x.shape[1], x.shape[1], self.bits], net_rng, float(self.p("dropout")))

    def _train(self, x: np.ndarray, U_ref: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        net_rng = np.random.default_rng(int(self.p("net_seed")))
        pairs, weights = self._sample_pairs(x, rng)
        d_euc = self._pair_distances(x, pairs)
        self.net = self._new_net(x, net_rng)
        self._pretrain(x, U_ref, net_rng)
        U = U_ref.copy()
        d_ham = pair_hamming(U > 0.5, pairs)
        for it in range(int(self.p("outer_iterations"))):
            b1, b2 = ols(d_ham, d_euc)
            self._pair_epochs(x, U, U_ref, pairs, weights, d_euc, b1, b2, net_rng, it)
            codes = self.net.codes(x)
            if self.p("self_targets"):
                U = codes.astype(np.float64)
            d_ham = pair_hamming(codes, pairs)
            self.history.append({"iteration": it + 1, "b1": b1, "b2": b2,
                                 "bit_balance_max_dev": float(np.abs(codes.mean(0) - 0.5).max()),
                                 "changed_vs_reference": float((codes != (U_ref > 0.5)).mean())})
            log.debug("ldph iteration %d: b1 %.3f b2 %.3f %s", it + 1, b1, b2, self.history[-1])

    def _pretrain(self, x, U, net_rng):
        bs = int(self.p("batch_size"))
        nb = max(1, len(x) // bs)
        for _ in progress(range(int(self.p("pretrain_epochs"))), desc=f"{self.name} pre-train", unit="epoch"):
            order = net_rng.permutation(len(x))
            for b in range(nb):
                idx = order[b * bs:(b + 1) * bs]
                acts, masks, out = self.net.forward(x[idx], net_rng)
                grads = self.net.backward(acts, masks, out, U[idx] - out)
                self.net.apply(grads, self.p("lr"), self.p("momentum"), self.p("beta"), orthogonal=False)

    # What a variant may change in the pair epochs (ldph_nn does): the codes each item is
    # pulled toward, the line (b1, b2) of the distance term, the orthogonality penalty,
    # and what happens after each epoch. The faithful defaults follow the authors.
    orthogonal_updates = True

    def _pair_targets(self, U: np.ndarray, U_ref: np.ndarray) -> np.ndarray:
        """The current codes (the authors' self-targets)."""
        return U

    def _pair_line(self, x, pairs, weights, d_euc, b1: float, b2: float) -> tuple[float, float]:
        """(b1, b2) of d_H ~ b1 + b2 d_E for these epochs: the caller's fit."""
        return b1, b2

    def _after_pair_epoch(self, x: np.ndarray) -> None:
        pass

    def _pair_epochs(self, x, U, U_ref, pairs, weights, d_euc, b1, b2, net_rng, it):
        bs = int(self.p("batch_size"))
        nb = max(1, int(round(len(pairs) / bs)))
        alpha, lam = float(self.p("alpha")), float(self.p("distance_weight"))
        target = self._pair_targets(U, U_ref)
        b1, b2 = self._pair_line(x, pairs, weights, d_euc, b1, b2)
        for _ in progress(range(int(self.p("pair_epochs"))), desc=f"{self.name} pairs {it + 1}", unit="epoch"):
            for b in range(nb):
                sl = slice(b * bs, (b + 1) * bs)
                pb = pairs[sl]
                rows = np.concatenate([pb[:, 0], pb[:, 1]])
                acts, masks, out = self.net.forward(x[rows], net_rng)
                err = self._pair_error(out, target[rows], U_ref[rows], d_euc[sl], weights[sl], b1, b2, alpha, lam)
                grads = self.net.backward(acts, masks, out, err)
                self.net.apply(grads, self.p("lr"), self.p("momentum"), self.p("beta"),
                               orthogonal=self.orthogonal_updates)
            self._after_pair_epoch(x)

    def _pair_error(self, out, target, _ref, d_euc, w, b1, b2, alpha, lam):
        m = len(d_euc)
        H = np.round(out)
        d_ham = (H[:m] != H[m:]).sum(axis=1)
        diff = np.tile(w * (d_ham - b2 * d_euc - b1), 2)[:, None]
        partner = np.vstack([H[m:], H[:m]])
        return (target - out) * alpha - diff * lam / self.bits * (1 - 2 * partner)

    # --- codes and model files ------------------------------------------------------------
    def encode(self, X: np.ndarray, batch: int = 65536) -> np.ndarray:
        if self.net is None:
            raise PseudosupError(f"{self.name}: model is not fitted")
        if X.shape[1] != self.prep.P.shape[0]:
            raise PseudosupError(f"{self.name}: features have {X.shape[1]} dimensions, the model expects {self.prep.P.shape[0]}")
        out = np.empty((len(X), -(-self.bits // 8)), dtype=np.uint8)
        for i in range(0, len(X), batch):
            out[i:i + batch] = C.pack(self.net.codes(self.prep.inputs(np.asarray(X[i:i + batch]))))
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        p = self.prep
        out = {"mean": p.mean, "P": p.P, "mu": p.mu, "sigma": p.sigma}
        out.update({f"W{i}": w for i, w in enumerate(self.net.W)})
        return out

    @classmethod
    def from_arrays(cls, bits: int, params: dict, seed: int, arrays: dict) -> "LDPH":
        model = cls(bits, params, seed)
        model.prep = _Prepared(arrays["mean"], arrays["P"], arrays["mu"], arrays["sigma"])
        n_layers = len([k for k in arrays if k.startswith("W") and k[1:].isdigit()])
        net = model._empty_net()
        net.W = [np.asarray(arrays[f"W{i}"]) for i in range(n_layers)]
        net.vW = [np.zeros_like(w) for w in net.W]
        net.dropout = float(model.p("dropout"))
        model.net = net
        return model

    def _empty_net(self):
        return Net.__new__(Net)
