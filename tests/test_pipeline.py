"""End-to-end: the tiny config through Snakemake and DVC, reruns, interruptions."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import BIN, FMNIST_DEBIAN, copy_project, snakemake

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FMNIST_DEBIAN.is_dir(), reason="needs Debian's dataset-fashion-mnist")]

TINY = ["--cores", "2", "--configfile", "tests/config/tiny.yaml"]


@pytest.fixture(scope="module")
def tiny_run(tiny_built):
    """The session's complete run of the tiny config (conftest.tiny_built), shared by the
    read-only checks."""
    return tiny_built.project, tiny_built.proc


def metrics(project: Path) -> dict:
    return json.loads((project / "results/metrics/tiny.json").read_text())


def test_tiny_pipeline_produces_every_output(tiny_run):
    project, _ = tiny_run
    m = metrics(project)
    for feat in ("pixels", "cnn-small"):
        for run in ("lsh-16", "lsh-32", "itq-16", "itq-32", "euclidean"):
            assert 0.1 < m["results"][feat][run]["map"] <= 1.0  # 10 balanced classes: chance is 0.1
        assert m["mining"][feat]["num_pairs"] > 0
    for fig in ("map_vs_bits", "pr_curves", "gallery"):
        assert (project / f"results/figures/tiny/{fig}.png").stat().st_size > 5000
    assert (project / "results/tables/tiny.md").read_text().count("|") > 20
    for log in ("download/fashion-mnist", "pretrain/fashion-mnist/cnn-small", "train/tiny/pixels/itq-16"):
        assert "done in" in (project / f"logs/{log}.log").read_text()
    sidecar = json.loads((project / "data/features/fashion-mnist/cnn-small.json").read_text())
    assert sidecar["weights"]["trained_on"] == "fmnist-tiny/pretrain" and sidecar["dim"] == 32


def test_second_run_has_nothing_to_do(tiny_run):
    project, _ = tiny_run
    proc = snakemake(project, *TINY, "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def jobs_of_dry_run(project: Path) -> dict[str, int]:
    out = snakemake(project, *TINY, "--dry-run", "--quiet", "rules").stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job", "all"):
            counts[parts[0]] = int(parts[1])
    return counts


def test_changing_an_itq_param_reruns_only_itq_jobs(tiny_run, tmp_path):
    project, _ = tiny_run
    cfg_path = project / "tests/config/tiny.yaml"
    original = cfg_path.read_text()
    try:
        cfg = yaml.safe_load(original)
        cfg["methods"]["itq"]["n_iter"] = 11
        cfg_path.write_text(yaml.safe_dump(cfg))
        counts = jobs_of_dry_run(project)
        # 2 features x 2 code lengths of ITQ; then the aggregates that read them
        assert counts == {"train_hasher": 4, "evaluate_hasher": 4, "report": 1, "plot_figures": 1,
                          "plot_gallery": 1}, counts
    finally:
        cfg_path.write_text(original)


def _default_sigint() -> None:
    # A job started in the background by a non-interactive shell (as CI may run us)
    # inherits SIGINT *ignored*, and Python then installs no KeyboardInterrupt handler:
    # restore the default so that the signal means what Ctrl-C means in a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(project: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "snakemake"), *TINY], cwd=project, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=_default_sigint,
                            env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})


def wait_for(path: Path, timeout: float = 120) -> None:
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > timeout:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_resumes_without_redoing_finished_jobs(sig, tiny_run, tmp_path):
    """Also: same inputs, same metrics: the resumed run, in another copy of the project,
    gives exactly the metrics of the uninterrupted shared build (tiny_run)."""
    project = copy_project(tmp_path)
    # The tiny pre-training finishes within a second on a quiet machine: make it long
    # enough to be killed mid-job for certain, then restore it before resuming.
    config = project / "tests/config/tiny.yaml"
    tiny = config.read_text()
    assert "epochs: 1," in tiny
    config.write_text(tiny.replace("epochs: 1,", "epochs: 5000,", 1))
    proc = start(project)
    pretrain_log = project / "logs/pretrain/fashion-mnist/cnn-small.log"
    wait_for(pretrain_log)
    t0 = time.time()
    while "epoch 1:" not in pretrain_log.read_text():  # training is under way, nothing written yet
        assert time.time() - t0 < 120 and proc.poll() is None, "pre-training did not start"
        time.sleep(0.2)
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    config.write_text(tiny)
    backbone = project / "models/fashion-mnist/cnn-small/backbone.pt"
    assert not backbone.exists(), "a killed job left an output that looks complete"
    raw = project / "data/raw/fashion-mnist/MANIFEST.json"
    assert raw.exists()
    raw_mtime = raw.stat().st_mtime_ns
    if sig == signal.SIGKILL:  # a hard kill leaves Snakemake's lock behind
        snakemake(project, "--unlock", *TINY)
    snakemake(project, *TINY)
    assert backbone.exists() and (project / "results/metrics/tiny.json").exists()
    assert raw.stat().st_mtime_ns == raw_mtime, "the finished download was redone"
    assert not list(project.rglob("*.tmp-*")) or sig == signal.SIGKILL
    assert metrics(project) == metrics(tiny_run[0])


def test_failed_job_leaves_nothing_that_looks_complete(tmp_path):
    project = copy_project(tmp_path)
    # a training job that fails inside the stage: its input features are truncated
    snakemake(project, "data/features/fashion-mnist/pixels.npy", *TINY)
    feat = project / "data/features/fashion-mnist/pixels.npy"
    os.chmod(feat, 0o644)
    feat.write_bytes(feat.read_bytes()[:1000])  # truncated features file
    proc = snakemake(project, "models/tiny/pixels/itq-16.npz", *TINY, check=False)
    assert proc.returncode != 0
    assert not (project / "models/tiny/pixels/itq-16.npz").exists()
    assert "pixels.npy" in (project / "logs/train/tiny/pixels/itq-16.log").read_text()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dvc_repro_runs_the_same_dag_and_tracks_params(tmp_path):
    project = copy_project(tmp_path)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    def run(*a):
        return subprocess.run(a, cwd=project, env=env, capture_output=True, text=True, check=True)
    run("git", "init", "-q")
    run("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init")
    run(str(BIN / "dvc"), "init", "-q")
    run(str(BIN / "pseudosup"), "dvc-yaml", "--params", "tests/config/tiny.yaml")
    run(str(BIN / "dvc"), "repro", "-q")
    assert json.loads((project / "results/metrics/tiny.json").read_text())["results"]["pixels"]["itq-32"]["map"] > 0.1
    status = run(str(BIN / "dvc"), "status", "--json").stdout
    assert json.loads(status) == {}, status
    cfg = yaml.safe_load((project / "tests/config/tiny.yaml").read_text())
    cfg["methods"]["itq"]["n_iter"] = 11
    (project / "tests/config/tiny.yaml").write_text(yaml.safe_dump(cfg))
    changed = set(json.loads(run(str(BIN / "dvc"), "status", "--json").stdout))
    assert changed == {"train_hasher@tiny-pixels-itq-16", "train_hasher@tiny-pixels-itq-32",
                       "train_hasher@tiny-cnn-small-itq-16", "train_hasher@tiny-cnn-small-itq-32"}, changed
