"""Fine-tuning with complementary supervision: the loss by its definition, training on
a constructed problem (a tiny CNN stands in for MobileNetV2), reproducibility,
frozen layers, self-describing checkpoints, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pseudosup.evaluation.protocols import class_map, rank_by_scores
from pseudosup.io import PseudosupError
from pseudosup.methods import finetune as FT
from pseudosup.mining.knn import knn_graph

from .conftest import SHARED


def tiny_trunk(seed=0, width=8):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU()),
                         nn.Sequential(nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU()),
                         nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.ReLU()),
                         nn.Sequential(nn.Conv2d(2 * width, 4 * width, 1), nn.ReLU()))


def grouped_images(n_groups=12, per=4, seed=0):
    """Groups of noisy, shifted copies of random base images."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n_groups, 32, 32, 3))
    imgs, groups = [], []
    for g in range(n_groups):
        for _ in range(per):
            im = np.roll(base[g], rng.integers(-3, 4, 2), axis=(0, 1)) + rng.normal(0, 60, (32, 32, 3))
            imgs.append(np.clip(im, 0, 255).astype(np.uint8))
            groups.append(g)
    return imgs, np.array(groups)


def normalize(x):
    return (x.float() - 128) / 64


def setup(trainable=2, seed=0):
    imgs, groups = grouped_images()
    trunk = tiny_trunk(seed)
    prefix, head = FT.split_trunk(trunk, trainable)
    acts, report = FT.prefix_activations(imgs, prefix, normalize, 32, batch=10, min_side=8)
    pairs = np.array([(i, j) for i in range(len(groups)) for j in range(i + 1, len(groups)) if groups[i] == groups[j]])
    f0 = FT.describe(head, acts, "gem", 3.0)
    _, nbrs = knn_graph(f0, len(groups) - 1)
    return trunk, prefix, head, acts, pairs, nbrs, groups


def group_map(F, groups):
    n = len(F)
    return class_map(rank_by_scores(F @ F.T, np.arange(n)), groups, groups, np.arange(n))[0]


def test_loss_terms_by_definition():
    rng = np.random.default_rng(0)
    def t(*s):
        return torch.from_numpy(rng.standard_normal(s).astype(np.float32))
    fa, fp, fn, f, f0 = t(3, 4), t(3, 4), t(3, 2, 4), t(5, 4), t(5, 4)
    s = FT.FinetuneSettings(margin=0.5)
    rank, drift = FT.loss_terms(fa, fp, fn, f, f0, s)
    want = np.mean([max(0, 0.5 + float(((fa[b] - fp[b]) ** 2).sum()) - float(((fa[b] - fn[b, m]) ** 2).sum()))
                    for b in range(3) for m in range(2)])
    assert float(rank) == pytest.approx(want, rel=1e-5)
    assert float(drift) == pytest.approx(float(((f - f0) ** 2).sum(1).mean()), rel=1e-5)
    s2 = FT.FinetuneSettings(loss="contrastive", margin=1.5)
    rank2, _ = FT.loss_terms(fa, fp, fn, f, f0, s2)
    want2 = np.mean([float(((fa[b] - fp[b]) ** 2).sum()) for b in range(3)]) + np.mean(
        [max(0, 1.5 - float(((fa[b] - fn[b, m]) ** 2).sum()) ** 0.5) ** 2 for b in range(3) for m in range(2)])
    assert float(rank2) == pytest.approx(want2, rel=1e-5)


def test_finetuning_on_mined_pairs_improves_retrieval_and_keeps_prefix_frozen():
    trunk, prefix, head, acts, pairs, nbrs, groups = setup()
    before_prefix = {k: v.clone() for k, v in prefix.state_dict().items()}
    before_head = {k: v.clone() for k, v in head.state_dict().items()}
    s = FT.FinetuneSettings(trainable_blocks=2, epochs=6, batch_size=16, lr=3e-3, lam=0.1, negatives=3,
                            neg_min_rank=8, neg_max_rank=None, seed=1)
    hist = FT.finetune(head, acts, pairs, nbrs, s, callback=lambda e, F: {"map": group_map(F, groups)})
    assert [h["epoch"] for h in hist] == list(range(7))
    assert hist[-1]["map"] > hist[0]["map"] + 0.05, [h["map"] for h in hist]
    assert hist[-1]["ranking"] < hist[1]["ranking"]
    assert all(torch.equal(v, prefix.state_dict()[k]) for k, v in before_prefix.items())
    assert any(not torch.equal(v, head.state_dict()[k]) for k, v in before_head.items())


def test_drift_term_keeps_features_near_pretrained():
    maps = []
    for lam in (0.0, 1000.0):
        trunk, prefix, head, acts, pairs, nbrs, groups = setup()
        f0 = FT.describe(head, acts, "gem", 3.0)
        s = FT.FinetuneSettings(trainable_blocks=2, epochs=3, batch_size=16, lr=3e-3, lam=lam, negatives=3,
                                neg_min_rank=8, neg_max_rank=None, seed=1)
        FT.finetune(head, acts, pairs, nbrs, s)
        maps.append(float(((FT.describe(head, acts, "gem", 3.0) - f0) ** 2).sum(1).mean()))
    assert maps[1] < 0.2 * maps[0]


