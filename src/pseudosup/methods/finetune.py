"""CNN fine-tuning with complementary supervision (Zhou et al., "pseudo-supervised
deep learning for image search", METHODS.md section 2).

Labels are unknown; supervision comes from the other feature: positives are mined
pairs (reversible neighbours in SIFT space, optionally SIFT-verified), negatives are
far neighbours in the *pretrained CNN* space (ranks [neg_min_rank, neg_max_rank) of
the anchor's CNN list, never a mined positive). Loss per batch:

    triplet:     mean over (a, p, n) of max(0, margin + |f(a) - f(p)|^2 - |f(a) - f(n)|^2)
    contrastive: |f(a) - f(p)|^2 + mean_n max(0, margin - |f(a) - f(n)|)^2
    + lambda * mean over the batch's images of |f(I) - f0(I)|^2

f = L2-normalised pooled last convolutional map of the fine-tuned network, f0 the
same for the pretrained one (the second term keeps the model from drifting).

Only the last `trainable_blocks` modules of the trunk (an nn.Sequential, e.g.
MobileNetV2's `features`: stem, 17 inverted-residual blocks, head conv) are trained.
The frozen prefix is run once over all images and its output cached, so an epoch
costs only the trainable part: this is what makes CPU fine-tuning practical. (No
image augmentation therefore: the positives come from the mined pairs.) BatchNorm
statistics, if any, stay frozen (eval mode).

Checkpoints are self-describing: backbone name, weights source, an architecture
signature (hash of parameter names and shapes), the trainable blocks, pooling, image
size, params, seed, the pairs used, the history and the code version. Loading one
into another backbone raises a clear error.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..io import PseudosupError
from ..log import log, progress

LOSSES = ("triplet", "contrastive")
KIND = "pseudosup-finetuned-cnn"


@dataclass
class FinetuneSettings:
    trainable_blocks: int = 3
    epochs: int = 5
    batch_size: int = 32           # positive pairs per step
    lr: float = 1e-4               # Adam
    weight_decay: float = 0.0
    loss: str = "triplet"
    margin: float = 0.1
    lam: float = 1.0               # weight of |f(I) - f0(I)|^2 (params key `lambda`)
    negatives: int = 5             # per positive pair
    neg_min_rank: int = 10         # negatives: CNN ranks [neg_min_rank, neg_max_rank) of the anchor
    neg_max_rank: int | None = 200
    max_pairs: int | None = None   # train on a seeded sample of at most this many mined pairs
    seed: int = 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise PseudosupError(f"finetune.loss: '{self.loss}' is not one of {list(LOSSES)}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise PseudosupError(f"finetune.max_pairs: {self.max_pairs} must be >= 1 (or null: all pairs)")
        if self.trainable_blocks < 1:
            raise PseudosupError(f"finetune.trainable_blocks: {self.trainable_blocks} must be >= 1")
        if self.neg_max_rank is not None and self.neg_max_rank <= self.neg_min_rank:
            raise PseudosupError(f"finetune.neg_max_rank ({self.neg_max_rank}) must exceed neg_min_rank "
                                 f"({self.neg_min_rank})")

    @classmethod
    def from_params(cls, cfg: dict, seed: int) -> "FinetuneSettings":
        known = {f for f in cls.__dataclass_fields__ if f not in ("seed", "lam")}
        extra = {"lam": cfg["lambda"]} if "lambda" in cfg else {}
        return cls(**{k: v for k, v in cfg.items() if k in known}, **extra, seed=seed)


# --- the network ----------------------------------------------------------------------------------

def split_trunk(trunk: nn.Module, trainable_blocks: int) -> tuple[nn.Module, nn.Sequential]:
    """(frozen prefix, trainable head) of a Sequential trunk."""
    if not isinstance(trunk, nn.Sequential):
        raise PseudosupError(f"fine-tuning needs a Sequential trunk (got {type(trunk).__name__})")
    if trainable_blocks >= len(trunk):
        raise PseudosupError(f"finetune.trainable_blocks: {trainable_blocks}, but the trunk has only "
                             f"{len(trunk)} modules (the first must stay frozen)")
    cut = len(trunk) - trainable_blocks
    prefix, head = trunk[:cut], trunk[cut:]
    for p in prefix.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    return prefix.eval(), head


def signature(trunk: nn.Module) -> str:
    """Architecture fingerprint: sha256 of parameter/buffer names and shapes."""
    h = hashlib.sha256()
    for name, t in trunk.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)};".encode())
    return h.hexdigest()[:16]


def _pool(fmap: torch.Tensor, pooling: str, p: float) -> torch.Tensor:
    from ..features import pooling as P

    return P.pool(fmap, pooling, p)


# --- cached prefix activations -----------------------------------------------------------------

@torch.no_grad()
def prefix_activations(source, prefix: nn.Module, normalize, image_size: int, batch: int = 32,
                       min_side: int = 32) -> tuple[np.ndarray, dict]:
    """Output of the frozen prefix for every image (square resize), float32
    (n, C, h, w), and the skipped/converted report (skipped images: zero maps)."""
    from ..features.cnn import resize_for_cnn
    from ..features.images import Fetcher

    fetcher = Fetcher(source, colour=True, min_side=min_side)
    n = len(fetcher)
    out = None
    for i0 in progress(range(0, n, batch), desc="frozen layers", total=-(-n // batch), unit="batch"):
        idx, imgs = [], []
        for i in range(i0, min(i0 + batch, n)):
            img = fetcher.get(i)
            if img is not None:
                idx.append(i)
                imgs.append(resize_for_cnn(img, image_size, "square", min_side).transpose(2, 0, 1))
        if not imgs:
            continue
        a = prefix(normalize(torch.from_numpy(np.ascontiguousarray(np.stack(imgs))))).numpy()
        if out is None:
            out = np.zeros((n, *a.shape[1:]), np.float32)
        out[idx] = a
    if out is None:
        raise PseudosupError("no readable image in the source: nothing to fine-tune on")
    return out, fetcher.report(getattr(source, "ids", None))


def describe(head: nn.Module, acts: np.ndarray, pooling: str, p: float, batch: int = 256) -> np.ndarray:
    """L2-normalised descriptors of all cached activations through the head."""
    head.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(acts), batch):
            out.append(_pool(head(torch.from_numpy(acts[i:i + batch])), pooling, p).numpy())
    return np.concatenate(out).astype(np.float32)


# --- training ---------------------------------------------------------------------------------------

def check_pairs(pairs: np.ndarray, n: int) -> np.ndarray:
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise PseudosupError(f"pairs: expected an (P, 2) array, got shape {pairs.shape}")
    if len(pairs) == 0:
        raise PseudosupError("pairs: no positive pairs to train on (mining found none: increase mining k)")
    if pairs.min() < 0 or pairs.max() >= n:
        bad = pairs[(pairs < 0).any(1) | (pairs >= n).any(1)][0]
        raise PseudosupError(f"pair {bad.tolist()} references an image outside the {n} images: "
                             "the pairs were mined on another dataset or split")
    if (pairs[:, 0] == pairs[:, 1]).any():
        raise PseudosupError("pairs: an image paired with itself")
    return pairs


def sample_negatives(cnn_nbrs: np.ndarray, anchors: np.ndarray, pairs: np.ndarray, s: FinetuneSettings,
                     n: int, rng: np.random.Generator) -> np.ndarray:
    """(len(anchors), negatives) far CNN neighbours of each anchor (see module doc)."""
    hi = cnn_nbrs.shape[1] if s.neg_max_rank is None else min(s.neg_max_rank, cnn_nbrs.shape[1])
    if hi - s.neg_min_rank < s.negatives:
        raise PseudosupError(f"negatives: CNN ranks [{s.neg_min_rank}, {hi}) hold fewer than "
                             f"{s.negatives} items; lower finetune.neg_min_rank or finetune.negatives")
    cols = rng.integers(s.neg_min_rank, hi, (len(anchors), s.negatives))
    neg = cnn_nbrs[anchors[:, None], cols]
    keys = set((np.minimum(pairs[:, 0], pairs[:, 1]) * n + np.maximum(pairs[:, 0], pairs[:, 1])).tolist())
    a = np.broadcast_to(anchors[:, None], neg.shape)
    clash = np.isin(np.minimum(a, neg) * n + np.maximum(a, neg), list(keys)) | (neg < 0)
    for _ in range(20):  # a mined positive deep in the CNN list: redraw it
        if not clash.any():
            break
        cols[clash] = rng.integers(s.neg_min_rank, hi, int(clash.sum()))
        neg = cnn_nbrs[anchors[:, None], cols]
        clash = np.isin(np.minimum(a, neg) * n + np.maximum(a, neg), list(keys)) | (neg < 0)
    if clash.any():
        raise PseudosupError(f"could not draw {s.negatives} negatives for anchor {int(anchors[clash.any(1)][0])} "
                             f"among its CNN ranks [{s.neg_min_rank}, {hi}) (too many positives there, or an "
                             "anchor outside the indexed items); widen the window")
    return neg


def loss_terms(fa, fp, fn, f_batch, f0_batch, s: FinetuneSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """(ranking term, drift term) of a batch: fa, fp (B, D); fn (B, m, D); f_batch, f0_batch
    the descriptors of the batch's distinct images now and before fine-tuning."""
    d_ap = ((fa - fp) ** 2).sum(-1)                       # (B,)
    d_an = ((fa[:, None, :] - fn) ** 2).sum(-1)           # (B, m)
    if s.loss == "triplet":
        rank = torch.relu(s.margin + d_ap[:, None] - d_an).mean()
    else:
        rank = d_ap.mean() + (torch.relu(s.margin - d_an.clamp_min(1e-12).sqrt()) ** 2).mean()
    drift = ((f_batch - f0_batch) ** 2).sum(-1).mean()
    return rank, drift


