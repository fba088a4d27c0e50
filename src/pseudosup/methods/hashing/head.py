"""Shared frame of the unsupervised deep hashers on frozen features (SDC, Bi-half,
GreedyHash and our sdc_rnn): a small torch head on precomputed features, trained by Adam
in shuffled mini-batches whose first half is paired with its second half, as in the
uniform re-implementation of these methods by the SDC authors (kamwoh/sdc, the
settings of its configs/train.yaml: batch 64, 100 epochs, Adam lr 1e-4, weight decay
1e-5, the rate divided by 10 after 80 % of the epochs; backbone frozen).

A subclass builds its head (`_build`), says its loss on one batch (`_loss`, given the
batch, its rows and the whole training-feature tensor) and which output is signed into
codes (`_code_logits`). Labels never enter: `fit(X)` takes the features only. `threads`
(the job's thread count; 1 by default) is what a hasher that mines its training set
(sdc_rnn's kNN search) may use.
"""

from __future__ import annotations

import numpy as np

from ... import codes as C
from ...io import PseudosupError
from ...log import log, progress
from .base import check_training_data
from .torch_state import load_state_arrays, state_arrays

HEAD_DEFAULTS = {"epochs": 100, "batch_size": 64, "lr": 1e-4, "weight_decay": 1e-5, "lr_step": 0.8,
                 "lr_gamma": 0.1, "center": False}


class HeadHasher:
    """Frozen features in, a trained head, codes = sign of the head's code logits."""

    name = "head"
    defaults: dict = {}

    def __init__(self, bits: int, params: dict | None = None, seed: int = 0, *, threads: int = 1):
        self.bits = int(bits)
        given = {k: v for k, v in dict(params or {}).items() if v is not None}
        self.params = {**HEAD_DEFAULTS, **self.defaults, **given}
        self.seed = int(seed)
        self.threads = int(threads)  # for mining the training set (faiss); torch's are the caller's
        self.head = None
        self.mu: np.ndarray | None = None
        self.history: list[dict] = []

    def p(self, key):
        return self.params[key]

    # subclasses -----------------------------------------------------------------
    def _build(self, d: int):
        raise NotImplementedError

    def _loss(self, x, out, rows, features, rng):
        """(loss tensor, {component: float}) for the batch x = features[rows] and the
        head's output on it `out`; `features` is the whole training-input tensor (n, d),
        for a loss that also runs the head on other training items."""
        raise NotImplementedError

    def _code_logits(self, out):
        return out

    def _prepare(self, X: np.ndarray, rng) -> None:
        """Anything a subclass mines from the training features before training."""

    # training -------------------------------------------------------------------
    def _inputs(self, X) -> np.ndarray:
        return (np.asarray(X, dtype=np.float32) - self.mu).astype(np.float32)

    def fit(self, X, labels=None) -> "HeadHasher":
        import torch

        if labels is not None:
            raise PseudosupError(f"{self.name}: an unsupervised hasher; it takes no labels")
        X = self._check(X)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.mu = (X.mean(axis=0) if self.p("center") else np.zeros(X.shape[1])).astype(np.float32)
        F = torch.from_numpy(self._inputs(X))
        self._prepare(F.numpy(), rng)
        self.head = self._build(X.shape[1])
        self._train(F, rng)
        return self

    def _check(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        bs = int(self.p("batch_size"))
        if X.ndim != 2 or len(X) < bs:
            raise PseudosupError(f"{self.name}: needs a 2-D array of at least batch_size={bs} training items, "
                                 f"got shape {X.shape}; lower methods.<name>.batch_size or add items")
        if bs < 4 or bs % 2:
            raise PseudosupError(f"{self.name}: batch_size {bs} must be even and at least 4 (its halves are paired)")
        check_training_data(X, self.bits, needs_pca=False, what=f"{self.name}: training features")
        return X

    def _train(self, F, rng) -> None:
        import torch

        opt = torch.optim.Adam(self.head.parameters(), lr=float(self.p("lr")),
                               weight_decay=float(self.p("weight_decay")))
        epochs, bs = int(self.p("epochs")), int(self.p("batch_size"))
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, int(float(self.p("lr_step")) * epochs)),
                                                gamma=float(self.p("lr_gamma")))
        n = len(F)
        for epoch in progress(range(epochs), desc=f"{self.name} train", unit="epoch"):
            self.head.train(True)
            order = rng.permutation(n)
            sums: dict[str, float] = {}
            batches = 0
            # full batches only: the halves of a batch are paired, a short tail would not be
            for b0 in range(0, n - bs + 1, bs):
                rows = order[b0:b0 + bs]
                x = F[torch.from_numpy(rows)]
                loss, parts = self._loss(x, self.head(x), rows, F, rng)
                opt.zero_grad()
                loss.backward()
                opt.step()
                for k, v in {"loss": float(loss.item()), **parts}.items():
                    sums[k] = sums.get(k, 0.0) + v
                batches += 1
            sched.step()
            self.history.append({"epoch": epoch + 1, **{k: v / batches for k, v in sums.items()}})
        self.head.train(False)
        log.info("%s: final epoch %s", self.name,
                 ", ".join(f"{k} {v:.4f}" for k, v in self.history[-1].items() if k != "epoch"))

    # codes ----------------------------------------------------------------------
    def project(self, X, batch: int = 8192) -> np.ndarray:
        """The code logits (n, bits); codes are logits > 0."""
        import torch

        if self.head is None:
            raise PseudosupError(f"{self.name}: model is not fitted")
        if X.shape[1] != len(self.mu):
            raise PseudosupError(f"{self.name}: features have {X.shape[1]} dimensions, the model expects {len(self.mu)}")
        self.head.train(False)
        out = np.empty((len(X), self.bits), dtype=np.float32)
        with torch.no_grad():
            for i in range(0, len(X), batch):
                x = torch.from_numpy(self._inputs(X[i:i + batch]))
                out[i:i + batch] = self._code_logits(self.head(x)).numpy()
        return out

    def encode(self, X, batch: int = 8192) -> np.ndarray:
        return C.pack(self.project(X, batch) > 0)

    # self-describing model files --------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {**state_arrays(self.head, "head."), "mu": np.asarray(self.mu)}

    @classmethod
    def from_arrays(cls, bits: int, params: dict, seed: int, arrays: dict):
        model = cls(bits, params, seed)
        model.mu = np.asarray(arrays["mu"], dtype=np.float32)
        model.head = load_state_arrays(model._build(len(model.mu)), arrays, "head.")
        model.head.train(False)
        return model


def paired_cosine(x):
    """Cosine similarity of each item of the first half of a batch with its partner in
    the second half (the pairs of SDC, Bi-half and GreedyHash)."""
    import torch.nn.functional as F

    h = len(x) // 2
    return F.cosine_similarity(x[:h], x[h:2 * h])