def test_reproducible_with_seed():
    runs = []
    for _ in range(2):
        trunk, prefix, head, acts, pairs, nbrs, groups = setup()
        s = FT.FinetuneSettings(trainable_blocks=2, epochs=2, batch_size=16, negatives=2, neg_min_rank=8,
                                neg_max_rank=30, seed=5)
        h = FT.finetune(head, acts, pairs, nbrs, s)
        runs.append(([r.get("loss") for r in h], FT.describe(head, acts, "gem", 3.0)))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])


def test_negatives_are_far_and_never_positives():
    trunk, prefix, head, acts, pairs, nbrs, groups = setup()
    s = FT.FinetuneSettings(negatives=4, neg_min_rank=5, neg_max_rank=20)
    anchors = pairs[:, 0]
    neg = FT.sample_negatives(nbrs, anchors, pairs, s, len(acts), np.random.default_rng(0))
    pos = {(min(a, b), max(a, b)) for a, b in pairs.tolist()}
    for a, row in zip(anchors, neg):
        ranks = [list(nbrs[a]).index(x) for x in row]
        assert all(5 <= r < 20 for r in ranks)
        assert not any((min(a, x), max(a, x)) in pos for x in row)
    with pytest.raises(PseudosupError, match="fewer than"):
        FT.sample_negatives(nbrs, anchors, pairs, FT.FinetuneSettings(negatives=30, neg_min_rank=5, neg_max_rank=20),
                            len(acts), np.random.default_rng(0))


def test_checkpoint_is_self_describing_and_refuses_another_backbone(tmp_path):
    trunk = tiny_trunk(0)
    FT.save_checkpoint(tmp_path / "ft.pt", trunk, {"backbone": "tiny", "trainable_blocks": 2})
    other = tiny_trunk(1)
    meta = FT.load_checkpoint(tmp_path / "ft.pt", other, "tiny")
    assert meta["trainable_blocks"] == 2 and meta["kind"] == FT.KIND
    assert all(torch.equal(a, b) for a, b in zip(trunk.state_dict().values(), other.state_dict().values()))
    with pytest.raises(PseudosupError, match="checkpoint of backbone 'tiny'.*this model is 'mobilenet_v2'"):
        import torchvision
        FT.load_checkpoint(tmp_path / "ft.pt", torchvision.models.mobilenet_v2().features, "mobilenet_v2")
    with pytest.raises(PseudosupError, match="this model is 'tiny'"):
        FT.load_checkpoint(tmp_path / "ft.pt", tiny_trunk(0, width=4), "tiny")  # same name, other shapes
    torch.save({"state_dict": trunk.state_dict()}, tmp_path / "plain.pt")
    with pytest.raises(PseudosupError, match="not a pseudosup fine-tuned checkpoint"):
        FT.load_checkpoint(tmp_path / "plain.pt", trunk, "tiny")
    with pytest.raises(PseudosupError, match="not found"):
        FT.load_checkpoint(tmp_path / "none.pt", trunk, "tiny")


def test_bad_pairs_and_settings_fail_before_training():
    with pytest.raises(PseudosupError, match="outside the 10 images"):
        FT.check_pairs(np.array([[0, 1], [3, 10]]), 10)
    with pytest.raises(PseudosupError, match="no positive pairs"):
        FT.check_pairs(np.zeros((0, 2), int), 10)
    with pytest.raises(PseudosupError, match="itself"):
        FT.check_pairs(np.array([[2, 2]]), 10)
    with pytest.raises(PseudosupError, match="finetune.loss"):
        FT.FinetuneSettings(loss="arcface")
    with pytest.raises(PseudosupError, match="only 4 modules"):
        FT.split_trunk(tiny_trunk(), 4)


@pytest.mark.shared_data
def test_pretrained_descriptors_equal_the_cnn_feature_extractor():
    """epoch 0 of fine-tuning = the features stage's MobileNetV2 descriptors (same pooling)."""
    from pseudosup.data.instance_bench import CORAL
    from pseudosup.features import cnn
    from pseudosup.features.images import FileImages

    weights = SHARED / "coral" / "mobilenet_v2_1.0_224_quant.tflite"
    source = FileImages([SHARED / "coral" / c for c in CORAL[:4]])
    bb = cnn.load_backbone("mobilenet_v2", str(weights))
    want, _ = cnn.extract(source, bb, ["gem"], 224, "square", batch_size=4)
    prefix, head = FT.split_trunk(bb.trunk, 3)
    acts, _ = FT.prefix_activations(source, prefix, bb.normalize, 224, batch=4)
    got = FT.describe(head, acts, "gem", 3.0)
    assert np.allclose(got, want["gem"], atol=1e-5)


def test_max_pairs_trains_on_a_seeded_sample():
    def run(max_pairs):
        trunk, prefix, head, acts, pairs, nbrs, groups = setup()
        s = FT.FinetuneSettings(trainable_blocks=2, epochs=1, batch_size=16, negatives=2, neg_min_rank=8,
                                neg_max_rank=30, seed=5, max_pairs=max_pairs)
        h = FT.finetune(head, acts, pairs, nbrs, s)
        return h[1]["loss"], FT.describe(head, acts, "gem", 3.0), len(pairs)

    loss_all, F_all, n_pairs = run(None)
    loss_same, F_same, _ = run(n_pairs)  # a cap above the pair count changes nothing
    assert loss_same == loss_all and np.array_equal(F_same, F_all)
    loss_few, F_few, _ = run(5)
    assert not np.array_equal(F_few, F_all)
    assert run(5)[0] == loss_few and np.array_equal(run(5)[1], F_few)
    with pytest.raises(PseudosupError, match="max_pairs"):
        FT.FinetuneSettings(max_pairs=0)
