"""Bi-half: deep unsupervised image hashing by maximising bit entropy (Li & van Gemert,
AAAI 2021; liyunqianggyn/Deep-Unsupervised-Image-Hashing, and its re-implementation in
kamwoh/sdc, whose settings HEAD_DEFAULTS follows).

Head: one Linear(d, bits) on frozen features, h = x W + c. In training the codes are
half-and-half per bit over the batch: b = +1 above the bit's batch median, -1 otherwise
(maximum bit entropy by construction), with the authors' straight-through gradient
dL/dh = dL/db + gamma / (batch x bits) (h - b), gamma = 6. Loss: MSE between the code
cosines and the feature cosines of the batch's paired halves. At test time the code is
sign(h), as in the authors' code (the median is a batch statistic).
"""

from __future__ import annotations

from ..registry import register
from .head import HeadHasher, paired_cosine


def bihalf(h, gamma: float):
    """Half-and-half codes of a batch with the authors' gradient (a torch autograd op)."""
    import torch

    class BiHalf(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            b = (u > u.median(0).values).float() * 2 - 1
            ctx.save_for_backward(u, b)
            return b

        @staticmethod
        def backward(ctx, grad):
            u, b = ctx.saved_tensors
            return grad + gamma / (b.shape[0] * b.shape[1]) * (u - b)

    return BiHalf.apply(h)


@register("bihalf")
class BiHalf(HeadHasher):
    name = "bihalf"
    defaults = {"gamma": 6.0}

    def _build(self, d):
        from torch import nn

        return nn.Linear(d, self.bits)

    def _loss(self, x, h, rows, features, rng):
        import torch.nn.functional as F

        b = bihalf(h, float(self.p("gamma")))
        mse = F.mse_loss(paired_cosine(b), paired_cosine(x).detach())
        return mse, {"mse": float(mse.item())}
