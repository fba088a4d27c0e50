"""SLURM: the pipeline through snakemake-executor-plugin-slurm, on a real cluster.

Quick tests (always run): device selection (src/pseudosup/device.py) and the pre-flight
check `pseudosup slurm-check` on bad input that needs no cluster (no SLURM commands,
plugin missing).

Cluster tests (`pytest -m slurm`, as .ci/run does; root only): install slurm-wlm and
munge from Debian, start munged/slurmctld/slurmd on localhost (scripts/slurm/), run the
commands of docs/cluster.md word for word (plus the tiny configfile), check that every
job ran as a SLURM job and the metrics equal a local run's; then the bad inputs: an
unreachable controller, a job killed by SLURM for exceeding its memory, and the rerun
that resumes. They are skipped unless selected with `-m slurm`: they install packages,
write /etc/slurm/slurm.conf and take minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import BIN, FMNIST_DEBIAN, ROOT, copy_project, run_cli

SCRIPTS = ROOT / "scripts" / "slurm"
DOCS = ROOT / "docs" / "cluster.md"
TINY = ["--configfile", "tests/config/tiny.yaml"]
SLURM_DIR = Path(os.environ.get("PSEUDOSUP_SLURM_DIR", "/tmp/pseudosup-slurm"))
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}


# ---------------------------------------------------------------- device selection

@pytest.fixture
def no_device_env(monkeypatch):
    monkeypatch.delenv("PSEUDOSUP_DEVICE", raising=False)


def test_device_is_cuda_when_torch_sees_a_gpu_else_cpu(monkeypatch, no_device_env):
    import torch

    from pseudosup import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.torch_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.torch_device() == torch.device("cuda", 0)
    monkeypatch.setenv("PSEUDOSUP_DEVICE", "cpu")  # forced CPU wins over an available GPU
    assert device.torch_device() == torch.device("cpu")


def test_faiss_uses_gpus_only_when_its_build_has_them(monkeypatch, no_device_env):
    import faiss
    import numpy as np

    from pseudosup import device

    index = faiss.IndexFlatL2(4)
    index.add(np.eye(4, dtype=np.float32))
    assert device.faiss_gpus() == (faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0, raising=False)
    assert device.faiss_gpus() == 0 and device.faiss_index(index) is index
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2, raising=False)
    assert device.faiss_gpus() == 2
    assert device.faiss_gpus("cpu") == 0


def test_device_demanded_but_absent_or_misspelt_is_a_clear_error(monkeypatch, no_device_env):
    import faiss
    import torch

    from pseudosup import device
    from pseudosup.io import PseudosupError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0, raising=False)
    monkeypatch.setenv("PSEUDOSUP_DEVICE", "cuda")
    with pytest.raises(PseudosupError, match="PSEUDOSUP_DEVICE=cuda but torch .* sees no CUDA GPU"):
        device.torch_device()
    with pytest.raises(PseudosupError, match="PSEUDOSUP_DEVICE=cuda but faiss"):
        device.faiss_gpus()
    monkeypatch.setenv("PSEUDOSUP_DEVICE", "gpu0")
    with pytest.raises(PseudosupError, match="PSEUDOSUP_DEVICE='gpu0': expected one of auto, cpu, cuda"):
        device.torch_device()


def test_device_record_names_only_the_hardware(no_device_env):
    import torch

    from pseudosup import device

    rec = device.describe(torch.device("cpu"), 0)
    assert rec == {"kind": "cpu", "torch": "cpu", "faiss": "cpu"}  # no host, job id or time
    assert device.describe(None, 2) == {"kind": "cuda", "faiss": "gpu x2"}
    assert device.describe(torch.device("cpu")) == {"kind": "cpu", "torch": "cpu"}
    assert device.describe() == {"kind": "cpu"}  # numpy/OpenCV-only stages
    json.dumps(rec)


# ------------------------------------------------ pre-flight without a cluster

def test_preflight_reads_the_profile():
    from pseudosup.commands.slurm_check import settings_from_profile

    s = settings_from_profile(ROOT / "profiles/slurm")
    assert s.status_command == "squeue" and s.init_seconds == 10
    assert s.partitions == {""} and s.accounts == set()  # the cluster's default partition, no account


def test_preflight_first_status_check_delay_defaults_to_the_plugins(tmp_path):
    """Unset (missing, or None as the workflow hook passes it) means Settings.init_seconds,
    the plugin's own default; a value that is set is kept."""
    import dataclasses

    from pseudosup.commands.slurm_check import Settings, settings_from_json, settings_from_profile

    plugin = pytest.importorskip("snakemake_executor_plugin_slurm")
    default = {f.name: f.default for f in dataclasses.fields(plugin.ExecutorSettings)}
    assert Settings.init_seconds == default["init_seconds_before_status_checks"]
    assert settings_from_json("{}").init_seconds == Settings.init_seconds
    assert settings_from_json('{"init_seconds": null}').init_seconds == Settings.init_seconds
    assert settings_from_json('{"init_seconds": 7}').init_seconds == 7
    key = "slurm-init-seconds-before-status-checks"
    for line, expected in [("", Settings.init_seconds), (f"{key}: null", Settings.init_seconds), (f"{key}: 7", 7)]:
        (tmp_path / "config.yaml").write_text(f"executor: slurm\n{line}\n")
        assert settings_from_profile(tmp_path).init_seconds == expected, line


