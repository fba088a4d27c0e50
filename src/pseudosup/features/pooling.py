"""Global pooling of a convolutional map (n, C, h, w) into one descriptor per image.

MAC (max; Tolias et al. 2016), SPoC (sum/mean; Babenko & Lempitsky 2015), GeM
(generalised mean, p a parameter; Radenović et al. 2018: p = 1 is SPoC, p -> inf is
MAC) and R-MAC (MACs of square regions at L scales, each L2-normalised, summed;
Tolias et al. 2016). Every descriptor is L2-normalised at the end; an all-zero map
gives an all-zero descriptor (never NaN).
"""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("mac", "spoc", "gem", "rmac")
EPS = 1e-6


def l2n(x: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation; zero rows stay zero."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def mac(x: torch.Tensor) -> torch.Tensor:
    return x.amax(dim=(2, 3))


def spoc(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3))


def gem(x: torch.Tensor, p: float | torch.Tensor = 3.0) -> torch.Tensor:
    """(mean x^p)^(1/p) per channel, computed as max * (mean (x/max)^p)^(1/p) so that a
    large p cannot overflow float32. Clamped at EPS: GeM is defined on non-negative
    maps (after ReLU) and eps keeps pow's gradient finite."""
    x = x.clamp_min(EPS)
    top = x.amax(dim=(2, 3), keepdim=True)
    return top[:, :, 0, 0] * (x / top).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


def rmac_regions(h: int, w: int, levels: int = 3, overlap: float = 0.4) -> list[tuple[int, int, int, int]]:
    """Square regions (top, left, size, size) of R-MAC on an h x w map.

    Level l (1..levels) uses squares of side floor(2 min(h, w) / (l + 1)); along the
    short side l of them are spread evenly; along the long side l + extra, where
    `extra` (0..5) makes consecutive regions overlap closest to `overlap`
    (40% in Tolias et al.). The whole map is added as region 0.
    """
    short, long_ = min(h, w), max(h, w)
    extra = 0
    if long_ > short:
        # for n regions of side `short` over the long side, step b = (long - short)/(n - 1);
        # overlap = (short - b) / short; choose n in 2..7
        cands = range(2, 8)
        extra = min(cands, key=lambda n: abs((short - (long_ - short) / (n - 1)) / short - overlap)) - 1
    regions = [(0, 0, h, w)]
    for lev in range(1, levels + 1):
        side = max(1, (2 * short) // (lev + 1))
        n_h = lev + (extra if h > w else 0)
        n_w = lev + (extra if w > h else 0)
        for top in _starts(h, side, n_h):
            for left in _starts(w, side, n_w):
                regions.append((top, left, side, side))
    return list(dict.fromkeys(regions))  # drop duplicates, keep order


def _starts(length: int, side: int, n: int) -> list[int]:
    if n <= 1 or length <= side:
        return [max(0, (length - side) // 2)]
    step = (length - side) / (n - 1)
    return sorted({int(round(i * step)) for i in range(n)})


def rmac(x: torch.Tensor, levels: int = 3) -> torch.Tensor:
    out = torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device)
    for top, left, rh, rw in rmac_regions(x.shape[2], x.shape[3], levels):
        out = out + l2n(x[:, :, top:top + rh, left:left + rw].amax(dim=(2, 3)))
    return out


def pool(x: torch.Tensor, method: str, p: float = 3.0, levels: int = 3) -> torch.Tensor:
    """The L2-normalised descriptor of each map by `method` (one of POOLINGS)."""
    if method == "mac":
        d = mac(x)
    elif method == "spoc":
        d = spoc(x)
    elif method == "gem":
        d = gem(x, p)
    elif method == "rmac":
        d = rmac(x, levels)
    else:
        raise ValueError(f"unknown pooling {method!r}; one of {POOLINGS}")
    return l2n(d)


class GeM(nn.Module):
    """GeM pooling with a trainable p (for fine-tuning), output L2-normalised."""

    def __init__(self, p: float = 3.0, trainable: bool = True):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2n(gem(x, self.p))

