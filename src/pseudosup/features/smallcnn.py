"""A small CNN pre-trained inside the pipeline, used frozen as a global descriptor.

It stands in for the ImageNet-pre-trained networks of the papers on data where none
applies (28x28 grey images): trained with labels on a part of the split disjoint
from the queries and the database, then its pooled, projected last block
(L2-normalised) is the descriptor of every item.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..log import log, progress


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, width: int, dim: int, n_classes: int):
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width]
        layers = []
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=True)]
        self.body = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1], dim), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(dim, n_classes)

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.body(x).mean(dim=(2, 3), keepdim=True)
        return self.embed(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.descriptor(x))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, H, W) or (n, H, W, C) -> float (n, C, H, W), standardised per image set
    with fixed constants (0.5/0.25) so train and test use the same transform."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return (x - 0.5) / 0.25


def pretrain(images: np.ndarray, labels: np.ndarray, cfg: dict, seed: int) -> tuple[SmallCNN, list[dict]]:
    """Train on (images, labels); returns the model and per-epoch history."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    classes = np.unique(labels)
    y = torch.from_numpy(np.searchsorted(classes, labels)).long()
    x = to_tensor(images)
    model = SmallCNN(x.shape[1], cfg["width"], cfg["dim"], len(classes))
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                          weight_decay=cfg["weight_decay"], nesterov=cfg["momentum"] > 0)
    steps = cfg["epochs"] * -(-len(x) // cfg["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps, pct_start=0.15)
    history = []
    for epoch in range(cfg["epochs"]):
        t0, model = time.time(), model.train()
        perm = torch.randperm(len(x), generator=gen)
        loss_sum = correct = 0
        for i in progress(range(0, len(x), cfg["batch_size"]), desc=f"pretrain epoch {epoch + 1}"):
            idx = perm[i:i + cfg["batch_size"]]
            xb = _augment(x[idx], gen)
            out = model(xb)
            loss = nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(idx)
            correct += int((out.argmax(1) == y[idx]).sum())
        history.append({"epoch": epoch + 1, "loss": loss_sum / len(x), "train_accuracy": correct / len(x),
                        "seconds": round(time.time() - t0, 2)})
        log.info("epoch %d: loss %.4f, train accuracy %.4f", epoch + 1, history[-1]["loss"],
                 history[-1]["train_accuracy"])
    return model.eval(), history


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to 2 pixels (seeded)."""
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


@torch.no_grad()
def extract(model: SmallCNN, images: np.ndarray, batch: int) -> np.ndarray:
    model.eval()
    out = np.empty((len(images), model.embed[1].out_features), dtype=np.float32)
    for i in progress(range(0, len(images), batch), desc="small-cnn features", total=-(-len(images) // batch)):
        d = model.descriptor(to_tensor(images[i:i + batch]))
        out[i:i + batch] = nn.functional.normalize(d, dim=1).numpy()
    return out


@torch.no_grad()
def accuracy(model: SmallCNN, images: np.ndarray, labels: np.ndarray, batch: int = 1024) -> float:
    """Top-1 accuracy (labels assumed to be 0..C-1 as in training)."""
    model.eval()
    right = 0
    for i in range(0, len(images), batch):
        right += int((model(to_tensor(images[i:i + batch])).argmax(1).numpy() == labels[i:i + batch]).sum())
    return right / len(images)
