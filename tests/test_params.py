"""params.yaml validation: schema completeness and errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from pseudosup import params as P
from pseudosup.io import PseudosupError

from .conftest import ROOT, copy_project, run_cli, snakemake

SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/params.schema.yaml").read_text())


def walk(schema, path="", required=()):
    """Yield (path, property schema, is_required) for every property in the schema."""
    if "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].split("/")[-1]]
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}".strip("."), sub, name in schema.get("required", [])
        yield from walk(sub, f"{path}.{name}", ())
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from walk(extra, f"{path}.<name>")
    for branch in schema.get("allOf", []):
        yield from walk(branch.get("then", {}), path)


def test_every_schema_key_has_type_default_and_description():
    seen = 0
    for path, sub, required in walk(SCHEMA):
        resolved = SCHEMA["$defs"][sub["$ref"].split("/")[-1]] if "$ref" in sub else sub
        assert "description" in resolved, f"{path}: no description"
        assert {"type", "enum", "const", "$ref"} & set(sub) or "type" in resolved or "enum" in resolved \
            or path.endswith(".extractor") or path.endswith(".hasher"), f"{path}: no type"
        if not required and "$ref" not in sub:
            assert "default" in sub, f"{path}: no default"
        seen += 1
    assert seen > 40


def test_committed_params_are_valid():
    params = P.load(ROOT / "params.yaml")
    assert params["targets"][0] == "demo"
    assert params["methods"]["itq"]["n_iter"] == 50


def base():
    return P.load_yaml(ROOT / "params.yaml")


@pytest.mark.parametrize("mutate, key", [
    (lambda p: p.update(bogus=1), "(top level)"),
    (lambda p: p["methods"]["itq"].update(n_iter=-3), "methods.itq.n_iter"),
    (lambda p: p["methods"]["itq"].update(hasher="nope"), "methods.itq.hasher"),
    (lambda p: p["methods"]["itq"].update(typo_key=3), "methods.itq"),
    (lambda p: p["evaluation"].update(tie_rule="random"), "evaluation.tie_rule"),
    (lambda p: p["experiments"]["demo"].update(bits=[12]), "experiments.demo.bits.0"),
    (lambda p: p["experiments"]["demo"].pop("split"), "experiments.demo"),
    (lambda p: p["features"]["cnn-small"]["pretrain"].update(lr=0), "features.cnn-small.pretrain.lr"),
    (lambda p: p["experiments"]["demo"].update(published=[{"source": "s", "method": "itq", "metric": "map",
                                                            "values": {16: 1.5}}]),
     "experiments.demo.published.0.values.16"),
])
def test_invalid_values_name_the_key(mutate, key):
    p = base()
    mutate(p)
    with pytest.raises(PseudosupError) as e:
        P.validate(p, ROOT / "params.yaml")
    assert f"key '{key}'" in str(e.value)


@pytest.mark.parametrize("mutate, text", [
    (lambda p: p["experiments"]["demo"]["methods"].append("itq2"), "unknown method 'itq2'"),
    (lambda p: p["experiments"]["demo"]["features"].append("sift"), "unknown feature 'sift'"),
    (lambda p: p.update(targets=["nope"]), "unknown experiment 'nope'"),
    (lambda p: p["experiments"]["demo"]["gallery"].update(bits=128), "gallery.bits"),
    (lambda p: p["experiments"]["demo"].update(published=[{"source": "s", "method": "sh", "metric": "map",
                                                            "values": {16: 0.1}}]),
     r"demo.published\[0\].method: 'sh' is not one of the experiment's methods"),
    (lambda p: p["experiments"]["demo"].update(published=[{"source": "s", "method": "itq", "metric": "map",
                                                            "values": {16: 0.1, 48: 0.2}}]),
     r"demo.published\[0\].values: \[48\] bits not among the experiment's bits"),
])
def test_dangling_references_are_reported(mutate, text):
    p = base()
    mutate(p)
    with pytest.raises(PseudosupError, match=text):
        P.validate(p, ROOT / "params.yaml")


def test_defaults_are_filled():
    p = base()
    del p["evaluation"]
    del p["methods"]["itq"]["n_iter"]
    v = P.validate(p, ROOT / "params.yaml")
    assert v["evaluation"]["tie_rule"] == "expected"
    assert v["methods"]["itq"]["n_iter"] == 50
    assert "n_iter" not in p["methods"]["itq"]  # input not modified


def test_stage_sees_only_declared_keys():
    s = P.slice_of(P.load(ROOT / "params.yaml"), ["seed", "methods.itq"])
    assert str(s) == "seed methods.itq"
    assert s.get_key("methods.itq.n_iter") == 50
    with pytest.raises(PseudosupError, match="only declared"):
        s.get_key("evaluation.tie_rule")


def test_snakemake_refuses_invalid_params_before_any_job(tmp_path):
    project = copy_project(tmp_path)
    p = base()
    p["methods"]["itq"]["n_iter"] = "many"
    (project / "bad.yaml").write_text(yaml.safe_dump(p))
    proc = snakemake(project, "-n", "--cores", "1", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "methods.itq.n_iter" in proc.stderr + proc.stdout


def test_cli_validate_params_reports_the_key(tmp_path):
    p = base()
    p["mining"]["k"] = 0
    bad = tmp_path / "params.yaml"
    (tmp_path / "workflow").symlink_to(ROOT / "workflow")
    bad.write_text(yaml.safe_dump(p))
    proc = run_cli("validate-params", "--params", str(bad), check=False)
    assert proc.returncode == 2
    assert "mining.k" in proc.stderr and "less than the minimum of 1" in proc.stderr


def test_duplicate_keys_are_refused_at_any_depth(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("seed: 0\nmethods:\n  itq:\n    hasher: itq\n    n_iter: 5\n    n_iter: 50\n")
    with pytest.raises(PseudosupError, match=r"p.yaml:6: duplicate key 'methods.itq.n_iter' \(first at line 5\)"):
        P.load_yaml(bad)
    bad.write_text("seed: 0\nthreads: 2\nseed: 1\n")
    with pytest.raises(PseudosupError, match=r"p.yaml:3: duplicate key 'seed' \(first at line 1\)"):
        P.load_yaml(bad)
    # equal keys in different mappings, and YAML merge keys, are not duplicates
    bad.write_text("a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  k: 3\nc: [{k: 1}, {k: 2}]\n")
    assert P.load_yaml(bad)["b"] == {"k": 3, "j": 2}


def test_snakemake_refuses_a_duplicate_key_before_any_job(tmp_path):
    project = copy_project(tmp_path)
    text = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(text.replace("threads: 2", "threads: 2\nthreads: 1", 1))
    proc = snakemake(project, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "duplicate key 'threads'" in proc.stderr + proc.stdout


@pytest.mark.parametrize("mutate, text", [
    (lambda p: p["experiments"]["demo"].update(split="nope-q1"),
     "experiments.demo.split: split 'nope-q1' is neither committed (data/splits/nope-q1.json) nor drawable"),
    (lambda p: p["experiments"]["demo"].update(split="cifar10-test-q1k"),
     "split 'cifar10-test-q1k' is a split of dataset 'cifar10-test-jpg', not of the experiment's dataset "
     "'fashion-mnist'"),
    (lambda p: p.update(splits={"fmnist-q1k-b": {"dataset": "fashion-mnist", "queries_per_class": 0}}),
     "splits.fmnist-q1k-b.queries_per_class"),
    (lambda p: p.update(splits={"fmnist-q1k": {"dataset": "folder-x", "queries_per_class": 5}}),
     "splits.fmnist-q1k.dataset: 'folder-x', but the committed data/splits/fmnist-q1k.json is a split of "
     "'fashion-mnist'"),
])
def test_experiment_splits_must_exist_and_match_the_dataset(mutate, text):
    p = base()
    mutate(p)
    with pytest.raises(PseudosupError) as e:
        P.validate(p, ROOT / "params.yaml")
    assert text in str(e.value)


def test_split_defined_in_params_is_accepted_with_defaults():
    p = base()
    p["splits"] = {"fm-q5": {"dataset": "fashion-mnist", "queries_per_class": 5}}
    p["experiments"]["demo"]["split"] = "fm-q5"
    v = P.validate(p, ROOT / "params.yaml")
    assert v["splits"]["fm-q5"] == {"dataset": "fashion-mnist", "queries_per_class": 5, "protocol": "per-class",
                                    "database_per_class": None, "train_per_class": None, "seed": 0}
