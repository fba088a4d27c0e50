"""Figures a reviewer would accept, checked on the drawn artists: legends outside the
data, error bars where there is a spread, value labels that do not collide, integer
epoch ticks, and a gallery with a colour legend, distances and marked ties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from pseudosup.plots import cie, figures, ties
from pseudosup.plots.layout import VALUE_LABEL, overlaps


@pytest.fixture
def drawn(monkeypatch):
    """Keeps every figure the plots write (drawn, for extents) instead of closing it."""
    kept = []

    def keep(fig, path):
        fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
        fig.canvas.draw()
        kept.append(fig)

    monkeypatch.setattr(figures, "save", keep)
    monkeypatch.setattr(cie, "save", keep)
    yield kept
    import matplotlib.pyplot as plt

    for fig in kept:
        plt.close(fig)


def _run(feature, method, bits, value, **extra):
    return {"feature": feature, "method": method, "bits": bits, "map": value, **extra}


def _crowded_runs(**extra):
    """Six methods over five code lengths spanning the whole value range, plus a
    baseline: a legend inside either panel has nowhere to go without covering data."""
    rng = np.random.default_rng(0)
    runs = []
    for feat in ("a", "b"):
        for m, base in zip(("lsh", "pcah", "itq", "sh", "ldph", "dsrh"), np.linspace(0.05, 0.95, 6)):
            for bits in (8, 16, 32, 64, 128):
                runs.append(_run(feat, m, bits, float(np.clip(base + rng.normal(0, 0.05), 0, 1)), **extra))
        runs.append(_run(feat, "euclidean", None, 0.5))
    return runs


def _legends(fig):
    return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]


def _data_points(ax):
    pts = [line.get_transform().transform(line.get_xydata()) for line in ax.get_lines()]
    return np.concatenate(pts) if pts else np.empty((0, 2))


def _assert_legends_clear(fig):
    r = fig.canvas.get_renderer()
    legends = _legends(fig)
    assert legends, "the figure has no legend"
    for leg in legends:
        box = leg.get_window_extent(r)
        for ax in fig.axes:
            assert not overlaps(box, ax.get_window_extent(r)), f"legend covers the axes '{ax.get_title()}'"
            inside = [p for p in _data_points(ax) if box.contains(*p)]
            assert not inside, f"legend covers {len(inside)} data points of '{ax.get_title()}'"
        if fig._suptitle is not None:
            assert not overlaps(box, fig._suptitle.get_window_extent(r)), "legend covers the title"


def _value_labels(fig):
    return [t for ax in fig.axes for t in ax.texts if t.get_gid() == VALUE_LABEL]


def _assert_labels_apart(fig):
    r = fig.canvas.get_renderer()
    labels = _value_labels(fig)
    assert labels, "no value labels drawn"
    for a, b in itertools.combinations(labels, 2):
        assert not overlaps(a.get_window_extent(r), b.get_window_extent(r)), \
            f"value labels {a.get_text()} and {b.get_text()} overlap"
    for t in labels:
        ax_box = t.axes.get_window_extent(r)
        box = t.get_window_extent(r)
        assert ax_box.x0 <= box.x0 and box.x1 <= ax_box.x1, f"value label {t.get_text()} leaves its axes"


def _errorbars(ax):
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_map_vs_bits_keeps_its_legend_off_the_data(tmp_path, drawn):
    figures.map_vs_bits(_crowded_runs(), tmp_path / "m.png", "t:")
    assert (tmp_path / "m.png").stat().st_size > 0
    _assert_legends_clear(drawn[0])
    assert not any(_errorbars(ax) for ax in drawn[0].axes), "error bars drawn without any spread"


def test_pr_curves_keep_their_legend_off_the_data(tmp_path, drawn):
    curve = {"recall": list(np.linspace(0, 1, 20)), "precision": list(np.linspace(1, 0.1, 20))}
    runs = [dict(r, pr_curve=curve) for r in _crowded_runs() if r["bits"]]
    figures.pr_curves(runs, tmp_path / "p.png")
    _assert_legends_clear(drawn[0])


def test_map_vs_bits_draws_mean_and_std_over_seeds(tmp_path, drawn):
    runs = [_run("a", "itq", b, v, seed=s) for b in (16, 32) for s, v in enumerate((0.4, 0.5, 0.6))]
    figures.map_vs_bits(runs, tmp_path / "m.png")
    (bars,) = _errorbars(drawn[0].axes[0])
    line, _, (segments,) = bars.lines
    np.testing.assert_allclose(np.asarray(line.get_ydata(), dtype=float), [0.5, 0.5])
    half = [abs(s[1][1] - s[0][1]) / 2 for s in segments.get_segments()]
    np.testing.assert_allclose(half, [0.1, 0.1])  # sample std of 0.4, 0.5, 0.6
    assert "std over seeds" in drawn[0]._suptitle.get_text()


def test_map_vs_bits_draws_a_runs_own_std(tmp_path, drawn):
    figures.map_vs_bits([_run("a", "itq", 16, 0.5, map_std=0.05), _run("a", "itq", 32, 0.6, map_std=0.02)],
                        tmp_path / "m.png")
    (bars,) = _errorbars(drawn[0].axes[0])
    half = [abs(s[1][1] - s[0][1]) / 2 for s in bars.lines[2][0].get_segments()]
    np.testing.assert_allclose(half, [0.05, 0.02])


def test_feature_map_labels_apart_and_error_bars_with_seeds(tmp_path, drawn):
    runs = [_run(f, "euclidean", None, v, seed=s) for f in ("pixels", "gist", "mnv2-gem", "sift-bow")
            for s, v in enumerate((0.30, 0.32))]
    figures.feature_map(runs, tmp_path / "f.png")
    _assert_labels_apart(drawn[0])
    assert drawn[0].axes[0].containers[-1].errorbar is not None


def _retrieval(values: dict[str, float], n_queries: int = 40):
    rng = np.random.default_rng(1)
    res = {m: {"map": v, "bytes_per_image": 5120.0,
               "ap": list(np.clip(rng.normal(v, 0.2, n_queries), 0, 1))} for m, v in values.items()}
    return {"task": "t", "name": "synthetic", "queries": n_queries, "database": 500, "results": res}


CIE_HISTORY = {"history": [{"iteration": i, "map_cie": 0.5 + 0.1 * i, "map_sift_embedded": 0.3 + 0.05 * i}
                           for i in range(4)]}


def test_cie_map_value_labels_do_not_overlap_and_stay_in_the_axes(tmp_path, drawn):
    # near-equal long bars, a bar shorter than its text, a value close to 1
    values = {"sift": 0.02, "cnn": 0.97, "fusion": 0.99, "cie": 0.985, "finetuned": 0.5}
    cie.cie_map(_retrieval(values), CIE_HISTORY, tmp_path / "c.png", {m: m.upper() for m in values})
    fig = drawn[0]
    _assert_labels_apart(fig)
    _assert_legends_clear(fig)
    assert _errorbars(fig.axes[0]), "per-query APs given but no error bars"
    r = fig.canvas.get_renderer()
    bars = fig.axes[0].patches
    for t, bar in zip(_value_labels(fig), bars):  # a label is inside its bar or right of it
        box, bar_box = t.get_window_extent(r), bar.get_window_extent(r)
        assert box.x1 <= bar_box.x1 or box.x0 >= bar_box.x1, f"label {t.get_text()} straddles its bar's end"


def test_cie_map_without_per_query_ap_has_no_error_bars(tmp_path, drawn):
    res = _retrieval({"sift": 0.3, "cnn": 0.6})
    for m in res["results"].values():
        del m["ap"]
    cie.cie_map(res, None, tmp_path / "c.png")
    assert not _errorbars(drawn[0].axes[0])
    _assert_labels_apart(drawn[0])


@pytest.mark.parametrize("epochs", [1, 3, 7])
def test_finetune_epoch_ticks_are_integers(tmp_path, drawn, epochs):
    h = [{"epoch": 0, "map": 0.5}] + [{"epoch": e, "loss": 0.2 / e, "ranking": 0.1 / e, "drift": 0.01 * e,
                                       "map": 0.5 + 0.01 * e} for e in range(1, epochs + 1)]
    cie.finetune({"history": h}, tmp_path / "f.png")
    fig = drawn[0]
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), f"epoch ticks {ticks}"
    _assert_legends_clear(fig)


def _gallery_rows(distances_per_row, size=8):
    img = np.full((size, size), 128, dtype=np.uint8)
    return [(img, [(img, j % 3 != 1, d) for j, d in enumerate(ds)]) for ds in distances_per_row]


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_gallery_has_a_colour_legend_distances_and_marked_ties(tmp_path, drawn):
    rows = _gallery_rows([[0, 0, 0, 0], [1, 2, 3, 5]])
    figures.gallery(rows, tmp_path / "g.png", "t", ties=[912, 1])
    fig = drawn[0]
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert {"relevant (same class)", "not relevant"} <= set(texts) and any("tie" in t for t in texts)
    _assert_legends_clear(fig)
    titles = _titles(fig)
    assert titles[1:5] == ["d=0 tie"] * 4  # the cut at 4 falls inside 912 items at d=0
    assert titles[6:10] == ["d=1", "d=2", "d=3", "d=5"]  # one item at d=5: no tie
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert notes == ["4 of 912\nat d=0"]


def test_gallery_without_tie_counts_marks_shared_last_distances(tmp_path, drawn):
    figures.gallery(_gallery_rows([[2, 3, 3]]), tmp_path / "g.png", "t")
    assert _titles(drawn[0])[1:] == ["d=2", "d=3 tie", "d=3 tie"]


def test_tied_positions():
    assert figures.tied_positions([1, 2, 3]) == set()
    assert figures.tied_positions([1, 2, 3], at_last=4) == {2}
    assert figures.tied_positions([0, 0, 0], at_last=3) == {0, 1, 2}
    assert figures.tied_positions([]) == set()


def test_top_k_with_ties_counts_the_database_at_the_kth_distance():
    order, n = ties.top_k_with_ties(np.array([3, 1, 1, 2, 1, 2]), 2)
    assert order.tolist() == [1, 2] and n == 3
    order, n = ties.top_k_with_ties(np.array([3, 1, 2]), 2)
    assert order.tolist() == [1, 2] and n == 1
    with pytest.raises(ValueError, match="k >= 1"):
        ties.top_k_with_ties(np.array([1]), 0)


def test_pick_gallery_queries_prefers_queries_not_all_tied():
    dist = np.array([[0, 0, 0, 5],   # top-3 all at 0
                     [0, 1, 2, 3],
                     [4, 4, 4, 4],   # all tied
                     [1, 1, 2, 9]])
    assert ties.pick_gallery_queries(dist, 3, 2).tolist() == [1, 3]
    assert ties.pick_gallery_queries(dist, 3, 3).tolist() == [1, 3, 0]  # tied ones fill in, in order
    with pytest.raises(ValueError, match="queries x database"):
        ties.pick_gallery_queries(np.zeros(3), 3, 1)
