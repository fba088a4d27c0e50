"""Figures of an experiment (Agg backend: no display needed), written atomically.

Legends sit outside the data area, several seeds of one configuration are drawn as
mean with a ±1 std error bar (or a run's own `<metric>_std`), and the gallery marks
the Hamming distance of every result and where the top-k cut falls inside a tie."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.patches import Patch

from .layout import VALUE_LABEL, figure_legend_below, new_figure, plot_series, save

RELEVANT, NOT_RELEVANT, QUERY = "#1a9641", "#d7191c", "black"


def _features(runs):
    return list(dict.fromkeys(r["feature"] for r in runs))


def _main_metric(runs: list[dict]) -> tuple[str, str]:
    """NDCG for multi-label relevance (DSRH's protocol), mAP otherwise."""
    graded = next((r["graded_at"] for r in runs if r.get("graded_at")), None)
    return ("ndcg", f"NDCG@{graded['ndcg']}") if graded else ("map", "mAP")


def mean_std(runs: list[dict], key: str) -> tuple[float, float | None]:
    """One point from the runs of one configuration: the mean over its seeds with their
    sample std, or a single run's own `<key>_std` if it carries one (else no spread)."""
    vals = [r[key] for r in runs]
    if len(vals) > 1:
        return float(np.mean(vals)), float(np.std(vals, ddof=1))
    std = runs[0].get(f"{key}_std")
    return float(vals[0]), (None if std is None else float(std))


def _by_bits(runs: list[dict], key: str):
    groups: dict[int, list[dict]] = {}
    for r in runs:
        groups.setdefault(r["bits"], []).append(r)
    pts = [(b, *mean_std(groups[b], key)) for b in sorted(groups)]
    return [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]


def map_vs_bits(runs: list[dict], out: Path, title: str = "") -> None:
    key, label = _main_metric(runs)
    feats = _features(runs)
    fig, axes = new_figure(len(feats), (4.2, 3.6), sharey=True)
    spread = False
    for ax, feat in zip(axes, feats):
        mine = [r for r in runs if r["feature"] == feat]
        hashed = [r for r in mine if r.get("bits") is not None]
        for meth in dict.fromkeys(r["method"] for r in hashed):
            bits, ys, std = _by_bits([r for r in hashed if r["method"] == meth], key)
            plot_series(ax, bits, ys, std, label=meth)
            spread |= any(s is not None for s in std)
        for meth in dict.fromkeys(r["method"] for r in mine if r.get("bits") is None):
            y, _ = mean_std([r for r in mine if r["method"] == meth and r.get("bits") is None], key)
            ax.axhline(y, ls="--", color="grey", label=f"{meth} (real-valued)")
        bits = sorted({r["bits"] for r in hashed})
        ax.set_xscale("log", base=2)
        ax.set_xticks(bits, [str(b) for b in bits])
        ax.set_title(feat)
        ax.set_xlabel("code length (bits)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(label)
    figure_legend_below(fig, axes)
    note = " (mean ± 1 std over seeds)" if spread else ""
    fig.suptitle(f"{title} {label} vs code length{note}".strip())
    save(fig, out)


def pr_curves(runs: list[dict], out: Path, title: str = "") -> None:
    """Precision-recall over Hamming radii at each feature's longest code; with several
    seeds, the first run of each method (curves of different seeds do not share points)."""
    feats = _features(runs)
    fig, axes = new_figure(len(feats), (4.2, 3.6), sharey=True)
    for ax, feat in zip(axes, feats):
        mine = [r for r in runs if r["feature"] == feat and r.get("pr_curve")]
        if not mine:
            ax.set_axis_off()
            continue
        top = max(r["bits"] for r in mine)
        first = {}
        for r in mine:
            if r["bits"] == top:
                first.setdefault(r["method"], r)
        for meth, r in first.items():
            ax.plot(r["pr_curve"]["recall"], r["pr_curve"]["precision"], marker=".", label=meth)
        ax.set_title(f"{feat}, {top} bits")
        ax.set_xlabel("recall (Hamming radius 0..bits)")
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
    highest = max((max(r["pr_curve"]["precision"]) for r in runs if r.get("pr_curve")), default=1.0)
    axes[0].set_ylim(0, min(1.0, 1.1 * highest))  # shared: low-precision curves are not squashed
    axes[0].set_ylabel("precision")
    figure_legend_below(fig, axes)
    fig.suptitle(f"{title} precision-recall".strip())
    save(fig, out)


def feature_map(runs: list[dict], out: Path, title: str = "") -> None:
    """One bar per feature: the metric of its Euclidean ranking (mean ± 1 std over seeds
    when there are several), its value written above the bar and its error bar."""
    key, label = _main_metric(runs)
    ceil = [r for r in runs if r.get("bits") is None]
    feats = _features(ceil)
    pts = [mean_std([r for r in ceil if r["feature"] == f], key) for f in feats]
    ys = [p[0] for p in pts]
    err = [p[1] or 0.0 for p in pts]
    fig, (ax,) = new_figure(1, (1.1 * len(feats) + 2.5, 3.4))
    ax.bar(feats, ys, color="#4575b4", yerr=err if any(err) else None, capsize=4)
    for i, (y, e) in enumerate(zip(ys, err)):
        ax.text(i, y + e, f"{y:.3f}", ha="center", va="bottom", fontsize=8, gid=VALUE_LABEL)
    ax.set_ylim(0, max(y + e for y, e in zip(ys, err)) * 1.15)
    ax.set_ylabel(f"{label} (Euclidean ranking)")
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    note = " (mean ± 1 std over seeds)" if any(err) else ""
    fig.suptitle(f"{title} {label} per feature{note}".strip())
    save(fig, out)


def gallery(rows, out: Path, title: str, ties: list[int] | None = None) -> None:
    """rows: [(query_image, [(image, is_relevant, distance), ...]), ...], results in rank order.

    ties (optional, one per row): how many database items lie at the distance of the
    row's last shown result. Shown results at that distance are labelled "tie" when the
    cut at k falls inside a group of equal distances (their order is the database order,
    not a ranking), and the row says how many of the group are shown."""
    n_cols = 1 + max(len(r[1]) for r in rows)
    fig, axes = _gallery_grid(len(rows), n_cols)
    for i, (q, results) in enumerate(rows):
        _show(axes[i][0], q, QUERY, "query")
        tied = tied_positions([d for _, _, d in results], None if ties is None else ties[i])
        for j, (img, ok, d) in enumerate(results, start=1):
            _show(axes[i][j], img, RELEVANT if ok else NOT_RELEVANT, f"d={d} tie" if j - 1 in tied else f"d={d}",
                  dashed=j - 1 in tied)
        for j in range(len(results) + 1, n_cols):
            axes[i][j].axis("off")
        if ties is not None and results and ties[i] > len(tied) and tied:
            axes[i][len(results)].annotate(f"{len(tied)} of {ties[i]:,}\nat d={results[-1][2]}", xy=(1.04, 0.5),
                                           xycoords="axes fraction", va="center", fontsize=7)
    _gallery_legend(fig)
    fig.suptitle(title, fontsize=9)
    save(fig, out)


def tied_positions(distances: list[int], at_last: int | None = None) -> set[int]:
    """Positions (0-based) of the shown results that share the last shown distance, when
    that group is a tie the cut splits or orders arbitrarily: two or more shown at that
    distance, or more items at it in the database (`at_last`) than are shown."""
    if not distances:
        return set()
    group = {j for j, d in enumerate(distances) if d == distances[-1]}
    if len(group) > 1 or (at_last is not None and at_last > len(group)):
        return group
    return set()


def _gallery_grid(n_rows: int, n_cols: int):
    import matplotlib.pyplot as plt

    # room on the right for the "n of N at d" notes, at the bottom for the legend
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols + 1.0, 1.45 * n_rows + 0.6), squeeze=False)
    fig.subplots_adjust(left=0.02, right=0.9, bottom=0.6 / (1.45 * n_rows + 0.6) + 0.02, top=0.9, wspace=0.12,
                        hspace=0.35)
    return fig, axes


def _gallery_legend(fig):
    handles = [Patch(facecolor="none", edgecolor=QUERY, linewidth=2.5, label="query"),
               Patch(facecolor="none", edgecolor=RELEVANT, linewidth=2.5, label="relevant (same class)"),
               Patch(facecolor="none", edgecolor=NOT_RELEVANT, linewidth=2.5, label="not relevant"),
               Patch(facecolor="none", edgecolor="grey", linewidth=2.0, linestyle="--",
                     label="tie: same Hamming distance d as the last shown")]
    return fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False,
                      bbox_to_anchor=(0.5, 0.0))


def _show(ax, img, colour, label, dashed: bool = False):
    cmap = "gray" if np.ndim(img) == 2 else None
    ax.imshow(img, cmap=cmap, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)
        if dashed:
            spine.set_linestyle((0, (3, 1.5)))
    ax.set_title(label, fontsize=7)
