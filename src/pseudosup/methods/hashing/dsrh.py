"""DSRH: deep semantic ranking based hashing (Zhao, Huang, Wang & Tan, CVPR 2015),
after the authors' cuda-convnet code, on the CPU at small scale.

Network. Two learned fully connected layers fc6 -> fc7 (ReLU, dropout) and a hash layer
fed by *both* depths, [dropout(fc7), fc6] (the "bypassing connection"), with a sigmoid
output h in (0, 1), used as b = 2h - 1; codes = sign(b) (h > 0.5) at test time.
- `dsrh` (features in): the layers sit on precomputed features (e.g. the `scene` set's
  294 colour moments): an MLP.
- `dsrh_cnn` (images in): the same head on the global-average-pooled 1280-d output of a
  MobileNetV2 backbone (`pseudosup.features.mobilenet`; ImageNet weights from the bundled
  TFLite file via `features.tflite.load_mobilenet_v2` when `backbone_weights` is set,
  random initialisation otherwise). The backbone is frozen unless `finetune_blocks` > 0
  (then its last blocks train too).

Loss (per triplet q, x+, x-, similarity level r = number of shared labels):
    w * max(0, d(q, x+) - d(q, x-) + margin),  d(a, c) = (K - b_a . b_c) / 2,
margin `margin` x bits / 64 (5 at 64 bits), plus `balance` x sum over bits of the squared
batch mean of b (bit balance), plus weight decay. Triplets as the authors sample them for
each training item q: x- = a random item sharing no label; if q's best level r_max > 1,
x1 = a random item at level r_max and x2 = a random item at a lower non-zero level, giving
(q, x1, x2), (q, x1, x-), (q, x2, x-) with weights (2^r_i - 2^r_j) / Z,
Z = (2^r1 - 1)/ln 2 + (2^r2 - 1)/ln 3 (the NDCG gain difference, normalised by the ideal
DCG of the pair); otherwise one triplet (q, x+, x-) with x+ any item sharing a label and
weight ln 2. Queries without any positive or negative are skipped.
"""

from __future__ import annotations

import math

import numpy as np

from ... import codes as C
from ...io import PseudosupError
from ...log import log, progress
from ..registry import register
from .base import check_training_data
from .torch_state import load_state_arrays, state_arrays

DEFAULTS = {"hidden": 512, "dropout": 0.5, "margin": 5.0, "balance": 1.0, "weight_decay": 5e-4, "lr": 0.01,
            "momentum": 0.9, "epochs": 60, "batch_size": 128, "lr_steps": 2, "lr_factor": 10.0,
            "standardize": True}


def sample_triplets(labels: np.ndarray, rng: np.random.Generator, block: int = 512):
    """The authors' triplets for every item: (q, positive, negative, weight) arrays.
    Vectorised by row blocks: a uniform choice among the items meeting a condition is
    the argmax of uniform random keys masked by the condition."""
    Y = labels.astype(np.int32)
    n = len(Y)
    parts = []
    for r0 in range(0, n, block):
        rel = Y[r0:r0 + block] @ Y.T
        rel[np.arange(len(rel)), np.arange(r0, r0 + len(rel))] = -1  # never its own partner
        parts.append(_block_triplets(rel, r0, rng))
    q, p, m, w = (np.concatenate(x) for x in zip(*parts)) if parts else ([],) * 4
    return (np.asarray(q, dtype=np.int64), np.asarray(p, dtype=np.int64), np.asarray(m, dtype=np.int64),
            np.asarray(w, dtype=np.float32))


def _pick(mask: np.ndarray, keys: np.ndarray) -> np.ndarray:
    return np.where(mask, keys, -1.0).argmax(axis=1)


