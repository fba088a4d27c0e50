"""MobileNetV2 (Sandler et al. 2018) as a float torch module with TensorFlow "SAME" padding.

This is the architecture of the ImageNet MobileNetV2 bundled as uint8 TFLite
(`tflite.load_mobilenet_v2` fills it with the dequantised weights). Batch norm is
already folded into the convolutions (every conv has a bias, there is no BN layer),
activations are ReLU6, and padding follows TensorFlow: for stride 2 on an even input
the extra row/column goes at the bottom/right, unlike torchvision's symmetric padding.

API for the fine-tuning (issue 6) and DSRH (issue 5) code: all parts are ordinary,
trainable submodules.

    net = load_mobilenet_v2("…/mobilenet_v2_1.0_224_quant.tflite")  # or MobileNetV2()
    x = net.normalize(uint8_batch_nchw)   # (u - 128) / 128, the TFLite input convention
    fmap = net.features(x)                # (n, 1280, h, w): last conv map (224 -> 7x7)
    pooled = net.pooled(x)                # (n, 1280) global average = penultimate features
    logits = net(x)                       # (n, 1001); class 0 = background (TF slim labels)
    net.classifier                        # nn.Linear(1280, 1001)
    net.features[0], net.features[1:18], net.features[18]   # stem, 17 blocks, head conv
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# (expansion t, output channels c, repeats n, first stride s) of the paper's Table 2
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
N_FEATURES = 1280


class FakeQuant(nn.Module):
    """Rounds activations to a uint8 grid (scale, zero point) when enabled: emulates the
    uint8 TFLite model's activation quantisation. Off (identity) unless `set_grid` is
    called; gradients pass straight through (for quantisation-aware fine-tuning)."""

    def __init__(self):
        super().__init__()
        self.enabled = False
        self.register_buffer("scale", torch.ones(()), persistent=False)
        self.register_buffer("zero", torch.zeros(()), persistent=False)

    def set_grid(self, scale: float, zero: float) -> None:
        self.scale.fill_(scale)
        self.zero.fill_(zero)
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        q = (torch.round(x / self.scale) + self.zero).clamp_(0, 255)
        return x + ((q - self.zero) * self.scale - x).detach()


class ConvSame(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding (output size ceil(in / stride)), any input size."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__(cin, cout, k, stride=stride, groups=groups, bias=True)
        self.act = act
        self.quant = FakeQuant()
        # SAME with stride 1 is symmetric: let the conv pad (F.pad would copy the input)
        if stride == 1:
            self.padding = (k // 2, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            x = F.pad(x, _same_pad(x.shape[-2], x.shape[-1], self.kernel_size[0], self.stride[0]))
        y = super().forward(x)
        return self.quant(F.relu6(y, inplace=True) if self.act else y)


def _same_pad(h: int, w: int, k: int, s: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) as TensorFlow pads: the odd pixel goes after."""
    def one(n):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    top, bottom = one(h)
    left, right = one(w)
    return left, right, top, bottom


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection, + input
    when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, t: int):
        super().__init__()
        hidden = cin * t
        self.expand = ConvSame(cin, hidden, 1) if t != 1 else None
        self.depthwise = ConvSame(hidden, hidden, 3, stride=stride, groups=hidden)
        self.project = ConvSame(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout
        self.add_quant = FakeQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return self.add_quant(x + y) if self.residual else y


class MobileNetV2(nn.Module):
    """Width 1.0; `features` ends with the 1280-channel conv; `classifier` is linear."""

    def __init__(self, n_classes: int = 1001):
        super().__init__()
        layers: list[nn.Module] = [ConvSame(3, 32, 3, stride=2)]
        cin = 32
        for t, c, n, s in BLOCKS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvSame(cin, N_FEATURES, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(N_FEATURES, n_classes)
        self.pool_quant = FakeQuant()  # emulation of the uint8 model only (see FakeQuant)
        self.logits_quant = FakeQuant()
        # pixel normalisation of the TFLite model: uint8 u -> (u - 128) / 128
        self.register_buffer("pixel_mean", torch.full((1, 3, 1, 1), 128.0), persistent=False)
        self.register_buffer("pixel_std", torch.full((1, 3, 1, 1), 128.0), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8-valued (n, 3, H, W) pixels (any float/uint8 dtype) -> network input."""
        return (x.float() - self.pixel_mean) / self.pixel_std

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_quant(self.features(x).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_quant(self.classifier(self.pooled(x)))

    def convs(self) -> list[ConvSame]:
        """Every convolution in execution order (the converter fills them in this order)."""
        return [m for m in self.features.modules() if isinstance(m, ConvSame)]
