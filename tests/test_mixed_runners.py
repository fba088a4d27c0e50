"""Snakemake and DVC on the same outputs (docs/cluster.md's route): build with
Snakemake, record with `dvc commit`; then neither runner has anything to do, and
`dvc repro <rule>` runs a whole rule's jobs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from .conftest import BIN, FMNIST_DEBIAN, ROOT, copy_project, snakemake

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FMNIST_DEBIAN.is_dir(), reason="needs Debian's dataset-fashion-mnist"),
              pytest.mark.skipif(shutil.which("git") is None, reason="needs git")]

TINY = ["--cores", "2", "--configfile", "tests/config/tiny.yaml"]


def _run(project, *args):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run([str(a) for a in args], cwd=project, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _clone_like(project):
    """The project as a clone has it: git, and the committed DVC config (not `dvc init`'s)."""
    _run(project, "git", "init", "-q")
    _run(project, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init")
    shutil.copytree(ROOT / ".dvc", project / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copy2(ROOT / ".dvcignore", project / ".dvcignore")
    _run(project, BIN / "pseudosup", "dvc-yaml", "--params", "tests/config/tiny.yaml")


def test_snakemake_then_dvc_commit_leaves_both_runners_nothing_to_do(tmp_path):
    project = copy_project(tmp_path)
    _clone_like(project)
    snakemake(project, *TINY)
    _run(project, BIN / "dvc", "commit", "-f", "-q")
    assert json.loads(_run(project, BIN / "dvc", "status", "--json").stdout) == {}
    dry = snakemake(project, *TINY, "--dry-run")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    # the committed outputs are the workspace files themselves (hard links), not copies
    model = project / "models/tiny/pixels/itq-16.npz"
    assert model.stat().st_nlink == 2


def test_dvc_repro_of_a_rule_runs_all_its_jobs(tmp_path):
    project = copy_project(tmp_path)
    _clone_like(project)
    out = _run(project, BIN / "dvc", "repro", "train_hasher").stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    hashers = {s for s in ran if s.startswith("train_hasher@")}
    assert hashers == {f"train_hasher@tiny-{f}-{m}-{b}" for f in ("pixels", "cnn-small")
                       for m in ("lsh", "itq") for b in (16, 32)}, ran
    assert not any(s.startswith(("evaluate", "report")) for s in ran), ran  # upstream only
    assert (project / "models/tiny/cnn-small/itq-32.npz").exists()