def _block_triplets(rel, r0, rng):
    rows = np.arange(len(rel))
    top = rel.max(axis=1)
    ok = (rel == 0).any(axis=1) & (top > 0)
    # one key matrix serves every pick: the masks used together for a query are disjoint
    # (no shared label / best level / lower level; any positive only when there is no pair
    # of levels), so the picks are independent uniform choices
    keys = rng.random(rel.shape, dtype=np.float32)
    neg = _pick(rel == 0, keys)
    best = _pick(rel == top[:, None], keys)
    lower_mask = (rel > 0) & (rel < top[:, None])
    has_lower = lower_mask.any(axis=1)
    lower = _pick(lower_mask, keys)
    any_pos = _pick(rel > 0, keys)
    graded = ok & (top > 1) & has_lower
    single = ok & ~graded
    ra, rb = rel[rows, best].astype(np.float64), rel[rows, lower].astype(np.float64)
    z = (2.0 ** ra - 1) / math.log(2) + (2.0 ** rb - 1) / math.log(3)
    g = np.flatnonzero(graded)
    q = np.concatenate([np.repeat(g, 3), np.flatnonzero(single)])
    pos = np.concatenate([np.stack([best[g], best[g], lower[g]], 1).ravel(), any_pos[single]])
    neg_ = np.concatenate([np.stack([lower[g], neg[g], neg[g]], 1).ravel(), neg[single]])
    w = np.concatenate([(np.stack([2.0 ** ra[g] - 2.0 ** rb[g], 2.0 ** ra[g] - 1, 2.0 ** rb[g] - 1], 1)
                         / z[g, None]).ravel(), np.full(single.sum(), math.log(2))])
    order = np.argsort(q, kind="stable")  # per query, in the authors' order
    return q[order] + r0, pos[order], neg_[order], w[order]


def _head(d_in: int, hidden: int, bits: int, dropout: float):
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc6 = nn.Linear(d_in, hidden)
            self.fc7 = nn.Linear(hidden, hidden)
            self.hash = nn.Linear(2 * hidden, bits)  # bypass: [dropout(fc7), fc6]
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            f6 = torch.relu(self.fc6(x))
            f7 = torch.relu(self.fc7(self.drop(f6)))
            return torch.sigmoid(self.hash(torch.cat([self.drop(f7), f6], dim=1)))

    return Head()