def test_preflight_rejects_a_profile_that_is_not_slurm(tmp_path):
    (tmp_path / "config.yaml").write_text("cores: 2\n")
    proc = run_cli("slurm-check", "--profile", str(tmp_path), check=False)
    assert proc.returncode == 2 and "`executor: slurm` missing" in proc.stdout + proc.stderr
    proc = run_cli("slurm-check", "--profile", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 2 and "nope/config.yaml: not found" in proc.stdout + proc.stderr


def test_preflight_without_slurm_commands_says_where_to_run(tmp_path):
    # a PATH with python and pseudosup but no SLURM client commands
    proc = run_cli("slurm-check", "--profile", str(ROOT / "profiles/slurm"), check=False,
                   env={"PATH": f"{BIN}:{tmp_path}"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "nothing was submitted" in out and "SLURM client commands not on PATH: sbatch" in out
    assert "submit (login) host" in out


def hide_plugin(tmp_path: Path) -> dict:
    """Environment in which this Python cannot import or discover the SLURM plugins."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys, pkgutil\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('snakemake_executor_plugin_slurm'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
        "_iter = pkgutil.iter_modules\n"
        "pkgutil.iter_modules = lambda *a, **k: (m for m in _iter(*a, **k)\n"
        "    if not m.name.startswith('snakemake_executor_plugin_slurm'))\n")
    return {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}


def test_missing_plugin_is_a_clear_error_before_anything_is_submitted(tmp_path):
    env = hide_plugin(tmp_path)
    proc = run_cli("slurm-check", "--profile", str(ROOT / "profiles/slurm"), check=False, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "snakemake-executor-plugin-slurm is not installed in this Python environment" in out
    assert "make setup" in out
    # snakemake itself stops at its command line, before reading the workflow
    proc = subprocess.run([str(BIN / "snakemake"), "--profile", str(ROOT / "profiles/slurm"), "--dry-run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "invalid choice: 'slurm'" in proc.stderr


def fake_slurm(bin_dir: Path, min_job_age: int, sinfo: str, sacct_ok: bool) -> dict:
    """SLURM client commands that answer like a cluster with the given settings."""
    bin_dir.mkdir()
    scripts = {
        "scontrol": f'[ "$1" = ping ] && echo "Slurmctld(primary) at head is UP" && exit 0\n'
                    f'echo "MinJobAge               = {min_job_age} sec"',
        "sinfo": f"printf '{sinfo}'",
        "sacct": "exit 0" if sacct_ok else 'echo "sacct: error: Problem talking to the database" >&2; exit 1',
        "sacctmgr": 'echo "sacctmgr: error: Problem talking to the database" >&2; exit 1',
        "sshare": 'echo "sshare: error: Problem talking to the database" >&2; exit 1',
        "sbatch": "exit 1", "squeue": "exit 0", "scancel": "exit 0",
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{BIN}:{bin_dir}:/usr/bin:/bin"}


def test_preflight_lists_every_cluster_problem_with_what_to_do(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(
        "executor: slurm\nslurm-status-command: squeue\nslurm-init-seconds-before-status-checks: 10\n"
        "default-resources: [mem_mb=1000, slurm_partition=nope, slurm_account=acme]\n"
        "set-resources: {pretrain_cnn: {slurm_partition: gpu}}\n")
    env = fake_slurm(tmp_path / "bin", min_job_age=20, sinfo="cpu*|up|idle\\ngpu|up|drained\\n", sacct_ok=False)
    proc = run_cli("slurm-check", "--profile", str(profile), check=False, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "found 4 problem(s); nothing was submitted" in out
    assert "MinJobAge = 20 s < 30 s" in out                      # squeue would miss finished jobs
    assert "partition 'nope' does not exist (partitions: cpu, gpu)" in out
    assert "partition 'gpu' has no usable node (node states: drained)" in out
    assert "neither sacctmgr nor sshare can list your accounts" in out and "remove slurm_account" in out
    # no status command in the profile: the plugin would take sacct, which cannot answer here
    (profile / "config.yaml").write_text("executor: slurm\n")
    proc = run_cli("slurm-check", "--profile", str(profile), check=False, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "found 1 problem(s)" in out, out
    assert "job states would be queried with sacct, but sacct fails" in out
    assert "ok      the default partition (cpu) is up with usable nodes" in out


def test_preflight_passes_on_a_healthy_cluster(tmp_path):
    env = fake_slurm(tmp_path / "bin", min_job_age=300, sinfo="debug*|up|mixed\\n", sacct_ok=False)
    proc = run_cli("slurm-check", "--profile", str(ROOT / "profiles/slurm"), env=env)
    assert "SLURM pre-flight passed" in proc.stdout
    assert "job states via squeue: MinJobAge 300 s >= 30 s" in proc.stdout


def test_the_workflow_hook_checks_its_own_jobs_before_anything_is_submitted(tmp_path, monkeypatch):
    """The Snakefile's onstart hook (workflow.slurm_preflight) runs `pseudosup slurm-check`
    on the run's settings and the resources of its jobs; a problem stops the run."""
    from types import SimpleNamespace as NS

    from snakemake.exceptions import WorkflowError

    from pseudosup.commands.slurm_check import Settings
    from pseudosup.workflow import slurm_preflight

    def workflow(executor, resources, init=10):
        return NS(executor_plugin=NS(name=executor),
                  executor_settings=NS(status_command="squeue", init_seconds_before_status_checks=init),
                  dag=NS(needrun_jobs=lambda: [NS(resources=r) for r in resources]))

    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM commands: a check would fail
    slurm_preflight(workflow("local", [{"slurm_partition": "nope"}]))  # not a SLURM run: nothing checked
    env = fake_slurm(tmp_path / "bin", min_job_age=300, sinfo="cpu*|up|idle\\ngpu|up|drained\\n", sacct_ok=False)
    monkeypatch.setenv("PATH", env["PATH"])
    slurm_preflight(workflow("slurm", [{}, {"slurm_partition": "cpu"}]))  # passes
    with pytest.raises(WorkflowError) as err:
        slurm_preflight(workflow("slurm", [{"slurm_partition": "gpu"}, {"slurm_account": "acme"}]))
    msg = str(err.value)
    assert "pseudosup slurm-check: error: SLURM pre-flight found 2 problem(s); nothing was submitted" in msg, msg
    assert "partition 'gpu' has no usable node" in msg and "neither sacctmgr nor sshare" in msg
    assert "INFO" not in msg  # the command's log lines are left out
    proc = run_cli("slurm-check", "--settings", '{"partition": ["gpu"]}', check=False, env=env)
    assert proc.returncode == 2 and "not valid settings" in proc.stderr, proc.stderr
    # a delay the run leaves unset (None) is checked as the default, Settings.init_seconds
    need = 3 * Settings.init_seconds
    env = fake_slurm(tmp_path / "bin-unset", min_job_age=need - 1, sinfo="cpu*|up|idle\\n", sacct_ok=False)
    monkeypatch.setenv("PATH", env["PATH"])
    with pytest.raises(WorkflowError, match=f"MinJobAge = {need - 1} s < {need} s"):
        slurm_preflight(workflow("slurm", [{}], init=None))


# ---------------------------------------------------------------- the docs

def documented_commands(doc: Path = DOCS) -> list[list[str]]:
    """The commands of docs/cluster.md's <!-- slurm:run --> block, as argv lists."""
    block = re.search(r"<!-- slurm:run -->\s*```bash\n(.*?)```", doc.read_text(), re.S)
    assert block, f"{doc}: no ```bash block after <!-- slurm:run -->"
    lines = [ln.split("#")[0].strip() for ln in block.group(1).splitlines()]
    return [ln.split() for ln in lines if ln]


def test_docs_show_the_preflight_then_the_profile_run():
    cmds = documented_commands()
    assert cmds == [["pseudosup", "slurm-check", "--profile", "profiles/slurm"],
                    ["snakemake", "--profile", "profiles/slurm"]], cmds
    # a copy of the section in the README must show the same commands
    readme = (ROOT / "README.md").read_text()
    if "<!-- slurm:run -->" in readme:
        assert documented_commands(ROOT / "README.md") == cmds


# ---------------------------------------------------------------- a real cluster

def _selected(config) -> bool:
    expr = (config.getoption("markexpr") or "").replace(" ", "")
    return "slurm" in expr and "notslurm" not in expr


@pytest.fixture(scope="module")
def cluster(request):
    """A running single-node SLURM (installed and started here if needed, stopped by PID)."""
    if not _selected(request.config):
        pytest.skip("starts a real SLURM cluster (installs Debian packages, writes /etc/slurm/slurm.conf, "
                    "takes minutes): run `pytest -m slurm tests/test_slurm.py` as root (.ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("needs root: installs slurm-wlm and munge and starts slurmctld/slurmd/munged")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("needs Debian's slurm-wlm and munge (apt-get not found)")
    if not FMNIST_DEBIAN.is_dir():
        pytest.skip("needs Debian's dataset-fashion-mnist (the tiny config's data)")
    sh(SCRIPTS / "install.sh")
    started = "already running" not in sh(SCRIPTS / "start.sh").stdout
    try:
        yield SLURM_DIR
    finally:
        if started:
            sh(SCRIPTS / "stop.sh")


def sh(*argv, limit: int = 300, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command under `timeout -k`: snakemake ignores SIGTERM while it waits on jobs."""
    proc = subprocess.run(["timeout", "-k", "20", str(limit), *map(str, argv)], capture_output=True, text=True,
                          **{"env": ENV, **kw})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-5000:]}\n{proc.stderr[-8000:]}")
    return proc


def run_documented(project: Path, *extra: str, check: bool = True, env: dict | None = None):
    """docs/cluster.md's commands, word for word, plus `extra` (targets, options) and the
    tiny configfile on the snakemake line (last: --configfile takes several values)."""
    procs = []
    for argv in documented_commands():
        if argv[0] == "snakemake":
            argv = [*argv, *extra, *TINY]
        procs.append(sh(*argv, cwd=project, limit=900, check=check, env=env or ENV))
        if procs[-1].returncode != 0:
            break
    return procs


def run_id_of(run_output: str) -> str:
    return re.search(r"SLURM run ID: (\S+)", run_output).group(1)  # also every job's name


def slurm_jobs(run_output: str) -> dict[str, dict]:
    """SLURM jobs of one snakemake run: id -> state, rule (from the comment the plugin sets)."""
    run_id = run_id_of(run_output)
    out = subprocess.run(["squeue", "-h", "-t", "all", "--name", run_id, "-o", "%i|%T|%k"],
                         capture_output=True, text=True, check=True).stdout
    jobs = {}
    for line in out.split():
        jid, state, comment = line.split("|", 2)
        jobs[jid] = {"state": state, "rule": re.match(r"rule_(.+?)(_wildcards_|$)", comment).group(1)}
    return jobs


def planned_jobs(run_output: str) -> dict[str, int]:
    """The job counts per rule from snakemake's 'Job stats' table."""
    table = run_output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def metrics(project: Path) -> dict:
    return json.loads((project / "results/metrics/tiny.json").read_text())


@pytest.mark.slurm
def test_documented_commands_run_every_job_as_a_slurm_job_with_local_metrics(cluster, tmp_path):
    # the local reference run goes along while the SLURM run mostly waits on the scheduler
    local = copy_project(tmp_path / "local")
    with open(tmp_path / "local.log", "w") as local_log:
        local_run = subprocess.Popen(["timeout", "-k", "20", "900", BIN / "snakemake", "--cores", "2", *TINY],
                                     cwd=local, env=ENV, stdout=local_log, stderr=subprocess.STDOUT)
        try:
            project = copy_project(tmp_path / "slurm")
            check, run = run_documented(project)
            assert local_run.wait(timeout=900) == 0, (tmp_path / "local.log").read_text()[-6000:]
        finally:
            if local_run.poll() is None:
                local_run.kill()
    assert "SLURM pre-flight passed" in check.stdout
    out = run.stdout + run.stderr
    jobs = slurm_jobs(out)
    planned = planned_jobs(out)
    # every job but the aggregate target `all` (no command: Snakemake settles it itself)
    # was a SLURM job, and finished as COMPLETED
    assert planned.pop("all") == 1
    ran = {}
    for job in jobs.values():
        ran[job["rule"]] = ran.get(job["rule"], 0) + 1
    assert ran == planned, (ran, planned)
    assert {j["state"] for j in jobs.values()} == {"COMPLETED"}, jobs
    assert re.findall(r"^localrule (\w+):", out, re.M) == ["all"]
    # SLURM's own records: the completion log (emptied when the cluster starts) has each
    # job under the run's name, COMPLETED; and there is one SLURM log per job
    records = {f["JobId"]: f for f in (dict(re.findall(r"(\w+)=(\S*)", line))
                                       for line in (cluster / "jobcomp.log").read_text().splitlines())}
    for jid in jobs:
        assert (records[jid]["Name"], records[jid]["JobState"]) == (run_id_of(out), "COMPLETED"), records[jid]
    logs = {p.stem for p in (project / "logs/slurm").rglob("*.log")}
    assert set(jobs) <= logs
    # the same numbers as on one machine
    assert metrics(project) == metrics(local)
    # the device the CNN was trained on is recorded with it
    import torch
    ckpt = torch.load(project / "models/fashion-mnist/cnn-small/backbone.pt", weights_only=False)
    assert ckpt["meta"]["device"] == {"kind": "cpu", "torch": "cpu"}
    # DVC on the submit host: record what the cluster produced; then nothing is out of date
    def here(*a):
        return sh(*a, cwd=project)
    here("git", "init", "-q")
    here("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init")
    # the committed DVC config, as a clone has it (hard-linked cache: docs/cluster.md)
    shutil.copytree(ROOT / ".dvc", project / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copy2(ROOT / ".dvcignore", project / ".dvcignore")
    here(BIN / "pseudosup", "dvc-yaml", "--params", "tests/config/tiny.yaml")
    here(BIN / "dvc", "commit", "-f", "-q")
    assert json.loads(here(BIN / "dvc", "status", "--json").stdout) == {}
    # ... and Snakemake, on the cluster profile, still has nothing to do
    again = here(BIN / "snakemake", "--profile", "profiles/slurm", "--dry-run", *TINY)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]


@pytest.mark.slurm
def test_unreachable_controller_stops_before_anything_is_submitted(cluster, tmp_path):
    # the same cluster, but the clients are pointed at a port where no slurmctld listens
    conf = tmp_path / "slurm.conf"
    conf.write_text(re.sub(r"(?m)^SlurmctldPort=\d+", "SlurmctldPort=6999",
                           Path("/etc/slurm/slurm.conf").read_text()))
    env = {**ENV, "SLURM_CONF": str(conf)}
    before = (cluster / "jobcomp.log").read_text() if (cluster / "jobcomp.log").exists() else ""
    project = copy_project(tmp_path / "p")
    check, = run_documented(project, check=False, env=env)  # the pre-flight stops the sequence
    out = check.stdout + check.stderr
    assert check.returncode == 2, out
    assert "slurmctld is not reachable" in out and "nothing was submitted" in out and str(conf) in out
    # snakemake run anyway: fails, submits nothing, writes nothing
    run = sh(BIN / "snakemake", "--profile", "profiles/slurm", "data/raw/fashion-mnist", *TINY,
             cwd=project, check=False, env=env)
    assert run.returncode != 0
    # the plugin's error at submission, or the pre-flight's when the workflow runs it on start
    assert re.search(r"Unable to contact slurm controller|slurmctld is not reachable", run.stdout + run.stderr)
    assert "has been submitted with SLURM jobid" not in run.stdout + run.stderr
    assert not (project / "data/raw/fashion-mnist").exists()
    squeue = subprocess.run(["squeue", "-h", "-t", "PENDING,RUNNING"], capture_output=True, text=True)
    assert squeue.stdout.strip() == ""
    after = (cluster / "jobcomp.log").read_text() if (cluster / "jobcomp.log").exists() else ""
    assert after == before


@pytest.mark.slurm
def test_job_killed_for_memory_is_reported_with_its_log_and_a_rerun_resumes(cluster, tmp_path):
    project = copy_project(tmp_path / "p")
    target = "models/fashion-mnist/cnn-small/backbone.pt"  # download -> pre-train
    _, run = run_documented(project, target, "--set-resources", "pretrain_cnn:mem_mb=100", check=False)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    failed = re.search(r"Error in rule pretrain_cnn:\n\s+message: SLURM-job '(\d+)' failed, "
                       r"SLURM status is: '(\w+)'", out)
    assert failed, out[-6000:]
    assert failed.group(2) in ("FAILED", "OUT_OF_MEMORY", "CANCELLED")
    slurm_log = next((project / "logs/slurm/rule_pretrain_cnn").rglob(f"{failed.group(1)}.log"))
    assert str(slurm_log) in out  # reported with its log path...
    assert "exceeded memory limit" in slurm_log.read_text().lower()  # ...which says why
    assert not (project / "models/fashion-mnist/cnn-small/backbone.pt").exists()
    manifest = project / "data/raw/fashion-mnist/MANIFEST.json"
    finished = manifest.stat().st_mtime_ns
    # the rerun (the documented command, enough memory again) does only what is missing
    _, rerun = run_documented(project, target)
    jobs = slurm_jobs(rerun.stdout + rerun.stderr)
    assert sorted(j["rule"] for j in jobs.values()) == ["pretrain_cnn"], jobs
    assert {j["state"] for j in jobs.values()} == {"COMPLETED"}
    assert manifest.stat().st_mtime_ns == finished, "the finished download was redone"
    assert (project / target).exists()
