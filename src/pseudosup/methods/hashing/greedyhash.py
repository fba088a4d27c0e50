"""GreedyHash, unsupervised (Su, Zhang, Huang & Tian, NeurIPS 2018; ssppp/GreedyHash,
and its re-implementation in kamwoh/sdc, whose settings HEAD_DEFAULTS follows).

Head: one Linear(d, bits) on frozen features, h = x W + c; codes b = sign(h) in the
forward pass with the gradient passed straight through (the "greedy" update of the
discrete codes). Loss: MSE between the code cosines and the feature cosines of the
batch's paired halves, plus `alpha` x mean(| |h| - 1 |^3) pulling h to +-1.
"""

from __future__ import annotations

from ..registry import register
from .head import HeadHasher, paired_cosine


def sign_straight_through(h):
    """sign(h) forward, identity backward."""
    return h + (h.sign() - h).detach()


@register("greedyhash")
class GreedyHash(HeadHasher):
    name = "greedyhash"
    defaults = {"alpha": 1.0, "power": 3.0}

    def _build(self, d):
        from torch import nn

        return nn.Linear(d, self.bits)

    def _loss(self, x, h, rows, features, rng):
        import torch.nn.functional as F

        b = sign_straight_through(h)
        mse = F.mse_loss(paired_cosine(b), paired_cosine(x).detach())
        quan = (h.abs() - 1).abs().pow(float(self.p("power"))).mean()
        return mse + float(self.p("alpha")) * quan, {"mse": float(mse.item()), "quantisation": float(quan.item())}
