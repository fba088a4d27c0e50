"""Named targets: `snakemake --cores 2 <experiment>` builds exactly that experiment, for
every experiment of params.yaml; `make demo` builds the demo alone."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import ROOT, SHARED, copy_project, snakemake


def job_counts(project, *targets: str) -> dict[str, int]:
    out = snakemake(project, *targets, "--dry-run", "--quiet", "rules").stdout  # --quiet takes several values: targets first
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\S+)\s+(\d+)$", out, re.M)}


PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project copy with ../shared beside it, as in a checkout (the real-data experiments
    read ../shared/data)."""
    base = tmp_path_factory.mktemp("targets")
    if SHARED.is_dir():
        (base / "shared").mkdir()
        (base / "shared" / "data").symlink_to(SHARED)
    return copy_project(base / "main")


EXPERIMENTS = sorted(PARAMS["experiments"])


def needs_shared(experiment: str) -> bool:
    return PARAMS["experiments"][experiment]["dataset"] != "fashion-mnist"


def test_every_experiment_is_a_target_rule(project):
    listed = set(snakemake(project, "--list-target-rules").stdout.split())
    assert set(EXPERIMENTS) <= listed, set(EXPERIMENTS) - listed


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_target_builds_that_experiment_alone(project, experiment):
    if needs_shared(experiment) and not SHARED.is_dir():
        pytest.skip(f"experiment {experiment} reads the real data, absent at {SHARED}")
    jobs = job_counts(project, experiment)
    assert jobs.get(experiment) == 1
    # exactly one experiment is aggregated: one report (hashing/feature experiments) or
    # one evaluate_retrieval (cross-feature experiments)
    assert jobs.get("report", 0) + jobs.get("evaluate_retrieval", 0) == 1, jobs
    assert "all" not in jobs and "everything" not in jobs


def test_demo_target_trains_only_the_demo_grid(project):
    exp = PARAMS["experiments"]["demo"]
    jobs = job_counts(project, "demo")
    assert jobs["train_hasher"] == len(exp["features"]) * len(exp["methods"]) * len(exp["bits"])
    assert jobs["fetch_dataset"] == 1


def test_make_demo_builds_the_demo_target():
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)[1]
    assert re.search(r"snakemake --cores \$\(CORES\) demo\b", recipe), recipe


def test_experiment_named_like_a_rule_is_refused(tmp_path):
    project = copy_project(tmp_path)
    cfg = yaml.safe_load((project / "tests/config/tiny.yaml").read_text())
    cfg["experiments"]["features"] = cfg["experiments"].pop("tiny")
    cfg["targets"] = ["features"]
    (project / "clash.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(project, "--configfile", "clash.yaml", "--dry-run", check=False)
    assert proc.returncode != 0
    assert "experiment name(s) ['features'] are also rule names" in proc.stdout + proc.stderr
