"""Figures of the cross-feature (CIE) experiments, from their result files only:
mAP per method with its spread over queries, CIE mAP per iteration, and the
fine-tuning loss and mAP per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layout import VALUE_LABEL, integer_ticks, legend_right, new_figure, save

# one colour per method row (CIE experiments score up to 11 methods)
COLOURS = [f"C{i}" for i in range(10)] + ["navy", "magenta", "teal", "sienna"]


def query_sem(ap: list[float] | None) -> float | None:
    """Standard error of the mean AP over queries (None without per-query APs)."""
    if not ap or len(ap) < 2:
        return None
    return float(np.std(ap, ddof=1) / np.sqrt(len(ap)))


def cie_map(results: dict, cie_history: dict | None, out: Path, labels: dict[str, str] | None = None) -> None:
    """Left: one bar per method (in `labels` order; by default the order of `results`),
    ±1 standard error over queries when per-query APs are present, the value written
    inside the bar (or after its error bar when the bar is too short). Right, with a CIE
    history: mAP per iteration, the single-feature baselines as dashed lines."""
    res = results["results"]
    labels = labels or {m: m for m in res}
    methods = [m for m in labels if m in res]
    fig, axes = new_figure(2 if cie_history else 1, (5.2, 0.5 * len(methods) + 1.6), legend_width=2.4)
    vals, err = _method_bars(axes[0], res, methods, labels)
    axes[0].set_title(f"{results.get('name') or results['task']}: {results['queries']} queries, "
                      f"{results['database']} images", fontsize=9)
    if cie_history:
        _iterations(axes[1], cie_history["history"], res, labels)
    _bar_labels(axes[0], vals, err)  # last: it measures text against the final layout
    save(fig, out)


def _method_bars(ax, res: dict, methods: list[str], labels: dict[str, str]):
    vals = [res[m]["map"] for m in methods]
    errs = [query_sem(res[m].get("ap")) for m in methods]
    has_err = any(e is not None for e in errs)
    err = [e or 0.0 for e in errs]
    ax.barh(range(len(methods)), vals, xerr=err if has_err else None, capsize=3,
            color=[COLOURS[i % len(COLOURS)] for i in range(len(methods))], error_kw={"lw": 1})
    ax.set_yticks(range(len(methods)), [f"{labels[m]}\n{res[m]['bytes_per_image']:,.0f} B/image" for m in methods],
                  fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("mAP" + (" (error bar: ±1 s.e. over queries)" if has_err else ""))
    ax.set_xlim(0, max(v + e for v, e in zip(vals, err)) * 1.04 + 0.01)
    return vals, err


def _bar_labels(ax, vals: list[float], err: list[float]) -> None:
    """Each value inside its bar, left-aligned at the base (white on the colour), where
    it cannot meet the error bar or the next bar's text; outside, after the error bar,
    when the bar is shorter than the text. Bars are one per row, so labels never share
    a row."""
    texts = [ax.text(0, i, f"{v:.3f}", va="center", ha="left", fontsize=8, gid=VALUE_LABEL)
             for i, v in enumerate(vals)]
    for _ in range(3):  # widening the x range for an outside label narrows the bars: settle
        ax.figure.canvas.draw()
        renderer = ax.figure.canvas.get_renderer()
        right = ax.get_xlim()[1]
        px_per_x = ax.get_window_extent(renderer).width / right
        pad = 0.01 * right
        end = 0.0
        for t, v, e in zip(texts, vals, err):
            need = t.get_window_extent(renderer).width / px_per_x + 2 * pad
            inside = need <= v - e
            t.set_x(pad if inside else v + e + pad)
            t.set_color("white" if inside else "black")
            end = max(end, 0 if inside else v + e + need)
        if end <= right:
            return
        ax.set_xlim(0, end * 1.02)


def _iterations(ax, h: list[dict], res: dict, labels: dict[str, str]) -> None:
    it = [r["iteration"] for r in h]
    for key, label, style in (("map_cie", "CIE (original queries)", "-o"),
                              ("map_cie_embedded_queries", "CIE (embedded queries)", "--o"),
                              ("map_sift_embedded", "embedded BoW (SIFT side)", ":s")):
        if key in h[0]:
            ax.plot(it, [r[key] for r in h], style, label=label)
    for m, c in (("sift", "C0"), ("cnn", "C1"), ("fusion", "C2")):
        if m in res:
            ax.axhline(res[m]["map"], color=c, ls="--", lw=0.8, label=labels.get(m, m))
    ax.set_xlabel("CIE iteration (0 = before)")
    ax.set_ylabel("mAP")
    integer_ticks(ax)
    ax.grid(alpha=0.3)
    ax.set_title("CIE mAP per iteration", fontsize=9)
    legend_right(ax, fontsize=7)


def finetune(history: dict, out: Path) -> None:
    """Left: the loss terms per epoch; right (when evaluated): mAP per epoch, epoch 0 =
    the pretrained network. Epoch axes carry integer ticks only."""
    h = history["history"]
    trained = [r for r in h if "loss" in r]
    fig, axes = new_figure(2 if "map" in h[0] else 1, (4.4, 3.4), legend_width=1.0)
    a = axes[0]
    for key in ("loss", "ranking", "drift"):
        if trained and key in trained[0]:
            a.plot([r["epoch"] for r in trained], [r[key] for r in trained], "-o",
                   label="total" if key == "loss" else key)
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.set_title("fine-tuning loss (mean per batch)", fontsize=9)
    a.grid(alpha=0.3)
    legend_right(a)
    if len(axes) > 1:
        b = axes[1]
        b.plot([r["epoch"] for r in h], [r["map"] for r in h], "-o", color="C3")
        b.set_xlabel("epoch (0 = pretrained)")
        b.set_ylabel("mAP")
        b.grid(alpha=0.3)
        b.set_title("retrieval mAP per epoch (diagnostic)", fontsize=9)
    epochs = [r["epoch"] for r in h]
    for ax in axes:  # the same epoch range on both panels, so epochs line up
        ax.set_xlim(min(epochs) - 0.3, max(epochs) + 0.3)
        integer_ticks(ax)
    save(fig, out)
