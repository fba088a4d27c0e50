"""The TFLite -> torch MobileNetV2 converter against the TFLite interpreter (ai-edge-litert):
the float model (the default) and the exact integer model (tests/tflite_oracle.py);
TensorFlow SAME padding; the fine-tuning API."""

from __future__ import annotations

import tarfile
import time

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pseudosup.features.mobilenet import ConvSame, MobileNetV2, _same_pad
from pseudosup.io import PseudosupError

from .conftest import SHARED

TFLITE = SHARED / "coral" / "mobilenet_v2_1.0_224_quant.tflite"


def test_same_padding_matches_tensorflow_definition():
    """Output size ceil(n / s); the odd padding pixel goes after (bottom/right)."""
    torch.manual_seed(0)
    for k, s in ((3, 2), (3, 1), (1, 1), (1, 2)):
        conv = ConvSame(2, 3, k, stride=s, act=False)
        for h, w in ((8, 8), (7, 9), (9, 8), (1, 2), (224, 224), (33, 17)):
            x = torch.randn(1, 2, h, w)
            ref = F.conv2d(F.pad(x, _same_pad(h, w, k, s)), conv.weight, conv.bias, stride=s)
            got = conv(x)
            assert got.shape[-2:] == (-(-h // s), -(-w // s))
            assert torch.allclose(got, ref, atol=1e-5), (k, s, h, w)
    assert _same_pad(224, 224, 3, 2) == (0, 1, 0, 1)  # TF: nothing before, one after


def test_architecture_and_finetuning_api():
    net = MobileNetV2()
    x = net.normalize(torch.randint(0, 256, (2, 3, 96, 128)))
    fmap = net.features(x)
    assert fmap.shape == (2, 1280, 3, 4)
    assert net.pooled(x).shape == (2, 1280)
    logits = net(x)
    assert logits.shape == (2, 1001)
    assert len(net.convs()) == 52  # stem + 17 blocks (16 with expansion) + head
    logits.sum().backward()  # every part is trainable
    assert all(p.grad is not None for p in net.parameters())


def _cifar_500() -> np.ndarray:
    """500 CIFAR-10 test images (50 per class), upscaled to 224 x 224 (bilinear)."""
    import cv2

    with tarfile.open(SHARED / "cifar10-test-jpg.tar") as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)
        by_class: dict[str, list] = {}
        for m in members:
            by_class.setdefault(m.name.split("/")[-2], []).append(m)
        picked = [m for ms in by_class.values() for m in ms[:50]]
        imgs = [cv2.imdecode(np.frombuffer(tf.extractfile(m).read(), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
                for m in picked]
    return np.stack([cv2.resize(np.ascontiguousarray(i), (224, 224), interpolation=cv2.INTER_LINEAR) for i in imgs])


def _coral_photos() -> np.ndarray:
    import cv2

    from pseudosup.features.images import read_image, to_layout

    paths = sorted(p for p in (SHARED / "coral").iterdir() if p.suffix in (".jpg", ".bmp"))
    assert len(paths) == 8
    return np.stack([cv2.resize(to_layout(read_image(p), True)[0], (224, 224), interpolation=cv2.INTER_AREA)
                     for p in paths])


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """The issue's verification set: the 8 coral photos + 500 CIFAR-10 test images, 224 x 224 uint8."""
    return np.concatenate([_coral_photos(), _cifar_500()])


@pytest.fixture(scope="module")
def reference(images):
    """The default TFLite interpreter's (XNNPACK kernels) raw uint8 outputs on `images`:
    pool (penultimate AvgPool, 1280-d), logits, probs (the softmax output). Cached for
    the module (a few seconds)."""
    pytest.importorskip("ai_edge_litert")
    from .tflite_oracle import interpreter_outputs, tflite_interpreter

    t0 = time.time()
    out = interpreter_outputs(tflite_interpreter(TFLITE, threads=2, keep_all=True), images)
    print(f"\nTFLite interpreter (xnnpack): {len(images)} images in {time.time() - t0:.1f} s")
    return out


def _measure(name: str, top1: np.ndarray, feats: np.ndarray, ref: dict, seconds: float) -> dict:
    """Top-1 agreement with the interpreter's output (argmax of its uint8 softmax, first
    index among ties) and with ties counted as agreement (`tie_aware`: our top-1 is one
    of the interpreter's tied top classes), and the cosine of the penultimate features
    (the interpreter's dequantised AvgPool; its scale cancels in the cosine)."""
    probs = ref["probs"].astype(np.int64)
    strict = top1 == probs.argmax(1)
    tie = probs[np.arange(len(top1)), top1] == probs.max(1)
    pool = ref["pool"].astype(np.float64)
    cos = (feats * pool).sum(1) / np.linalg.norm(feats, axis=1) / np.linalg.norm(pool, axis=1)
    m = {"top1": strict.mean(), "photos": strict[:8].mean(), "cifar": strict[8:].mean(), "tie_aware": tie.mean(),
         "cos_median": np.median(cos), "cos_min": cos.min(), "cos_photos": np.median(cos[:8])}
    print(f"\n{name}, {len(top1)} images: top-1 agreement {m['top1']:.4f} (photos {strict[:8].sum()}/8, "
          f"CIFAR {m['cifar']:.4f}; ties counted {m['tie_aware']:.4f}), median cosine {m['cos_median']:.5f} "
          f"(min {m['cos_min']:.4f}; photos {m['cos_photos']:.5f}), {seconds:.1f} s")
    return m


def _float_model(images, emulate: bool):
    from pseudosup.features.tflite import load_mobilenet_v2

    from .tflite_oracle import load_uint8_grid_mobilenet_v2

    t0 = time.time()
    net = (load_uint8_grid_mobilenet_v2 if emulate else load_mobilenet_v2)(TFLITE)
    net = net.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        x = net.normalize(torch.from_numpy(images).permute(0, 3, 1, 2))
        feats = torch.cat([net.pooled(x[a:a + 16].contiguous(memory_format=torch.channels_last))
                           for a in range(0, len(x), 16)])
        logits = net.logits_quant(net.classifier(feats)).numpy()
    return logits, feats.numpy().astype(np.float64), time.time() - t0


@pytest.mark.shared_data
def test_float_model_agrees_with_tflite_interpreter(images, reference):
    """The default (float) model against the uint8 interpreter. Measured: 8/8 on the
    photos (median cosine 0.9986), 0.795 top-1 overall, median cosine 0.988. The issue's
    cosine bound (>= 0.98) is met; its top-1 bound (>= 97%) is NOT, and cannot be by a
    float model: the low-margin predictions on upscaled CIFAR images flip under the uint8
    model's rounding, so much that the interpreter's own kernel sets disagree with each
    other about as often (test_interpreter_kernel_sets_disagree). The exact integer
    model meets the bounds (test_integer_model_meets_the_issue_bounds). Guards the level."""
    logits, feats, sec = _float_model(images, emulate=False)
    m = _measure("float torch model", logits.argmax(1), feats, reference, sec)
    assert m["photos"] == 1.0
    assert m["cos_median"] >= 0.98  # the issue's bound
    assert m["top1"] >= 0.75 and m["tie_aware"] >= m["top1"]  # measured 0.795 (ties counted: 0.809)
    labels = (SHARED / "coral" / "imagenet_labels.txt").read_text().splitlines()
    names = [labels[i].lower() for i in logits[:8].argmax(1)]
    assert any("cat" in n for n in names) and any("hot" in n and "dog" in n for n in names)


@pytest.mark.slow
@pytest.mark.shared_data
def test_uint8_rounding_is_closer(images, reference):
    """Rounding activations to the uint8 grids in float (the oracle's uint8-grid model) brings the
    features closer (median cosine 0.998) and the top-1 agreement to 0.886: still not
    the interpreter's integer arithmetic (see the integer model)."""
    logits, feats, sec = _float_model(images, emulate=True)
    m = _measure("float model, activations rounded to uint8", logits.argmax(1), feats, reference, sec)
    assert m["photos"] == 1.0
    assert m["cos_median"] >= 0.99
    assert m["top1"] >= 0.85


def _integer_outputs(net, images, batch: int = 16) -> dict:
    outs = [net.quantized(torch.from_numpy(images[a:a + batch]).permute(0, 3, 1, 2))
            for a in range(0, len(images), batch)]
    return {k: torch.cat([o[k] for o in outs]).numpy() for k in ("pool", "logits", "probs")}


@pytest.mark.shared_data
@pytest.mark.parametrize("kernels", ["xnnpack", "optimized", "reference"])
def test_integer_model_is_bit_exact_layer_by_layer(images, kernels):
    """The integer model (the converted float model's layers, re-quantised, with the
    interpreter's integer arithmetic) reproduces every intermediate uint8 tensor of the
    interpreter exactly: all 52 convolutions, 10 residual ADDs, the pool, the logits and
    the softmax output, for each of the interpreter's kernel sets (a photo and a CIFAR
    image; the 508 images for the default kernels: test_integer_model_meets_the_issue_bounds)."""
    pytest.importorskip("ai_edge_litert")
    from .tflite_oracle import load_integer_mobilenet_v2, tflite_interpreter

    imgs = images[[0, 100]]
    net = load_integer_mobilenet_v2(TFLITE, kernels=kernels)
    trace: dict = {}
    ours = net.quantized(torch.from_numpy(imgs).permute(0, 3, 1, 2), trace=trace)
    assert len(trace) == 52 + 10 + 1 + 1  # convs, ADDs, pool, logits
    it = tflite_interpreter(TFLITE, keep_all=True, kernels=kernels)
    for i, img in enumerate(imgs):
        it.set_tensor(it.get_input_details()[0]["index"], img[None])
        it.invoke()
        for tensor, q in trace.items():
            np.testing.assert_array_equal(q[i:i + 1], it.get_tensor(tensor).reshape(q[i:i + 1].shape),
                                          err_msg=f"tensor {tensor}")
        probs = it.get_tensor(it.get_output_details()[0]["index"])[0].astype(np.int64)
        diff = np.abs(ours["probs"][i].numpy().astype(np.int64) - probs)
        # the reference kernels' softmax is fixed point, ours (and the other kernels') a float table:
        # 2 of the 508 x 1001 probabilities differ by one step (measured); the others are exact
        assert diff.max() <= (1 if kernels == "reference" else 0)


@pytest.mark.slow
@pytest.mark.shared_data
def test_integer_model_meets_the_issue_bounds(images, reference):
    """On the issue's 508 images the integer model's pool, logits and softmax outputs equal
    the default interpreter's bit for bit: top-1 agreement 1.0 (>= 0.97) and cosine 1.0
    (>= 0.98). The conversion (graph, weights, padding) is therefore exact, and the float
    model's remaining disagreement is the uint8 quantisation itself."""
    from .tflite_oracle import load_integer_mobilenet_v2

    t0 = time.time()
    ours = _integer_outputs(load_integer_mobilenet_v2(TFLITE), images)
    m = _measure("integer model (xnnpack)", ours["probs"].argmax(1), ours["pool"].astype(np.float64), reference,
                 time.time() - t0)
    for k in ("pool", "logits", "probs"):
        np.testing.assert_array_equal(ours[k], reference[k], err_msg=k)
    assert m["top1"] >= 0.97 and m["cos_median"] >= 0.98  # the issue's bounds (measured: 1.0 and 1.0)


@pytest.mark.shared_data
def test_interpreter_kernel_sets_disagree(images, reference):
    """Why no float model can reach 97% top-1 here: the interpreter's own kernel sets run
    the same uint8 model with different (all legitimate) requantisation rounding, and on
    these images TFLite's optimised kernels agree with the default XNNPACK ones on only
    0.817 of the top-1 predictions (the reference kernels: 0.807, measured once)."""
    from .tflite_oracle import interpreter_outputs, tflite_interpreter

    other = interpreter_outputs(tflite_interpreter(TFLITE, threads=2, keep_all=True, kernels="optimized"), images)
    agree = (other["probs"].argmax(1) == reference["probs"].argmax(1)).mean()
    print(f"\ninterpreter, optimized vs xnnpack kernels: top-1 agreement {agree:.4f}")
    assert 0.7 <= agree <= 0.9  # measured 0.817
    assert (other["probs"][:8].argmax(1) == reference["probs"][:8].argmax(1)).all()


def test_fixed_point_helpers_match_their_definitions():
    """The integer-arithmetic helpers against exact rational arithmetic, ties included."""
    from fractions import Fraction
    from math import floor

    from .tflite_oracle import _high_mul, _quantize_multiplier, _shift_round_away, _shift_round_up

    rng = np.random.default_rng(0)
    for real in [*rng.uniform(1e-6, 0.999, 200), 0.5, 0.25, 1 - 2.0 ** -40, 3.5]:
        q, shift = _quantize_multiplier(float(real))
        assert 1 << 30 <= q < 1 << 31
        assert abs(Fraction(q) * Fraction(2) ** (shift - 31) - Fraction(float(real))) <= Fraction(2) ** (shift - 32)
    a = np.concatenate([rng.integers(-(1 << 31) + 1, 1 << 31, 500), [0, 1, -1, 1 << 30, -(1 << 30)]])
    for q in (1 << 30, (1 << 31) - 1, 1518500250):
        got = _high_mul(torch.from_numpy(a), q).numpy()
        want = [floor(Fraction(int(v) * q, 1 << 31) + Fraction(1, 2)) for v in a]  # nearest, ties up
        assert got.tolist() == want
    x = np.concatenate([rng.integers(-(1 << 20), 1 << 20, 500), np.arange(-40, 41)])
    for e in (1, 3, 8):
        v = [Fraction(int(t), 1 << e) for t in x]
        away = [int(np.sign(f)) * floor(abs(f) + Fraction(1, 2)) for f in v]
        up = [floor(f + Fraction(1, 2)) for f in v]
        assert _shift_round_away(torch.from_numpy(x), e).tolist() == away
        assert _shift_round_up(torch.from_numpy(x), e).tolist() == up


@pytest.mark.shared_data
def test_converter_refuses_other_networks(tmp_path):
    from pseudosup.features.tflite import load_mobilenet_v2

    with pytest.raises(PseudosupError, match="convolutions, expected"):
        load_mobilenet_v2(SHARED / "coral" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(TFLITE.read_bytes()[:1000])
    with pytest.raises(PseudosupError, match="broken.tflite"):
        load_mobilenet_v2(bad)
    with pytest.raises(PseudosupError, match="not found"):
        load_mobilenet_v2(tmp_path / "missing.tflite")


@pytest.mark.shared_data
def test_integer_model_refuses_what_it_cannot_emulate():
    from pseudosup.features.tflite import load_mobilenet_v2

    from .tflite_oracle import load_integer_mobilenet_v2

    ptq = SHARED / "coral" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"  # int8 per-channel: the float converter only
    load_mobilenet_v2(ptq)
    with pytest.raises(PseudosupError, match="only the uint8 TFLite model"):
        load_integer_mobilenet_v2(ptq)
    with pytest.raises(PseudosupError, match="kernels 'gpu'"):
        load_integer_mobilenet_v2(TFLITE, kernels="gpu")
    net = load_integer_mobilenet_v2(TFLITE)
    with pytest.raises(PseudosupError, match="224x224"):
        net.quantized(torch.zeros(1, 3, 96, 96, dtype=torch.uint8))
    with pytest.raises(PseudosupError, match="uint8-valued"):
        net.pooled(torch.full((1, 3, 224, 224), 0.5))
