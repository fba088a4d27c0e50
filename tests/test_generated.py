"""Generated files are in sync: dvc.yaml with the Snakemake DAG, README tables with
results/, results tables with the committed run files, the DAG picture."""

from __future__ import annotations

import json

import yaml

from pseudosup.commands.readme import refreshed, with_every_table
from pseudosup.dvcgen import expand, generate, read_stages
from pseudosup.stages.report import markdown_table, with_sparse_rankings

from .conftest import ROOT


def test_dvc_yaml_matches_the_snakemake_dag():
    for name, text in generate(ROOT).items():
        assert (ROOT / name).read_text() == text, f"{name} is out of date: run `pseudosup dvc-yaml` and commit it"


def test_dvc_yaml_is_one_stage_per_rule_and_fits_a_screen():
    text = (ROOT / "dvc.yaml").read_text()
    doc = yaml.safe_load(text)
    assert len(doc["stages"]) <= 30 and len(text.splitlines()) <= 1500, (len(doc["stages"]), len(text.splitlines()))
    jobs = expand(read_stages(ROOT))
    assert len(jobs) > 100  # the default targets' jobs, by foreach items
    # plain ITQ only (ldph-itq / ldph_nn-itq read their own method keys)
    itq = [s for name, s in jobs.items() if name.startswith("train_hasher@") and " --method itq " in s["cmd"]]
    assert itq and all(s["params"] == ["methods.itq", "seed"] for s in itq)
    assert all("src/pseudosup/stages/train.py" in s["deps"] for s in itq)
    outs = [o for s in jobs.values() for o in s["outs"]]
    assert len(outs) == len(set(outs)), "overlapping outs"
    # top level: the per-run summaries and the plot data the report stage writes
    assert doc["metrics"] == ["results/summary"]
    for plot in doc["plots"]:
        (name, spec), = plot.items()
        assert spec["template"] == "linear" and spec["y"], name
        for path in spec["y"]:
            assert (ROOT / path).is_file(), f"{name}: {path} missing: rerun the report stage"


def test_readme_tables_come_from_results():
    readme = (ROOT / "README.md").read_text()
    assert "<!-- summary:experiments -->" in readme
    assert "<!-- results:demo -->" in (ROOT / "results/README.md").read_text()
    docs = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "benchmarks/README.md", ROOT / "results/README.md"]
    for doc in docs:
        text = doc.read_text()
        if doc.parent.name == "results":
            assert with_every_table(text, ROOT / "results/tables") == text, f"{doc} lacks a table: run `pseudosup readme`"
        assert refreshed(text, ROOT / "results/tables", ROOT / "benchmarks/results", ROOT / "data/splits",
                         ROOT / "results/metrics", ROOT / "params.yaml") == text, \
            f"{doc} tables are stale: run `pseudosup readme`"


def test_result_tables_come_from_the_run_files():
    import yaml as _y
    params = _y.safe_load((ROOT / "params.yaml").read_text())
    for table in (ROOT / "results/tables").glob("*.md"):
        name = table.stem
        if name.endswith("-retrieval"):  # a cross-feature experiment's table (evaluate-retrieval)
            from pseudosup.stages.evaluate_retrieval import markdown_table as cross_table

            run = json.loads((ROOT / "results/runs" / name.removesuffix("-retrieval") / "retrieval.json").read_text())
            assert cross_table([run, *run.get("also", [])]) == table.read_text(), table
            continue
        runs = with_sparse_rankings([json.loads(p.read_text())
                                     for p in sorted((ROOT / "results/runs" / name).rglob("*.json"))])
        metrics = json.loads((ROOT / "results/metrics" / f"{name}.json").read_text())
        exp = params["experiments"][name]
        order = {(f, m, b): i for i, (f, m, b) in enumerate(
            (f, m, b) for f in exp["features"] for m in exp.get("methods", []) for b in exp.get("bits", []))}
        runs.sort(key=lambda r: order.get((r["feature"], r["method"], r.get("bits")), 1e9))
        assert markdown_table(name, params["experiments"][name], runs, metrics) == table.read_text()


def test_dag_picture_is_committed():
    assert (ROOT / "docs/rulegraph.png").exists()
