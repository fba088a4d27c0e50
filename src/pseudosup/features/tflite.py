"""Convert the bundled uint8 TFLite MobileNetV2 into the float torch `MobileNetV2`.

The .tflite file is a flatbuffer; we read it with the schema module that ships with
`ai-edge-litert` (a pinned dependency) and take, operator by operator in execution
order, every CONV_2D / DEPTHWISE_CONV_2D: its weights are dequantised
(w = scale * (q - zero_point), per tensor or per output channel), batch norm is
already folded into them by the TF converter, and the fused activation must be RELU6
(or none for the linear projections and the logits). The graph is checked against
the architecture as we go (shapes, strides, SAME padding, activation, the residual
ADDs), so any other network is refused with a clear message instead of being
half-loaded.

The logits 1x1 conv becomes `classifier` (nn.Linear). Everything else is the float
network: activations are not re-quantised, so the float model agrees with the uint8
interpreter only approximately. tests/tflite_oracle.py replays the interpreter's
integer arithmetic on the same converted model, bit for bit, which shows that the
conversion itself (graph, weights, padding) is exact; tests/test_features_tflite.py
measures the float model's residual disagreement.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..io import PseudosupError
from .mobilenet import MobileNetV2

CONV_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D"}
# TFLite enums (schema.fbs): Padding SAME = 0; ActivationFunctionType NONE = 0, RELU6 = 3
PAD_SAME, ACT_NONE, ACT_RELU6 = 0, 0, 3


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as S
    except ImportError as e:  # pragma: no cover - pinned in requirements.lock
        raise PseudosupError(f"reading .tflite files needs the package ai-edge-litert ({e}); "
                             "run `make setup`") from None
    return S


def _read_model(path: Path):
    S = _schema()
    if not path.is_file():
        raise PseudosupError(f"{path}: TFLite model not found (the bundled one is "
                             "../shared/data/coral/mobilenet_v2_1.0_224_quant.tflite)")
    buf = path.read_bytes()
    try:
        if not S.Model.ModelBufferHasIdentifier(buf, 0):
            raise ValueError("no TFL3 identifier")
        model = S.ModelT.InitFromObj(S.Model.GetRootAs(buf, 0))
    except Exception as e:
        raise PseudosupError(f"{path}: not a readable TFLite flatbuffer ({e})") from None
    return S, model


def _op_name(S, model, op) -> str:
    oc = model.operatorCodes[op.opcodeIndex]
    code = max(oc.builtinCode, oc.deprecatedBuiltinCode)  # the schema keeps both fields
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(code, str(code))


def _dequantize(model, tensor, path: Path) -> np.ndarray:
    data = model.buffers[tensor.buffer].data
    if data is None:
        raise PseudosupError(f"{path}: tensor {tensor.name!r} has no constant data")
    dtype = {2: np.int32, 3: np.uint8, 9: np.int8, 0: np.float32}.get(tensor.type)
    if dtype is None:
        raise PseudosupError(f"{path}: tensor {tensor.name!r} of unsupported type {tensor.type}")
    q = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dtype).reshape(tensor.shape)
    if dtype is np.float32:
        return q.astype(np.float32)
    qp = tensor.quantization
    scale = np.asarray(qp.scale, dtype=np.float64)
    zero = np.asarray(qp.zeroPoint if qp.zeroPoint is not None else [0], dtype=np.float64)
    if scale.size > 1:  # per-channel along quantizedDimension
        shape = [1] * q.ndim
        shape[qp.quantizedDimension] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(np.float64) - zero) * scale).astype(np.float32)


class _Graph:
    """The TFLite graph matched to a converted `MobileNetV2`: for every conv layer its
    operator, for every residual block its ADD, the pool, the logits and the softmax."""

    def __init__(self, path: Path, S, model, net: MobileNetV2):
        self.path, self.model = path, model
        graph = self.graph = model.subgraphs[0]
        ops = [(op, _op_name(S, model, op)) for op in graph.operators]
        convs = [(op, name) for op, name in ops if name in CONV_OPS]
        layers = net.convs()
        if len(convs) != len(layers) + 1:
            raise PseudosupError(f"{path}: {len(convs)} convolutions, expected {len(layers) + 1} for MobileNetV2 1.0 "
                                 "(another network or width multiplier?)")
        for i, ((op, name), layer) in enumerate(zip(convs, layers)):
            _fill_conv(S, model, graph, op, name, layer, path, i)
        _fill_classifier(model, graph, convs[-1][0], net, path)
        self.conv_ops = [op for op, _ in convs[:-1]]
        self.logits_op = convs[-1][0]
        self.add_ops = [op for op, name in ops if name == "ADD"]
        blocks = [m for m in net.modules() if getattr(m, "residual", False)]
        if len(self.add_ops) != len(blocks):
            raise PseudosupError(f"{path}: {len(self.add_ops)} residual ADDs, expected {len(blocks)}")
        self.pool_ops = [(op, name) for op, name in ops if name in ("AVERAGE_POOL_2D", "MEAN")]
        self.ops = ops  # (operator, name) in execution order
        self._check_wiring(net, [op for op, name in ops if name == "QUANTIZE"])

    def _check_wiring(self, net: MobileNetV2, quantize_ops: list) -> None:
        """Each conv reads the tensor the previous step wrote (the first one the input, or
        its QUANTIZE to int8); each residual ADD adds the block's projection to the block's
        input; the pool reads the head conv and the logits read the pool."""
        convs, adds = iter(self.conv_ops), iter(self.add_ops)
        current = self.graph.inputs[0]
        current = next((op.outputs[0] for op in quantize_ops if op.inputs[0] == current), current)
        self.add_inputs: list[tuple[int, int]] = []  # (projection, block input) tensors of each ADD

        def conv(name: str) -> int:
            op = next(convs)
            if op.inputs[0] != current:
                raise PseudosupError(f"{self.path}: {name} does not read the previous layer's output "
                                     "(not a plain MobileNetV2 graph)")
            return op.outputs[0]

        for i, module in enumerate(net.features):
            if not hasattr(module, "project"):
                current = conv(f"layer {i}")
                continue
            block_in = current
            for part in ("expand", "depthwise", "project"):
                if getattr(module, part) is not None:
                    current = conv(f"block {i} {part}")
            if module.residual:
                op = next(adds)
                if sorted(op.inputs) != sorted([current, block_in]):
                    raise PseudosupError(f"{self.path}: the ADD of block {i} does not add its input to its projection")
                self.add_inputs.append((current, block_in))
                current = op.outputs[0]
        pool = self.pool_ops[0][0] if self.pool_ops else None
        if pool is None or pool.inputs[0] != current or self.logits_op.inputs[0] != pool.outputs[0]:
            raise PseudosupError(f"{self.path}: the head conv is not followed by a global average pool and the logits conv")


def _convert(path: str | Path) -> tuple[MobileNetV2, _Graph]:
    path = Path(path)
    S, model = _read_model(path)
    net = MobileNetV2(n_classes=1001)
    g = _Graph(path, S, model, net)
    _set_input_normalisation(g.graph, net)
    return net.eval(), g


def load_mobilenet_v2(path: str | Path) -> MobileNetV2:
    """The float torch MobileNetV2 equivalent to a uint8 (or int8) TFLite MobileNetV2 1.0:
    activations are not re-quantised (fast, differentiable). How closely it agrees with
    the uint8 interpreter is measured by tests/test_features_tflite.py against an exact
    integer emulation of the interpreter (tests/tflite_oracle.py)."""
    return _convert(path)[0]


def _fill_conv(S, model, graph, op, name, layer, path: Path, i: int) -> None:
    opt = op.builtinOptions
    w = _dequantize(model, graph.tensors[op.inputs[1]], path)
    b = _dequantize(model, graph.tensors[op.inputs[2]], path)
    if name == "DEPTHWISE_CONV_2D":
        w = w.transpose(3, 0, 1, 2)  # (1, kh, kw, C) -> (C, 1, kh, kw)
        ok = layer.groups == layer.in_channels
    else:
        w = w.transpose(0, 3, 1, 2)  # (O, kh, kw, I) -> (O, I, kh, kw)
        ok = layer.groups == 1
    want_act = ACT_RELU6 if layer.act else ACT_NONE
    if (not ok or tuple(w.shape) != tuple(layer.weight.shape) or opt.strideH != layer.stride[0]
            or opt.padding != PAD_SAME or opt.fusedActivationFunction != want_act):
        raise PseudosupError(f"{path}: convolution {i} ({name}, weights {tuple(w.shape)}, stride {opt.strideH}, "
                             f"padding {opt.padding}, activation {opt.fusedActivationFunction}) does not match "
                             f"MobileNetV2 layer {i} (weights {tuple(layer.weight.shape)}, stride {layer.stride[0]})")
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
        layer.bias.copy_(torch.from_numpy(b))


def _fill_classifier(model, graph, op, net: MobileNetV2, path: Path) -> None:
    w = _dequantize(model, graph.tensors[op.inputs[1]], path)
    b = _dequantize(model, graph.tensors[op.inputs[2]], path)
    w = w.reshape(w.shape[0], -1)
    if w.shape != tuple(net.classifier.weight.shape):
        raise PseudosupError(f"{path}: logits layer {w.shape}, expected {tuple(net.classifier.weight.shape)}")
    with torch.no_grad():
        net.classifier.weight.copy_(torch.from_numpy(w))
        net.classifier.bias.copy_(torch.from_numpy(b))


def _set_input_normalisation(graph, net: MobileNetV2) -> None:
    """The input tensor's quantisation says how uint8 pixels map to the float input."""
    t = graph.tensors[graph.inputs[0]]
    qp = t.quantization
    if t.type == 3 and qp is not None and qp.scale is not None and len(qp.scale):
        net.pixel_mean.fill_(float(qp.zeroPoint[0]))
        net.pixel_std.fill_(1.0 / float(qp.scale[0]))
