"""dvc.yaml generation from Snakemake's dry run: one foreach stage per rule whose items
carry only what varies, expanded back exactly to Snakemake's jobs."""

from __future__ import annotations

import pytest
import yaml

from pseudosup.dvcgen import JOBS, expand, parse_dry_run, render
from pseudosup.io import PseudosupError

DRY_RUN = """\
Building DAG of jobs...
[Thu Nov 26 10:01:12 2026]
rule fetch:
    input: src/a.py
    output: data/raw/mnist
    log: logs/fetch/mnist.log
    jobid: 2
    reason: Forced execution
    wildcards: dataset=mnist
    resources: tmpdir=/tmp
Shell command: pseudosup download --params params.yaml --keys paths --dataset mnist --out data/raw/mnist

[Thu Nov 26 10:01:12 2026]
localrule all:
    input: data/raw/mnist
    jobid: 0
    reason: Forced execution
    resources: tmpdir=/tmp
Shell command: None
"""


def stages_of(files: dict[str, str]) -> dict:
    """dvc.yaml's stages with their items from the jobs file, as DVC reads them."""
    stages = yaml.safe_load(files["dvc.yaml"])["stages"]
    jobs = yaml.safe_load(files[JOBS])["jobs"] if JOBS in files else {}
    return {r: ({**s, "foreach": jobs[r]} if "foreach" in s else s) for r, s in stages.items()}


def test_dry_run_jobs_are_parsed_and_aggregate_rules_dropped():
    jobs = parse_dry_run(DRY_RUN)
    assert jobs == [{"rule": "fetch", "input": ["src/a.py"], "output": ["data/raw/mnist"],
                     "log": ["logs/fetch/mnist.log"], "wildcards": {"dataset": "mnist"},
                     "cmd": "pseudosup download --params params.yaml --keys paths --dataset mnist --out data/raw/mnist"}]


def train_job(exp, feat, meth, bits, dataset, extra_code=(), split=True):
    cmd = (f"pseudosup train --params params.yaml --keys seed methods.{meth} --method {meth} --bits {bits} "
           f"--dataset {dataset} --features data/features/{dataset}/{feat}.npy "
           + (f"--split data/splits/{exp}.json " if split else "")
           + f"--out models/{exp}/{feat}/{meth}-{bits}.npz")
    inputs = [f"data/features/{dataset}/{feat}.npy", "src/stages/train.py", *extra_code]
    if split:
        inputs.append(f"data/splits/{exp}.json")
    return {"rule": "train_hasher", "input": inputs, "output": [f"models/{exp}/{feat}/{meth}-{bits}.npz"],
            "log": [], "wildcards": {"experiment": exp, "feature": feat, "method": meth, "bits": str(bits)},
            "cmd": cmd}


RAW = {"seed": 0, "methods": {"itq": {}, "ldph-itq": {}}}


def test_a_rule_becomes_one_foreach_stage_whose_items_hold_what_varies():
    jobs = [train_job("demo", "pixels", "itq", 16, "fmnist", ["src/methods/itq.py"]),
            train_job("demo", "pixels", "ldph-itq", 32, "fmnist", ["src/methods/itq.py", "src/methods/ldph.py"]),
            train_job("cifar", "gist", "itq", 16, "cifar10", ["src/methods/itq.py"], split=False)]
    stages = stages_of(render(jobs, raw_params=RAW))
    stage = stages["train_hasher"]
    assert set(stage["foreach"]) == {"demo-pixels-itq-16", "demo-pixels-ldph-itq-32", "cifar-gist-itq-16"}
    do = stage["do"]
    assert "--dataset ${item.dataset}" in do["cmd"] and "data/features/${item.dataset}/${item.feature}.npy" in do["deps"]
    assert do["params"] == ["methods.${item.method}", "seed"]
    assert do["outs"] == ["models/${item.experiment}/${item.feature}/${item.method}-${item.bits}.npz"]
    # per-job code files in slots (DVC cannot interpolate a list into deps); shorter
    # lists repeat an entry, which DVC accepts
    ldph = stage["foreach"]["demo-pixels-ldph-itq-32"]
    assert {ldph["dep1"], ldph["dep2"]} == {"data/splits/demo.json", "src/methods/ldph.py"}
    assert stage["foreach"]["cifar-gist-itq-16"]["split"] == ""  # an option only some jobs pass
    expanded = expand(stages)
    for j in jobs:
        got = expanded[f"train_hasher@{j['wildcards']['experiment']}-{j['wildcards']['feature']}-"
                       f"{j['wildcards']['method']}-{j['wildcards']['bits']}"]
        assert got["cmd"] == j["cmd"] and got["outs"] == j["output"]
        assert set(j["input"]) <= set(got["deps"])


def test_many_per_job_files_become_their_folder():
    runs = {e: [f"results/runs/{e}/f/m-{b}.json" for b in range(n, n + 8)] for e, n in (("demo", 0), ("cifar", 100))}
    jobs = [{"rule": "report", "input": [*runs[e], "src/report.py"], "output": [f"results/metrics/{e}.json"],
             "log": [], "wildcards": {"experiment": e},
             "cmd": f"pseudosup report --experiment {e} --runs {' '.join(runs[e])} --metrics results/metrics/{e}.json"}
            for e in ("demo", "cifar")]
    stages = stages_of(render(jobs))
    assert "results/runs/${item.experiment}" in stages["report"]["do"]["deps"]
    assert stages["report"]["do"]["outs"] == [{"results/metrics/${item.experiment}.json": {"cache": False}}]


def test_outputs_not_named_by_wildcards_are_refused():
    jobs = [{"rule": "r", "input": [], "output": [f"out/{n}.txt"], "log": [], "wildcards": {"x": str(i)},
             "cmd": f"pseudosup r --x {i}"} for i, n in enumerate(("a", "b"))]
    with pytest.raises(PseudosupError, match="outputs are not named by its wildcards"):
        render(jobs)


def test_substitution_marks_never_match_a_later_value():
    """Item 16's placeholder mark must not be matched by a value "16" substituted after
    it (seen: a job with 12 dependency slots turned models/demo/... into models/ 16 /...)."""
    from pseudosup.dvcgen import _substitute

    # longest first: the 16 dependency paths take marks 0-15, "cnn-small" mark 16
    values = {f"dep{i}": f"methods/hashing/module{i:02d}.py" for i in range(16)}
    values.update(experiment="demo", bits="16", feature="cnn-small", method="bihalf")
    got = _substitute("models/demo/cnn-small/bihalf-16.npz", values)
    assert got == "models/${item.experiment}/${item.feature}/${item.method}-${item.bits}.npz"
