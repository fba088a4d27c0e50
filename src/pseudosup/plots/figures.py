"""Matplotlib figures (Agg backend: no display needed), written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import atomic_path  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def _features(runs):
    return list(dict.fromkeys(r["feature"] for r in runs))


def _main_metric(runs: list[dict]) -> tuple[str, str]:
    """NDCG for multi-label relevance (DSRH's protocol), mAP otherwise."""
    graded = next((r["graded_at"] for r in runs if r.get("graded_at")), None)
    return ("ndcg", f"NDCG@{graded['ndcg']}") if graded else ("map", "mAP")


def map_vs_bits(runs: list[dict], out: Path, title: str = "") -> None:
    key, label = _main_metric(runs)
    feats = _features(runs)
    fig, axes = plt.subplots(1, len(feats), figsize=(4.6 * len(feats), 3.6), squeeze=False, sharey=True)
    for ax, feat in zip(axes[0], feats):
        mine = [r for r in runs if r["feature"] == feat]
        for meth in dict.fromkeys(r["method"] for r in mine if r.get("bits") is not None):
            pts = sorted((r["bits"], r[key]) for r in mine if r["method"] == meth and r.get("bits") is not None)
            ax.plot(*zip(*pts), marker="o", label=meth)
        for r in mine:
            if r.get("bits") is None:
                ax.axhline(r[key], ls="--", color="grey", label=f"{r['method']} (real-valued)")
        bits = sorted({r["bits"] for r in mine if r.get("bits") is not None})
        ax.set_xscale("log", base=2)
        ax.set_xticks(bits, [str(b) for b in bits])
        ax.set_title(feat)
        ax.set_xlabel("code length (bits)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(label)
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.suptitle(f"{title} {label} vs code length".strip())
    _save(fig, out)


def pr_curves(runs: list[dict], out: Path, title: str = "") -> None:
    feats = _features(runs)
    fig, axes = plt.subplots(1, len(feats), figsize=(4.6 * len(feats), 3.6), squeeze=False, sharey=True)
    for ax, feat in zip(axes[0], feats):
        mine = [r for r in runs if r["feature"] == feat and r.get("pr_curve")]
        if not mine:
            continue
        top = max(r["bits"] for r in mine)
        for r in mine:
            if r["bits"] == top:
                ax.plot(r["pr_curve"]["recall"], r["pr_curve"]["precision"], marker=".", label=r["method"])
        ax.set_title(f"{feat}, {top} bits")
        ax.set_xlabel("recall (Hamming radius 0..bits)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("precision")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(f"{title} precision-recall".strip())
    _save(fig, out)


def feature_map(runs: list[dict], out: Path, title: str = "") -> None:
    """One bar per feature: the metric of its Euclidean ranking."""
    key, label = _main_metric(runs)
    ceil = [r for r in runs if r.get("bits") is None]
    fig, ax = plt.subplots(figsize=(1.1 * len(ceil) + 2.5, 3.4))
    ax.bar([r["feature"] for r in ceil], [r[key] for r in ceil], color="#4575b4")
    for i, r in enumerate(ceil):
        ax.text(i, r[key], f"{r[key]:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"{label} (Euclidean ranking)")
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{title} {label} per feature".strip())
    _save(fig, out)


def gallery(rows, out: Path, title: str) -> None:
    """rows: [(query_image, [(image, is_relevant, distance), ...]), ...]"""
    n_cols = 1 + max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.3 * n_cols, 1.45 * len(rows)), squeeze=False)
    for i, (q, results) in enumerate(rows):
        _show(axes[i][0], q, "black", "query")
        for j, (img, ok, d) in enumerate(results, start=1):
            _show(axes[i][j], img, "#1a9641" if ok else "#d7191c", f"d={d}")
        for j in range(len(results) + 1, n_cols):
            axes[i][j].axis("off")
    fig.suptitle(title, fontsize=9)
    _save(fig, out)


def _show(ax, img, colour, label):
    cmap = "gray" if np.ndim(img) == 2 else None
    ax.imshow(img, cmap=cmap, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)
    ax.set_title(label, fontsize=7)
