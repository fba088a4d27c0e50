"""Generated files are in sync: dvc.yaml with the Snakemake DAG, README tables with
results/, results tables with the committed run files, the DAG picture."""

from __future__ import annotations

import json

import yaml

from pseudosup.dvcgen import generate
from pseudosup.stages.readme import refreshed
from pseudosup.stages.report import markdown_table, with_sparse_rankings

from .conftest import ROOT


def test_dvc_yaml_matches_the_snakemake_dag():
    assert (ROOT / "dvc.yaml").read_text() == generate(ROOT), \
        "dvc.yaml is out of date: run `pseudosup dvc-yaml` and commit it"


def test_dvc_yaml_stages_declare_params_and_code():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    # plain ITQ only (ldph-itq / ldph_nn-itq read their own method keys)
    itq = [s for name, s in stages.items() if name.startswith("train_hasher") and " --method itq " in s["cmd"]]
    assert itq and all(s["params"] == ["seed", "methods.itq"] for s in itq)
    assert all("src/pseudosup/methods/hashing/itq.py" in s["deps"] for s in itq)
    outs = [o for s in stages.values() for o in s.get("outs", []) for o in ([o] if isinstance(o, str) else o)]
    assert len(outs) == len(set(outs)), "overlapping outs"
    assert any("metrics" in s for s in stages.values()) and any("plots" in s for s in stages.values())


def test_readme_tables_come_from_results():
    readme = (ROOT / "README.md").read_text()
    assert "<!-- results:demo -->" in readme
    assert refreshed(readme, ROOT / "results/tables", ROOT / "benchmarks/results", ROOT / "data/splits") == readme, "README tables are stale: run `pseudosup readme`"
    for doc in (ROOT / "docs").glob("*.md"):
        text = doc.read_text()
        assert refreshed(text, ROOT / "results/tables", ROOT / "benchmarks/results", ROOT / "data/splits") == text, \
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