class _DSRHBase:
    supervised = True

    def __init__(self, bits: int, params: dict | None = None, seed: int = 0):
        self.bits = int(bits)
        self.params = {**DEFAULTS, **self.extra_defaults, **{k: v for k, v in dict(params or {}).items() if v is not None}}
        self.seed = int(seed)
        self.head = None
        self.mu = self.sd = None
        self.history: list[float] = []

    extra_defaults: dict = {}

    def p(self, key):
        return self.params[key]

    # subclasses: inputs -> (n, d) float32 tensor of the head's inputs
    def _inputs(self, X, train: bool):
        raise NotImplementedError

    def fit(self, X, labels=None) -> "_DSRHBase":
        import torch

        if labels is None:
            raise PseudosupError(f"{self.name}: a supervised hasher; it needs the training items' multi-hot labels")
        labels = np.asarray(labels)
        if labels.ndim != 2 or len(labels) != len(X) or len(X) == 0:
            raise PseudosupError(f"{self.name}: labels must be an (n, L) 0/1 matrix for the {len(X)} training items, "
                                 f"got shape {labels.shape}")
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        F = self._inputs(X, train=True)
        self.head = _head(F.shape[1], int(self.p("hidden")), self.bits, float(self.p("dropout")))
        self._train(F, labels, rng)
        return self

    def _standardize_fit(self, F: np.ndarray) -> np.ndarray:
        check_training_data(F, self.bits, needs_pca=False, what=f"{self.name}: training features")
        if self.p("standardize"):
            self.mu, self.sd = F.mean(axis=0), F.std(axis=0) + 1e-6
        else:
            self.mu, self.sd = np.zeros(F.shape[1], np.float32), np.ones(F.shape[1], np.float32)
        return self._standardize(F)

    def _standardize(self, F):
        return ((F - self.mu) / self.sd).astype(np.float32)

    def _trainable(self):
        return list(self.head.parameters())

    def _train(self, F, labels, rng) -> None:
        import torch

        params = self._trainable()
        opt = torch.optim.SGD(params, lr=float(self.p("lr")), momentum=float(self.p("momentum")),
                              weight_decay=float(self.p("weight_decay")))
        epochs, steps = int(self.p("epochs")), int(self.p("lr_steps"))
        # the authors' dexp schedule: the rate drops by lr_factor, lr_steps times, evenly
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // (steps + 1)),
                                                gamma=1.0 / float(self.p("lr_factor")))
        margin = float(self.p("margin")) * self.bits / 64.0
        Ft = torch.from_numpy(F)
        bs = int(self.p("batch_size"))
        for _ in progress(range(epochs), desc=f"{self.name} train", unit="epoch"):
            q, pos, neg, w = sample_triplets(labels, rng)
            if len(q) == 0:
                raise PseudosupError(f"{self.name}: no training item has both a positive (a shared label) and a "
                                     "negative (no shared label); check the labels")
            order = rng.permutation(len(q))
            total = 0.0
            self._set_train(True)
            for b0 in range(0, len(order), bs):
                sel = order[b0:b0 + bs]
                loss = self._triplet_loss(Ft, q[sel], pos[sel], neg[sel], torch.from_numpy(w[sel]), margin)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(sel)
            sched.step()
            self.history.append(total / len(order))
        self._set_train(False)
        log.info("%s: final epoch loss %.4f", self.name, self.history[-1])

    def _set_train(self, on: bool) -> None:
        self.head.train(on)

    def _forward_rows(self, Ft, rows):
        return self.head(Ft[rows])

    def _triplet_loss(self, Ft, q, pos, neg, w, margin):
        import torch

        rows, inv = np.unique(np.concatenate([q, pos, neg]), return_inverse=True)
        b = 2 * self._forward_rows(Ft, torch.from_numpy(rows)) - 1
        bq, bp, bn = b[inv[:len(q)]], b[inv[len(q):2 * len(q)]], b[inv[2 * len(q):]]
        d_pos = (self.bits - (bq * bp).sum(1)) / 2
        d_neg = (self.bits - (bq * bn).sum(1)) / 2
        rank = (w * torch.relu(d_pos - d_neg + margin)).mean()
        balance = (b.mean(0) ** 2).sum()
        return rank + float(self.p("balance")) * balance

    def project(self, X, batch: int = 4096) -> np.ndarray:
        """Sigmoid outputs h (n, bits); codes are h > 0.5."""
        import torch

        if self.head is None:
            raise PseudosupError(f"{self.name}: model is not fitted")
        self._set_train(False)
        out = []
        with torch.no_grad():
            for i in range(0, len(X), batch):
                out.append(self.head(torch.from_numpy(self._inputs(X[i:i + batch], train=False))).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.bits), np.float32)

    def encode(self, X, batch: int = 4096) -> np.ndarray:
        return C.pack(self.project(X, batch) > 0.5)

    # self-describing model files: every tensor as an array
    def arrays(self) -> dict[str, np.ndarray]:
        return {**state_arrays(self.head, "head."), "mu": np.asarray(self.mu), "sd": np.asarray(self.sd)}

    @classmethod
    def from_arrays(cls, bits: int, params: dict, seed: int, arrays: dict):
        model = cls(bits, params, seed)
        model.mu, model.sd = np.asarray(arrays["mu"]), np.asarray(arrays["sd"])
        model._load_extra(arrays)
        d_in = arrays["head.fc6.weight"].shape[1]
        head = _head(d_in, arrays["head.fc6.weight"].shape[0], bits, float(model.p("dropout")))
        model.head = load_state_arrays(head, arrays, "head.")
        model.head.eval()
        return model

    def _load_extra(self, arrays) -> None:
        pass