def finetune(head: nn.Module, acts: np.ndarray, pairs: np.ndarray, cnn_nbrs: np.ndarray, s: FinetuneSettings,
             pooling: str = "gem", p: float = 3.0, callback=None) -> list[dict]:
    """Train `head` in place on the cached activations; returns the history (loss per
    epoch and, through `callback(epoch, descriptors) -> dict`, e.g. mAP; epoch 0 is
    the pretrained network)."""
    n = len(acts)
    pairs = check_pairs(pairs, n)
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    f0 = describe(head, acts, pooling, p)
    f0_t = torch.from_numpy(f0)
    history = [{"epoch": 0, **(callback(0, f0) if callback else {})}]
    params = [q for q in head.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
    train = pairs
    if s.max_pairs is not None and len(pairs) > s.max_pairs:
        # bounds an epoch's cost on large collections; every mined pair stays excluded from the negatives
        train = pairs[np.sort(rng.choice(len(pairs), s.max_pairs, replace=False))]
        log.info("training on %d of the %d mined pairs (finetune.max_pairs)", len(train), len(pairs))
    both = np.concatenate([train, train[:, ::-1]])  # each pair serves as anchor in both orders
    acts_t = torch.from_numpy(acts)
    for epoch in range(1, s.epochs + 1):
        t0 = time.time()
        head.eval()  # BatchNorm statistics stay frozen; gradients still flow
        order = rng.permutation(len(both))
        sums = {"loss": 0.0, "ranking": 0.0, "drift": 0.0}
        steps = 0
        for b0 in progress(range(0, len(order), s.batch_size), desc=f"fine-tune epoch {epoch}",
                           total=-(-len(order) // s.batch_size), unit="batch"):
            batch = both[order[b0:b0 + s.batch_size]]
            neg = sample_negatives(cnn_nbrs, batch[:, 0], pairs, s, n, rng)
            items, inv = np.unique(np.concatenate([batch.ravel(), neg.ravel()]), return_inverse=True)
            f = _pool(head(acts_t[items]), pooling, p)
            B = len(batch)
            fa, fp = f[inv[:2 * B:2]], f[inv[1:2 * B:2]]
            fn = f[inv[2 * B:]].reshape(B, s.negatives, -1)
            rank, drift = loss_terms(fa, fp, fn, f, f0_t[items], s)
            loss = rank + s.lam * drift
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums["loss"] += loss.item()
            sums["ranking"] += rank.item()
            sums["drift"] += drift.item()
            steps += 1
        rec = {"epoch": epoch, **{k: v / steps for k, v in sums.items()}, "seconds": round(time.time() - t0, 2)}
        if callback:
            rec.update(callback(epoch, describe(head, acts, pooling, p)))
        history.append(rec)
        log.info("epoch %d: loss %.5f (ranking %.5f, drift %.5f)%s", epoch, rec["loss"], rec["ranking"], rec["drift"],
                 "".join(f", {k} {v:.4f}" for k, v in rec.items() if k.startswith("map")))
    return history


# --- checkpoints -----------------------------------------------------------------------------------

def save_checkpoint(path, trunk: nn.Module, meta: dict) -> None:
    from ..io import atomic_path

    meta = {"kind": KIND, "signature": signature(trunk), **meta}
    with atomic_path(path) as tmp:
        torch.save({"meta": meta, "state_dict": trunk.state_dict()}, tmp)


def load_checkpoint(path, trunk: nn.Module, backbone: str) -> dict:
    """Load a fine-tuned checkpoint into `trunk` (in place) after checking it was made
    for the same backbone and architecture; returns its meta."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PseudosupError(f"{path}: checkpoint not found; run `pseudosup finetune` first") from None
    except Exception as e:
        raise PseudosupError(f"{path}: not a readable torch checkpoint ({e})") from None
    meta = ckpt.get("meta", {}) if isinstance(ckpt, dict) else {}
    if meta.get("kind") != KIND:
        raise PseudosupError(f"{path}: not a pseudosup fine-tuned checkpoint (kind {meta.get('kind')!r})")
    if meta.get("backbone") != backbone or meta.get("signature") != signature(trunk):
        raise PseudosupError(f"{path}: checkpoint of backbone '{meta.get('backbone')}' (architecture "
                             f"{meta.get('signature')}), but this model is '{backbone}' ({signature(trunk)}); "
                             "fine-tune this backbone or point to its own checkpoint")
    trunk.load_state_dict(ckpt["state_dict"])
    return meta


def settings_meta(s: FinetuneSettings) -> dict:
    d = asdict(s)
    d["lambda"] = d.pop("lam")
    return d
