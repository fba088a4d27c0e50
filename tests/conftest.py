"""Shared fixtures: project paths, the real data in ../shared/data, tiny projects."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PSEUDOSUP_SHARED_DATA", ROOT.parent / "shared" / "data"))
FMNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "shared_data" in item.keywords and not SHARED.is_dir():
            item.add_marker(pytest.mark.skip(reason=f"real data not found at {SHARED} (../shared/data); "
                                                    "set PSEUDOSUP_SHARED_DATA to its location"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def fmnist_raw(tmp_path_factory) -> Path:
    """Fashion-MNIST raw files as the download stage lays them out."""
    if not FMNIST_DEBIAN.is_dir():
        pytest.skip(f"{FMNIST_DEBIAN} missing: apt-get install dataset-fashion-mnist")
    out = tmp_path_factory.mktemp("raw") / "fashion-mnist"
    run_cli("download", "--params", str(ROOT / "params.yaml"), "--keys", "paths", "--dataset", "fashion-mnist",
            "--out", str(out), "--cache", str(out.parent / "cache"))
    return out


def run_cli(*args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "pseudosup"), *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"pseudosup {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


PROJECT_FILES = ["Snakefile", "params.yaml", "workflow", "profiles", "src", "data/splits", "tests/config", "baselines"]


def copy_project(dest: Path) -> Path:
    """A copy of the project's workflow (not its outputs), to run pipelines in."""
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def snakemake(project: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "snakemake"), *args], cwd=project, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


# --- one traced build of the tiny config, shared by the read-only checks -------------------------
# Building the tiny config takes about a minute on 2 cores; the pipeline, report and
# code-closure checks read the same build instead of making their own. Every `pseudosup`
# command of the build runs under a profiler (tests/tracer.py) that records which package
# files had a function called, for tests/test_code_closure.py.

TINY = ["--cores", "2", "--configfile", "tests/config/tiny.yaml"]


class TinyBuild:
    def __init__(self, project: Path, proc, traces: Path, dry_run: str):
        self.project, self.proc, self.traces, self.dry_run = project, proc, traces, dry_run


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory) -> TinyBuild:
    base = tmp_path_factory.mktemp("tiny-built")
    project = copy_project(base / "p")
    tracer_bin, traces = base / "bin", base / "traces"
    tracer_bin.mkdir()
    traces.mkdir()
    wrapper = tracer_bin / "pseudosup"
    wrapper.write_text(f"#!{sys.executable}\n" + (ROOT / "tests" / "tracer.py").read_text())
    wrapper.chmod(0o755)
    dry = snakemake(project, *TINY, "--dry-run", "--forceall")
    env = {"PATH": f"{tracer_bin}:{BIN}:{os.environ['PATH']}", "PSEUDOSUP_TRACE": str(traces)}
    proc = subprocess.run([str(BIN / "snakemake"), *TINY], cwd=project, capture_output=True, text=True,
                          timeout=1200, env={**os.environ, **env})
    if proc.returncode != 0:
        raise AssertionError(f"tiny build failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return TinyBuild(project, proc, traces, dry.stdout)