@register("dsrh")
class DSRH(_DSRHBase):
    """DSRH's head as an MLP on precomputed features."""

    name = "dsrh"

    def _inputs(self, X, train: bool):
        F = np.asarray(X, dtype=np.float32)
        if F.ndim != 2:
            raise PseudosupError(f"{self.name}: expected (n, d) features, got shape {F.shape}")
        if train:
            return self._standardize_fit(F)
        if F.shape[1] != len(self.mu):
            raise PseudosupError(f"{self.name}: features have {F.shape[1]} dimensions, the model expects {len(self.mu)}")
        return self._standardize(F)


@register("dsrh_cnn")
class DSRHCNN(_DSRHBase):
    """DSRH on images: MobileNetV2 backbone + the same head. X = uint8 images (n, h, w, 3)."""

    name = "dsrh_cnn"
    inputs = "images"
    extra_defaults = {"backbone_weights": None, "image_size": 128, "finetune_blocks": 0, "backbone_batch": 64}

    def __init__(self, bits, params=None, seed=0):
        super().__init__(bits, params, seed)
        self.backbone = None

    def _make_backbone(self):
        import torch

        from ...features.mobilenet import MobileNetV2

        path = self.p("backbone_weights")
        if path:
            from ...features.tflite import load_mobilenet_v2
            net = load_mobilenet_v2(path)
        else:
            torch.manual_seed(self.seed)
            net = MobileNetV2()
        for prm in net.parameters():
            prm.requires_grad_(False)
        k = int(self.p("finetune_blocks"))
        if k > 0:
            for layer in list(net.features)[-k:]:
                for prm in layer.parameters():
                    prm.requires_grad_(True)
        return net.eval()

    def _images(self, X):
        import torch
        from torch.nn import functional as Fn

        X = np.asarray(X)
        if X.ndim != 4 or X.shape[-1] != 3 or X.dtype != np.uint8:
            raise PseudosupError(f"{self.name}: expected uint8 images (n, h, w, 3), got {X.dtype} {X.shape}")
        x = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2))).float()
        s = int(self.p("image_size"))
        if x.shape[-1] != s or x.shape[-2] != s:
            x = Fn.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        return self.backbone.normalize(x)

    def _pooled(self, X) -> np.ndarray:
        """Backbone features of images, batched, no gradient (the frozen part)."""
        import torch

        out = []
        bs = int(self.p("backbone_batch"))
        with torch.no_grad():
            for i in progress(range(0, len(X), bs), desc=f"{self.name} backbone", total=-(-len(X) // bs)):
                out.append(self.backbone.pooled(self._images(X[i:i + bs])).numpy())
        return np.concatenate(out).astype(np.float32)

    def _inputs(self, X, train: bool):
        if self.backbone is None:
            self.backbone = self._make_backbone()
        if train:
            self._train_images = X if int(self.p("finetune_blocks")) > 0 else None
            return self._standardize_fit(self._pooled(X))
        return self._standardize(self._pooled(X))

    def _trainable(self):
        return list(self.head.parameters()) + [p for p in self.backbone.parameters() if p.requires_grad]

    def _set_train(self, on: bool) -> None:
        self.head.train(on)
        if int(self.p("finetune_blocks")) > 0:
            self.backbone.train(on)

    def _forward_rows(self, Ft, rows):
        if self._train_images is None:  # frozen backbone: its features are cached
            return self.head(Ft[rows])
        import torch

        feats = self.backbone.pooled(self._images(self._train_images[rows.numpy()]))
        mu, sd = torch.from_numpy(self.mu), torch.from_numpy(self.sd)
        return self.head((feats - mu) / sd)

    def arrays(self):
        return {**super().arrays(), **state_arrays(self.backbone, "backbone.")}

    def _load_extra(self, arrays) -> None:
        from ...features.mobilenet import MobileNetV2

        self.backbone = load_state_arrays(MobileNetV2(), arrays, "backbone.").eval()
