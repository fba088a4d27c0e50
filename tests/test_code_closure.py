"""Each job's code dependencies are small and exact (issue 14), and the registries are
lazy: listing names imports no plugin, and every registered name resolves.

The job-level facts are read off Snakemake's own dry run of the demo target (every job
forced, so each is printed with its inputs): that is what the rules really get, and
what `pseudosup dvc-yaml` turns into DVC deps.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pseudosup import workflow as W

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def dry_run_jobs(target: str) -> list[dict]:
    """Every job of `target` as Snakemake plans it: rule, wildcards, input files."""
    r = subprocess.run([str(SNAKEMAKE), "-n", "--forceall", "--cores", "1", target], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return parse_dry_run(r.stdout)


def parse_dry_run(text: str) -> list[dict]:
    """The jobs of a `snakemake -n --forceall` printout: rule, input files, wildcards, log."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \S+:\n)", text):
        m = re.match(r"(?:local)?rule (\S+):\n", block)
        if not m:
            continue
        job = {"rule": m.group(1), "input": [], "wildcards": {}, "log": None}
        for line in block.splitlines():
            key, _, value = line.strip().partition(": ")
            if key == "input":
                job["input"] = value.split(", ")
            elif key == "wildcards":
                job["wildcards"] = dict(kv.split("=", 1) for kv in value.split(", "))
            elif key == "log":
                job["log"] = value
        jobs.append(job)
    return jobs


@pytest.fixture(scope="module")
def demo_jobs():
    return dry_run_jobs("demo")


def code_of(job) -> list[str]:
    return [f for f in job["input"] if f.startswith("src/")]


def test_fashion_mnist_itq_training_depends_on_at_most_10_source_files(demo_jobs):
    [job] = [j for j in demo_jobs if j["rule"] == "train_hasher"
             and j["wildcards"] == {"experiment": "demo", "feature": "pixels", "method": "itq", "bits": "16"}]
    code = code_of(job)
    assert len(code) <= 10, f"{len(code)} source files: {code}"
    assert "src/pseudosup/methods/hashing/itq.py" in code and "src/pseudosup/stages/train.py" in code
    assert not [f for f in code if "/data/" in f and not f.endswith("splits.py")], code  # ITQ reads no dataset


def test_editing_ukbench_makes_no_demo_job_stale(demo_jobs):
    assert len(demo_jobs) > 20 and {"train_hasher", "extract_features", "evaluate_hasher"} <= {
        j["rule"] for j in demo_jobs}
    stale = [j["rule"] for j in demo_jobs if "src/pseudosup/data/ukbench.py" in j["input"]]
    assert stale == []


def test_jobs_get_only_their_own_plugins(demo_jobs):
    """A job lists the plugin its wildcards select, not the others of its kind."""
    for j in demo_jobs:
        code = code_of(j)
        # base.py (linear hashers), head.py + torch_state.py (the torch heads' shared frame)
        hashers = {Path(f).stem for f in code if "/methods/hashing/" in f} - {"base", "head", "torch_state"}
        if j["rule"] == "train_hasher":
            assert hashers == {j["wildcards"]["method"]}, (j["wildcards"], code)
            frame = {Path(f).stem for f in code if "/methods/hashing/" in f} - hashers
            assert ("head" in frame) == (j["wildcards"]["method"] in ("bihalf", "greedyhash")), (j["wildcards"], code)
        if j["rule"] == "extract_features":
            wanted = {"pixels": "pixels.py", "cnn-small": "smallcnn.py"}[j["wildcards"]["feature"]]
            assert f"src/pseudosup/features/{wanted}" in code
            assert not {"gist.py", "bow.py", "cnn.py", "tflite.py"} & {Path(f).name for f in code}, code
        datasets = {Path(f).stem for f in code if re.match(r"src/pseudosup/data/[a-z_]+\.py$", f)}
        assert datasets <= {"fashion_mnist", "registry", "splits", "download"}, (j["rule"], code)


def test_the_rules_get_what_plan_code_computes(demo_jobs):
    from pseudosup import params as P

    plan = W.Plan(P.validate(P.load_yaml(ROOT / "params.yaml"), ROOT / "params.yaml"))
    stage = {"train_hasher": "train", "extract_features": "features", "pretrain_cnn": "pretrain"}
    checked = 0
    for j in demo_jobs:
        if j["rule"] in stage:
            assert code_of(j) == plan.code(stage[j["rule"]], **j["wildcards"])
            checked += 1
    assert checked > 10


def test_docstring_only_and_neutral_modules_are_not_code():
    code = W.code_files("train")
    assert "src/pseudosup/stages/__init__.py" not in code  # only a docstring: runs nothing
    assert not {"src/pseudosup/log.py", "src/pseudosup/__init__.py"} & set(code)


@pytest.mark.parametrize("module", W.NEUTRAL)
def test_neutral_modules_import_nothing_from_the_package(module):
    """log.py, machine.py and the package __init__ may stay out of every job's code only
    while they compute nothing a job writes: they must not pull in other package code."""
    tree = ast.parse(W._module_file(module).read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.level or
               (n.module or "").startswith("pseudosup"))]
    imports += [n for n in ast.walk(tree) if isinstance(n, ast.Import)
                and any(a.name.startswith("pseudosup") for a in n.names)]
    assert imports == [], f"{module} imports package code; drop it from workflow.NEUTRAL"


