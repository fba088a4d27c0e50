"""The report stage's files for DVC: a summary that `dvc metrics show` prints one short
row per run, and plot data (one CSV per feature x method) for `dvc plots diff`."""

from __future__ import annotations

import json

from pseudosup.stages.report import plot_files, summary_files, with_sparse_rankings

from .conftest import ROOT


def run(feat, meth, bits, m, **extra):
    r = {"feature": feat, "method": meth, "bits": bits, "map": m, "precision_at_k": m + 0.1, "k": 100}
    if bits is not None:
        r["precision_curve"] = {"n": [1, 10], "precision": [m + 0.2, m]}
        r["pr_curve"] = {"precision": [0.9, 0.5], "recall": [0.1, 0.6]}
    return {**r, **extra}


def test_summary_has_one_small_file_per_run():
    runs = [run("pixels", "itq", 16, 0.3), run("pixels", "itq", 32, 0.4123456789), run("pixels", "euclidean", None, 0.5)]
    files = summary_files(runs)
    assert set(files) == {"pixels/itq-16.json", "pixels/itq-32.json", "pixels/euclidean.json"}
    assert json.loads(files["pixels/itq-32.json"]) == {"map": 0.412346, "precision_at_k": 0.512346}


def test_plot_data_series_per_feature_and_method_at_the_longest_code():
    runs = [run("pixels", "itq", 32, 0.4), run("pixels", "itq", 16, 0.3), run("pixels", "euclidean", None, 0.5)]
    files = plot_files(runs)
    assert files["map_vs_bits/pixels-itq.csv"] == "bits,map\n16,0.3\n32,0.4\n"
    assert files["map_vs_bits/pixels-euclidean.csv"] == "bits,map\n16,0.5\n32,0.5\n"  # the ceiling, flat
    assert files["precision_at_n/pixels-itq.csv"] == "n,precision\n1,0.6\n10,0.4\n"
    assert files["pr_curve/pixels-itq.csv"] == "recall,precision\n0.1,0.9\n0.6,0.5\n"


def test_committed_summaries_and_plot_data_come_from_the_run_files():
    for folder in sorted((ROOT / "results/summary").iterdir()):
        runs = with_sparse_rankings([json.loads(p.read_text()) for p in sorted((ROOT / "results/runs" / folder.name).rglob("*.json"))])
        want = summary_files(runs)
        got = {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*.json")}
        assert got == want, f"{folder} is stale: rerun the report stage"
        plots = ROOT / "results/plots" / folder.name
        got = {str(p.relative_to(plots)): p.read_text() for p in plots.rglob("*.csv")} if plots.exists() else {}
        assert got == plot_files(runs), f"{plots} is stale: rerun the report stage"


def test_dvc_metrics_rows_fit_a_terminal():
    """`dvc metrics show` prints a path and one column per headline metric."""
    paths = [p.relative_to(ROOT) for p in (ROOT / "results/summary").rglob("*.json")]
    keys = set().union(*(json.loads((ROOT / p).read_text()) for p in paths))
    width = max(len(str(p)) for p in paths) + 3 + 9 * len(keys)
    assert width <= 120, (width, keys)


def test_published_values_sit_beside_our_run_of_the_same_method_and_bits():
    from pseudosup.stages.report import published_rows, published_table

    runs = [run("vectors", "itq", 16, 0.3), run("vectors", "itq", 32, 0.4), run("vectors", "lsh", 16, 0.1)]
    pub = [{"source": "Some table", "method": "itq", "metric": "map", "values": {32: 0.0325, 16: 0.0084},
            "note": "other features"},
           {"source": "Some table", "method": "lsh", "metric": "precision_at_k", "values": {16: 0.05}}]
    rows = published_rows(pub, runs, ["vectors"])
    assert [(r["method"], r["bits"], r["published"], r["ours"]) for r in rows] == [
        ("itq", 16, 0.0084, {"vectors": 0.3}), ("itq", 32, 0.0325, {"vectors": 0.4}),
        ("lsh", 16, 0.05, {"vectors": 0.1 + 0.1})]
    text = "\n".join(published_table(rows))
    assert "| itq | 32 | map | 0.0325 | 0.4000 | [1] |" in text
    assert "| lsh | 16 | precision_at_k | 0.0500 | 0.2000 | [2] |" in text   # another note: another source line
    assert "[1] Some table — other features" in text and "[2] Some table" in text
    # a metric our run lacks is shown as missing, never as a number
    missing = published_rows([{**pub[0], "metric": "ndcg"}], runs, ["vectors"])
    assert all(r["ours"] == {"vectors": None} for r in missing)
    assert "| itq | 16 | ndcg | 0.0084 | - |" in "\n".join(published_table(missing))
