"""What every figure shares: the Agg backend, atomic PNG writing, legends kept out of
the data area, error bars, and value labels that are checked not to collide."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..io import atomic_path  # noqa: E402

VALUE_LABEL = "value-label"  # gid of the numbers written on bars (tests find them by it)


def new_figure(n_panels: int, panel_size: tuple[float, float], legend_width: float = 0.0,
               sharey: bool = False):
    """One row of panels with constrained layout, so that outside legends and labels get
    room of their own instead of being drawn over the axes."""
    w, h = panel_size
    fig, axes = plt.subplots(1, n_panels, figsize=(w * n_panels + legend_width, h), squeeze=False,
                             layout="constrained", sharey=sharey)
    return fig, list(axes[0])


def save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def legend_right(ax, fontsize: int = 8):
    """The axes' legend beside it, top-aligned, outside the data area."""
    if not ax.get_legend_handles_labels()[0]:
        return None
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=fontsize,
                     frameon=False)


def figure_legend_below(fig, axes, fontsize: int = 8):
    """One legend for panels that share their series (deduplicated by label), below the
    panels, outside every axes and clear of the title."""
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if not labels:
        return None
    return fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center", fontsize=fontsize,
                      ncol=-(-len(labels) // -(-len(labels) // 4)), frameon=False)  # balanced rows of ≤ 4


def integer_ticks(ax, axis: str = "x") -> None:
    """Epochs and iterations are counts: never a tick at 0.5."""
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def plot_series(ax, xs, ys, std=None, **style):
    """A line with markers; with `std` (one per point, None where unknown), error bars too."""
    if std is None or all(s is None for s in std):
        return ax.plot(xs, ys, marker=style.pop("marker", "o"), **style)[0]
    err = [0.0 if s is None else s for s in std]
    return ax.errorbar(xs, ys, yerr=err, marker=style.pop("marker", "o"), capsize=3, **style)


def overlaps(a, b) -> bool:
    """Whether two display-space boxes share area (touching edges do not count)."""
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1
