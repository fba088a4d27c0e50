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
network: activations are not re-quantised, which is why the converted model agrees
with the uint8 interpreter only approximately (tests/test_features_tflite.py
measures how closely).
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


def load_mobilenet_v2(path: str | Path, emulate_uint8: bool = False) -> MobileNetV2:
    """The float torch MobileNetV2 equivalent to a uint8 (or int8) TFLite MobileNetV2 1.0.

    emulate_uint8: also round every activation (conv outputs, residual sums, the pooled
    features) to the uint8 grid of the corresponding TFLite tensor, as the quantised
    interpreter does (its integer requantisation rounding is not reproduced bit for
    bit). Off by default: features are then those of the float network."""
    path = Path(path)
    S, model = _read_model(path)
    graph = model.subgraphs[0]
    ops = [(op, _op_name(S, model, op)) for op in graph.operators]
    convs = [(op, name) for op, name in ops if name in CONV_OPS]
    net = MobileNetV2(n_classes=1001)
    layers = net.convs()
    if len(convs) != len(layers) + 1:
        raise PseudosupError(f"{path}: {len(convs)} convolutions, expected {len(layers) + 1} for MobileNetV2 1.0 "
                             "(another network or width multiplier?)")
    for i, ((op, name), layer) in enumerate(zip(convs, layers)):
        _fill_conv(S, model, graph, op, name, layer, path, i)
    _fill_classifier(model, graph, convs[-1][0], net, path)
    adds = [op for op, name in ops if name == "ADD"]
    blocks = [m for m in net.modules() if getattr(m, "residual", False)]
    if len(adds) != len(blocks):
        raise PseudosupError(f"{path}: {len(adds)} residual ADDs, expected {len(blocks)}")
    _set_input_normalisation(graph, net)
    if emulate_uint8:
        pools = [op for op, name in ops if name == "AVERAGE_POOL_2D"]
        targets = [(op, layer.quant) for (op, _), layer in zip(convs, layers)]
        targets += [(op, b.add_quant) for op, b in zip(adds, blocks)] + [(op, net.pool_quant) for op in pools[:1]]
        targets.append((convs[-1][0], net.logits_quant))
        for op, fq in targets:
            qp = graph.tensors[op.outputs[0]].quantization
            if qp is None or qp.scale is None or not len(qp.scale):
                raise PseudosupError(f"{path}: activations are not uint8-quantised; cannot emulate")
            fq.set_grid(float(qp.scale[0]), float(qp.zeroPoint[0]))
    return net.eval()


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


def tflite_interpreter(path: str | Path, threads: int = 1, keep_all: bool = False):
    """The reference uint8 interpreter (ai-edge-litert), for verification."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads, experimental_preserve_all_tensors=keep_all)
    it.allocate_tensors()
    return it


def run_interpreter(it, images_u8: np.ndarray, penultimate: str = "MobilenetV2/Logits/AvgPool"):
    """Class scores (dequantised) and dequantised penultimate features of uint8
    (n, 224, 224, 3) images, one at a time (the model has batch 1)."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    pen = next((t for t in it.get_tensor_details() if t["name"] == penultimate), None)
    scores, feats = [], []
    for img in images_u8:
        it.set_tensor(inp["index"], img[None])
        it.invoke()
        s, z = out["quantization"]
        scores.append((it.get_tensor(out["index"])[0].astype(np.float32) - z) * s)
        if pen is not None:
            ps, pz = pen["quantization"]
            feats.append((it.get_tensor(pen["index"]).reshape(-1).astype(np.float32) - pz) * ps)
    return np.stack(scores), (np.stack(feats) if feats else None)