def test_function_level_imports_count_only_when_reached():
    """A module's function that nobody calls does not drag its imports in."""
    code = W.code_files("train")
    assert "src/pseudosup/data/splits.py" in code  # load_split
    assert "src/pseudosup/data/imagefolder.py" not in code  # only splits' drawing functions use it


# --- the registries ---------------------------------------------------------------------------------

def test_names_import_no_plugin():
    probe = """
import sys
from pseudosup.data import registry as D
from pseudosup.methods import registry as M
from pseudosup.features import extractors as E
assert D.names() and M.names() and E.names()
[M.entry(n) for n in M.names()]; [E.entry(n) for n in E.names()]; [D.module_of(n) for n in D.names()]
E.needs_fit({"extractor": "sift-bow"})
plugins = set(D.MODULES.values()) | {e.module for e in M.ENTRIES.values()} | {
    "pseudosup.features." + m for m in ("gist", "bow", "cnn", "pixels", "smallcnn", "tflite", "sift")}
print(sorted(plugins & set(sys.modules)))
"""
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_every_dataset_name_resolves_and_the_table_is_complete():
    from pseudosup.data import registry as D

    for name in D.MODULES:
        assert D.get(name).name == name
    for name, factory in D._REGISTRY.items():  # no plugin registers a name the table lacks
        if factory.__module__.startswith("pseudosup."):
            assert D.MODULES.get(name) == factory.__module__, name
    assert D.get("folder-mine").name == "folder-mine"


def test_every_hasher_resolves_and_its_class_agrees_with_its_entry():
    from pseudosup.methods import registry as M

    for name in M.names():
        cls = M.get(name)
        e = M.entry(name)
        assert cls.name == name and cls.__module__ == e.module
        assert (cls.supervised, cls.inputs) == (e.supervised, e.inputs)
        # the train stage passes `threads` to the hashers whose entry says they take it
        assert e.threads == ("threads" in inspect.signature(cls).parameters), name
    assert sorted(M.HASHERS) == M.names()  # no plugin registers a name the table lacks


def test_a_class_that_contradicts_its_entry_is_refused(monkeypatch):
    from pseudosup.io import PseudosupError
    from pseudosup.methods import registry as M

    monkeypatch.setitem(M.ENTRIES, "fake", M.Hasher("tests.fake"))
    monkeypatch.setattr(M, "HASHERS", {})
    with pytest.raises(PseudosupError, match="supervised=True .* ENTRIES says False"):
        @M.register("fake")
        class Fake:
            supervised = True


def test_every_extractor_resolves():
    from pseudosup.features import extractors as E

    for name in E.names():
        for target in E.entry(name).targets:
            assert callable(E._resolve(target)), target


def test_unknown_names_say_what_exists():
    from pseudosup.data import registry as D
    from pseudosup.features import extractors as E
    from pseudosup.io import PseudosupError
    from pseudosup.methods import registry as M

    for fn, what in ((D.get, "fashion-mnist"), (M.get, "itq"), (E.entry, "pixels")):
        with pytest.raises(PseudosupError, match=what):
            fn("nope")


# --- completeness: the code a job really runs is among its declared code ------------------------
# The tests above bound the lists from above; this one bounds them from below, which is
# the direction that matters: a module a job runs but does not list would not rerun the
# job when it changes. Every `pseudosup` command of the tiny build (conftest.tiny_built)
# runs under a profiler that records which package files had a function called; each must be
# in that job's code inputs, apart from the modules that only record how a file was made
# (workflow.NEUTRAL) and the command-line front end cli.py (argument parsing does not
# change what a stage computes).

def _log_of(argv: list[str]) -> str:
    return argv[argv.index("--log") + 1]


@pytest.mark.slow
def test_every_file_a_job_runs_is_among_its_code_inputs(tiny_built):
    import json

    declared = {j["log"]: set(code_of(j)) for j in parse_dry_run(tiny_built.dry_run) if j["log"]}

    exempt = {f"src/pseudosup/{m.replace('pseudosup', '').strip('.').replace('.', '/') or '__init__'}.py"
              for m in W.NEUTRAL} | {"src/pseudosup/cli.py"}
    checked, missing = 0, {}
    for trace in tiny_built.traces.glob("*.json"):
        t = json.loads(trace.read_text())
        if "--log" not in t["argv"] or _log_of(t["argv"]) not in declared:
            continue
        ran = {str(Path(f).resolve().relative_to(ROOT)) for f in t["files"]}
        extra = sorted(ran - declared[_log_of(t["argv"])] - exempt)
        checked += 1
        if extra:
            missing[_log_of(t["argv"])] = extra
    assert checked >= 20, f"only {checked} traced jobs matched the dry run"  # the tiny config has ~28 jobs
    assert not missing, f"jobs ran code they do not list as inputs: {missing}"


def test_editing_ukbench_makes_no_demo_stage_stale_in_dvc():
    """The other runner: dvc.yaml's demo stages (as DVC expands them) do not list it."""
    from pseudosup.dvcgen import expand, read_stages

    demo = {name: s for name, s in expand(read_stages(ROOT)).items()
            if "demo" in name.split("@", 1)[-1].split("-") or "fashion-mnist" in name}
    assert len(demo) > 20 and any(n.startswith("train_hasher@demo-") for n in demo), sorted(demo)[:5]
    assert [n for n, s in demo.items() if "src/pseudosup/data/ukbench.py" in s["deps"]] == []
