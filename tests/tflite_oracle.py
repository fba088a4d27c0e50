"""Test oracle for the TFLite converter (pseudosup.features.tflite): the uint8 TFLite
interpreter itself (ai-edge-litert), the float model with activations rounded to the
uint8 grids, and an exact integer emulation of the interpreter.

`load_integer_mobilenet_v2` wraps the *same* converted float model and replays the
interpreter's integer arithmetic on it (uint8 activations, int32 accumulators, the
kernels' requantisation rounding, the residual ADD and AVERAGE_POOL_2D rescaling, the
table-based SOFTMAX): its outputs equal the interpreter's bit for bit, which shows that
the conversion itself (graph, weights, padding) is exact and that the float model's
residual disagreement is the quantisation. Which rounding the interpreter uses depends
on its kernels: `xnnpack` (the default interpreter on x86: XNNPACK requantises in
float32), `reference` (TFLite's reference kernels, gemmlowp fixed point) or
`optimized` (TFLite's own optimised kernels, ruy: fixed point, rounding half up).

Only the tests use this module; the pipeline runs the float model alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pseudosup.features.mobilenet import ConvSame, MobileNetV2, _same_pad
from pseudosup.features.tflite import ACT_RELU6, _convert, _Graph
from pseudosup.io import PseudosupError

KERNELS = ("xnnpack", "reference", "optimized")


def tflite_interpreter(path: str | Path, threads: int = 1, keep_all: bool = False, kernels: str = "xnnpack"):
    """The uint8 interpreter (ai-edge-litert), for verification. kernels: `xnnpack` (the
    default interpreter: XNNPACK delegate where it applies), `optimized` (TFLite's builtin
    kernels without the delegate) or `reference` (TFLite's reference kernels, slow).
    keep_all keeps every intermediate tensor readable (debugging)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = {"xnnpack": OpResolverType.AUTO, "optimized": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                "reference": OpResolverType.BUILTIN_REF}
    if kernels not in resolver:
        raise PseudosupError(f"kernels {kernels!r}: expected one of {', '.join(KERNELS)}")
    it = Interpreter(model_path=str(path), num_threads=threads, experimental_preserve_all_tensors=keep_all,
                     experimental_op_resolver_type=resolver[kernels])
    it.allocate_tensors()
    return it


def interpreter_outputs(it, images_u8: np.ndarray) -> dict[str, np.ndarray]:
    """The interpreter's raw uint8 tensors for uint8 (n, 224, 224, 3) images: `pool` (the
    penultimate AvgPool, (n, 1280)), `logits` ((n, 1001), before the softmax) and `probs`
    (the model output, softmax probabilities on a 1/256 grid). Needs an interpreter made
    with keep_all=True (intermediate tensors are otherwise overwritten)."""
    names = {"pool": "MobilenetV2/Logits/AvgPool", "logits": "MobilenetV2/Logits/Squeeze1"}
    index = {t["name"]: t["index"] for t in it.get_tensor_details()}
    missing = [n for n in names.values() if n not in index]
    if missing:
        raise PseudosupError(f"interpreter has no tensor {missing[0]!r} (not the bundled MobileNetV2?)")
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    res: dict[str, list] = {k: [] for k in (*names, "probs")}
    for img in images_u8:
        it.set_tensor(inp, img[None])
        it.invoke()
        for k, n in names.items():
            res[k].append(it.get_tensor(index[n]).reshape(-1).copy())
        res["probs"].append(it.get_tensor(out).reshape(-1).copy())
    return {k: np.stack(v) for k, v in res.items()}



def quant(g: _Graph, tensor: int) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor uint8-quantised tensor."""
    t = g.graph.tensors[tensor]
    qp = t.quantization
    if t.type != 3 or qp is None or qp.scale is None or len(qp.scale) != 1:
        name = t.name.decode() if isinstance(t.name, bytes) else t.name
        raise PseudosupError(f"{g.path}: tensor {name!r} is not a per-tensor uint8 tensor; "
                             "only the uint8 TFLite model can be emulated")
    return float(qp.scale[0]), int(qp.zeroPoint[0])


def load_uint8_grid_mobilenet_v2(path: str | Path) -> MobileNetV2:
    """The float model with every activation (conv outputs, residual sums, the pooled
    features, the logits) rounded to the uint8 grid of its TFLite tensor: float
    rounding, not the interpreter's integer requantisation (see `load_integer_mobilenet_v2`)."""
    net, g = _convert(path)
    blocks = [m for m in net.modules() if getattr(m, "residual", False)]
    targets = [(op, layer.quant) for op, layer in zip(g.conv_ops, net.convs())]
    targets += [(op, b.add_quant) for op, b in zip(g.add_ops, blocks)] + [(g.pool_ops[0][0], net.pool_quant)]
    targets.append((g.logits_op, net.logits_quant))
    for op, fq in targets:
        qp = g.graph.tensors[op.outputs[0]].quantization
        if qp is None or qp.scale is None or not len(qp.scale):
            raise PseudosupError(f"{g.path}: activations are not uint8-quantised; cannot emulate")
        fq.set_grid(float(qp.scale[0]), float(qp.zeroPoint[0]))
    return net


# ---------------------------------------------------------------------------------------
# Exact integer emulation of the uint8 interpreter
#
# Every activation is a uint8 code q with real value s * (q - z). A convolution
# accumulates acc = bias + sum (q_x - z_x) * (q_w - z_w) in int32 (bias quantised at
# s_x * s_w). We compute these sums with float convolutions, which are exact on integers
# as long as every partial sum is: below 2**24 in float32 (checked per layer from the
# weights: |bias| + max|q_x - z_x| * sum |q_w - z_w| < 2**24; the largest bound in the
# bundled model is 8.6e6, the logits), else in float64 (below 2**53). The
# accumulator is then requantised to the output grid, q_y = clamp(z_y + R(acc), lo, hi)
# with R(acc) ~ acc * s_x * s_w / s_y, and how R rounds is what differs between kernels.


def _quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's fixed-point form of a positive real multiplier: real ~ q * 2**(shift - 31)
    with q in [2**30, 2**31) (the mantissa rounded half away from zero)."""
    mantissa, shift = math.frexp(real)
    q = math.floor(mantissa * (1 << 31) + 0.5)
    if q == 1 << 31:
        q, shift = q // 2, shift + 1
    return q, shift


def _high_mul(a: torch.Tensor, q: int) -> torch.Tensor:
    """gemmlowp SaturatingRoundingDoublingHighMul: a * q / 2**31 rounded to nearest, ties
    towards +infinity (its nudge-and-truncate does that for both signs), for int32-range
    int64 tensors a (saturation cannot occur: q < 2**31)."""
    ab = a * q
    nudge = torch.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    return torch.div(ab + nudge, 1 << 31, rounding_mode="trunc")


def _shift_round_away(x: torch.Tensor, e: int) -> torch.Tensor:
    """gemmlowp RoundingDivideByPOT: x / 2**e rounded to nearest, ties away from zero."""
    if e == 0:
        return x
    mask = (1 << e) - 1
    threshold = (mask >> 1) + (x < 0).long()
    return (x >> e) + ((x & mask) > threshold).long()


def _shift_round_up(x: torch.Tensor, e: int) -> torch.Tensor:
    """x / 2**e rounded to nearest, ties towards +infinity (ruy's rounding right shift)."""
    return (x + (1 << (e - 1))) >> e if e > 0 else x


class _Requantize:
    """acc (integer-valued float tensor) -> uint8 codes (float32), as the given kernels do.

    xnnpack: float32(acc) * float32(float32(s_x * s_w) / s_y), rounded half to even.
    reference: TFLite's multiplier (from the float32 product s_x * s_w, divided by s_y in
      double), gemmlowp high multiplication then a rounding right shift (ties away from 0).
    optimized: the same multiplier and high multiplication, then ruy's shift (ties up)."""

    def __init__(self, kernels: str, s_x: float, s_w: float, s_y: float, z_y: int, lo: int, hi: int):
        self.kernels, self.z_y, self.lo, self.hi = kernels, z_y, lo, hi
        product = np.float32(s_x) * np.float32(s_w)  # float32 product, as both libraries compute it
        self.scale = torch.tensor(product / np.float32(s_y), dtype=torch.float32)
        self.q, shift = _quantize_multiplier(float(product) / float(np.float32(s_y)))
        self.left, self.right = max(shift, 0), max(-shift, 0)

    def __call__(self, acc: torch.Tensor) -> torch.Tensor:
        """Consumes acc (computes in place where it can)."""
        if self.kernels == "xnnpack":
            y = acc.to(torch.float32).mul_(self.scale).round_()  # round_: half to even, as the CPU's conversion
        else:
            a = acc.to(torch.int64)
            if a.abs().max() * (1 << self.left) >= 1 << 31:
                raise PseudosupError("int32 accumulator overflow in the integer emulation")
            t = _high_mul(a * (1 << self.left), self.q)
            t = _shift_round_away(t, self.right) if self.kernels == "reference" else _shift_round_up(t, self.right)
            y = t.to(torch.float32)
        return y.add_(self.z_y).clamp_(self.lo, self.hi)


class _QuantAdd:
    """The residual ADD of two uint8 tensors with their own grids into a third.

    xnnpack: both inputs scaled by integer multipliers m = rint(s_in / s_out * 2**k)
      (k: 20 fractional bits for the larger ratio), summed with 2**(k-1), shifted right by k.
    reference / optimized (TFLite): each input shifted left by 20 bits and rescaled to
      twice the larger input scale with a fixed-point multiplier, summed, and the sum
      rescaled to the output grid (each step gemmlowp-rounded)."""

    def __init__(self, kernels: str, a: tuple[float, int], b: tuple[float, int], out: tuple[float, int]):
        self.kernels, self.a, self.b, self.out = kernels, a, b, out
        (sa, _), (sb, _), (so, _) = a, b, out
        if kernels == "xnnpack":
            ra, rb = np.float32(sa) / np.float32(so), np.float32(sb) / np.float32(so)
            self.shift = 20 - math.frexp(float(max(ra, rb)))[1] + 1  # frexp exponent = floor(log2) + 1
            self.ma, self.mb = (int(np.rint(np.float64(r) * 2.0 ** self.shift)) for r in (ra, rb))
        else:
            twice_max = 2 * float(max(np.float32(sa), np.float32(sb)))
            self.qa = _quantize_multiplier(float(np.float32(sa)) / twice_max)
            self.qb = _quantize_multiplier(float(np.float32(sb)) / twice_max)
            self.qo = _quantize_multiplier(twice_max / ((1 << 20) * float(np.float32(so))))

    @staticmethod
    def _scale(x: torch.Tensor, qs: tuple[int, int]) -> torch.Tensor:
        q, shift = qs  # multipliers < 1 here: shift <= 0
        return _shift_round_away(_high_mul(x, q), -shift)

    def __call__(self, qa: torch.Tensor, qb: torch.Tensor) -> torch.Tensor:
        if self.kernels == "xnnpack":
            # integers below 2**31 and a division by a power of two: exact in float64
            acc = (qa.double() - self.a[1]).mul_(self.ma).add_((qb.double() - self.b[1]).mul_(self.mb))
            y = acc.add_(2.0 ** (self.shift - 1)).mul_(2.0 ** -self.shift).floor_().float()
        else:
            xa, xb = (qa - self.a[1]).to(torch.int64), (qb - self.b[1]).to(torch.int64)
            y = self._scale(self._scale(xa << 20, self.qa) + self._scale(xb << 20, self.qb), self.qo).float()
        return y.add_(self.out[1]).clamp_(0, 255)


class _ConvSpec(NamedTuple):
    layer: ConvSame | None  # None: the logits (the float model's classifier)
    weight: torch.Tensor  # q_w - z_w
    bias: torch.Tensor  # the int32 bias
    z_x: int  # input zero point
    requantize: _Requantize
    output: int  # TFLite tensor index of the output


def _traced(trace: dict | None, tensor: int, q: torch.Tensor) -> torch.Tensor:
    if trace is not None:
        trace[tensor] = q.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return q


class IntegerMobileNetV2(nn.Module):
    """Inference-only replay of the uint8 interpreter on a converted `MobileNetV2`.

    It runs the float model's own layers (weights re-quantised to the TFLite integers,
    checked to be exact; the same SAME padding, strides, residual wiring) with the
    interpreter's integer arithmetic, so its outputs are the interpreter's, bit for bit,
    for the chosen kernels. Input: uint8-valued (n, 3, 224, 224) pixels (the model's
    fixed input). Slower than the float model and not differentiable: for verification.
    `quantized(x)` gives the raw uint8 tensors; the other methods dequantise them."""

    def __init__(self, net: MobileNetV2, g: _Graph, kernels: str = "xnnpack"):
        super().__init__()
        if kernels not in KERNELS:
            raise PseudosupError(f"kernels {kernels!r}: expected one of {', '.join(KERNELS)}")
        self.net, self.kernels = net, kernels
        self.size = int(g.graph.tensors[g.graph.inputs[0]].shape[1])
        self.input_quant = quant(g, g.graph.inputs[0])
        self._convs = [self._conv(layer, op, g) for layer, op in zip(net.convs(), g.conv_ops)]
        blocks = [m for m in net.modules() if getattr(m, "residual", False)]
        self._adds = {id(b): _QuantAdd(kernels, quant(g, proj), quant(g, block_in), quant(g, op.outputs[0]))
                      for b, op, (proj, block_in) in zip(blocks, g.add_ops, g.add_inputs)}
        self._add_outputs = {id(b): op.outputs[0] for b, op in zip(blocks, g.add_ops)}
        pool, pool_name = g.pool_ops[0]
        if pool_name != "AVERAGE_POOL_2D":
            raise PseudosupError(f"{g.path}: global pooling by {pool_name}; the integer model emulates AVERAGE_POOL_2D only")
        self._pool_output = pool.outputs[0]
        self.pool_quant, self.features_quant = quant(g, pool.outputs[0]), quant(g, pool.inputs[0])
        if self.pool_quant != self.features_quant:
            raise PseudosupError(f"{g.path}: AVERAGE_POOL_2D rescales (input and output grids differ); not supported")
        self.logits = self._conv(None, g.logits_op, g)
        self.logits_quant = quant(g, g.logits_op.outputs[0])
        softmax_ops = [op for op, name in g.ops if name == "SOFTMAX"]
        if len(softmax_ops) != 1:
            raise PseudosupError(f"{g.path}: expected one SOFTMAX after the logits")
        soft = softmax_ops[0]
        self.probs_quant = quant(g, soft.outputs[0])
        # TFLite's uint8 softmax: a float32 table of exp(-s * beta * d), d = max - q
        beta, s_in = np.float32(soft.builtinOptions.beta), np.float32(quant(g, soft.inputs[0])[0])
        step = np.float32(-s_in * beta)
        self.softmax_table = np.array([math.exp(float(np.float32(step * np.float32(255 - i)))) for i in range(256)],
                                      dtype=np.float32)

    def _conv(self, layer, op, g: _Graph) -> _ConvSpec:
        """One conv (layer None = the logits) with its integers, recovered from the float
        parameters and checked to be exactly the TFLite file's."""
        (s_x, z_x), (s_w, _), (s_y, z_y) = quant(g, op.inputs[0]), quant(g, op.inputs[1]), quant(g, op.outputs[0])
        zero_w = quant(g, op.inputs[1])[1]
        s_b = float(g.graph.tensors[op.inputs[2]].quantization.scale[0])
        weight = (layer.weight if layer is not None else self.net.classifier.weight).detach().double()
        bias = (layer.bias if layer is not None else self.net.classifier.bias).detach().double()
        qw, qb = torch.round(weight / s_w), torch.round(bias / s_b)
        if ((weight / s_w - qw).abs().max() > 1e-3 or (bias / s_b - qb).abs().max() > 1e-2
                or (qw + zero_w).min() < 0 or (qw + zero_w).max() > 255):
            raise PseudosupError(f"{g.path}: the float weights of conv {op.outputs[0]} are not the TFLite integers")
        if abs(s_b / (float(np.float32(s_x) * np.float32(s_w))) - 1) > 1e-5:
            raise PseudosupError(f"{g.path}: bias scale of conv {op.outputs[0]} is not input scale x weight scale")
        bound = max(z_x, 255 - z_x) * qw.abs().flatten(1).sum(1) + qb.abs()
        if bound.max() < 1 << 24:  # every partial sum is an integer exactly representable in float32
            qw, qb = qw.float(), qb.float()
        relu6 = op.builtinOptions.fusedActivationFunction == ACT_RELU6
        lo, hi = (max(0, z_y), min(255, z_y + round(6.0 / s_y))) if relu6 else (0, 255)
        return _ConvSpec(layer, qw, qb, z_x, _Requantize(self.kernels, s_x, s_w, s_y, z_y, lo, hi), op.outputs[0])

    @staticmethod
    def _run_conv(c: _ConvSpec, x: torch.Tensor, trace: dict | None) -> torch.Tensor:
        layer = c.layer
        x = (x - c.z_x if c.z_x else x).to(c.weight.dtype)  # padding with 0 = with the zero point, as TFLite
        if layer.stride[0] > 1:
            x = F.pad(x, _same_pad(x.shape[-2], x.shape[-1], layer.kernel_size[0], layer.stride[0]))
        y = c.requantize(F.conv2d(x, c.weight, c.bias, stride=layer.stride, padding=layer.padding, groups=layer.groups))
        return _traced(trace, c.output, y)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8-valued (n, 3, 224, 224) pixels -> the quantised input (the pixels themselves:
        the input grid is u = 128 + 128 * x), as float32 codes."""
        s, z = self.input_quant
        if abs(s * 128 - 1) > 1e-6 or z != 128:
            raise PseudosupError(f"input grid scale {s}, zero point {z}: expected 1/128, 128")
        if x.shape[-2:] != (self.size, self.size):
            raise PseudosupError(f"the integer model takes {self.size}x{self.size} images, got {tuple(x.shape[-2:])}")
        x = x.float()
        if x.min() < 0 or x.max() > 255 or (x != x.round()).any():
            raise PseudosupError("the integer model takes uint8-valued pixels (0..255 integers)")
        return x

    def quantized(self, x: torch.Tensor, trace: dict | None = None) -> dict[str, torch.Tensor]:
        """Raw uint8 tensors: `features` (n, 1280, 7, 7) head conv map, `pool` (n, 1280),
        `logits` (n, 1001) and `probs` (n, 1001, the interpreter's output). trace: a dict
        to receive every intermediate tensor, keyed by its TFLite tensor index (uint8,
        NHWC like the interpreter's), for layer-by-layer comparisons."""
        x = self.normalize(x)
        convs = iter(self._convs)
        with torch.no_grad():
            for module in self.net.features:
                if not hasattr(module, "project"):
                    x = self._run_conv(next(convs), x, trace)
                    continue
                y = self._run_conv(next(convs), x, trace) if module.expand is not None else x
                y = self._run_conv(next(convs), y, trace)  # depthwise
                y = self._run_conv(next(convs), y, trace)  # linear projection
                if module.residual:
                    y = _traced(trace, self._add_outputs[id(module)], self._adds[id(module)](y, x))
                x = y
            feats = x
            n = feats.shape[-2] * feats.shape[-1]
            pool = torch.div(feats.sum(dim=(2, 3)) + n // 2, n, rounding_mode="floor")  # TFLite: (sum + n/2) / n
            _traced(trace, self._pool_output, pool[:, :, None, None])
            c = self.logits
            logits = c.requantize((pool - c.z_x).to(c.weight.dtype) @ c.weight.reshape(len(c.weight), -1).T + c.bias)
            _traced(trace, c.output, logits[:, :, None, None])
        out = {"features": feats, "pool": pool, "logits": logits, "probs": torch.from_numpy(self._softmax(logits))}
        return {k: v.to(torch.uint8) for k, v in out.items()}

    def _softmax(self, logits: torch.Tensor) -> np.ndarray:
        """TFLite's uint8 softmax: table lookups relative to the row maximum, summed in float32
        in index order, scaled by 1 / (sum * s_out), rounded by adding 0.5 and truncating."""
        q = logits.numpy().astype(np.int64)
        e = self.softmax_table[255 - q.max(axis=1, keepdims=True) + q]
        total = np.zeros(len(q), np.float32)
        for j in range(q.shape[1]):  # sequential float32 sum, as the kernel's loop
            total += e[:, j]
        s_out, z_out = self.probs_quant
        inv = np.float32(1.0) / (total * np.float32(s_out))
        p = (e * inv[:, None] + np.float32(0.5)).astype(np.int64) + z_out
        return np.clip(p, 0, 255)

    def _dequantize(self, q: torch.Tensor, grid: tuple[float, int]) -> torch.Tensor:
        return (q.float() - grid[1]) * grid[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._dequantize(self.quantized(x)["features"], self.features_quant)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self._dequantize(self.quantized(x)["pool"], self.pool_quant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._dequantize(self.quantized(x)["logits"], self.logits_quant)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return self._dequantize(self.quantized(x)["probs"], self.probs_quant)


def load_integer_mobilenet_v2(path: str | Path, kernels: str = "xnnpack") -> IntegerMobileNetV2:
    """The converted MobileNetV2 run with the uint8 interpreter's integer arithmetic (see
    `IntegerMobileNetV2`): bit-exact with `tflite_interpreter(path, kernels=kernels)`."""
    net, g = _convert(path)
    return IntegerMobileNetV2(net, g, kernels).eval()
