"""`pseudosup dvc-status`: `dvc status --json` summarized per stage (rule) in a
screenful: jobs up to date / never run / changed, a few missing outputs each, what
changed, missing inputs, and one line saying what to do."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from pseudosup.commands.dvc_status import MAX_LINES, format_summary, shorten, stage_jobs, summarize
from pseudosup.dvcgen import expand, read_stages

from .conftest import BIN, ROOT, run_cli


def fresh_clone_payload(root) -> dict:
    """What `dvc status --json` says on a fresh clone (no dvc.lock, no data), built from
    dvc.yaml: every input "modified" (no recorded hash) or "deleted" (data, models, files
    outside the project), params files "new", outputs under results/ (git-tracked)
    "modified", the others "deleted"."""
    payload = {}
    for name, job in expand(read_stages(root)).items():
        deps = {d: "deleted" if d.startswith(("data/", "models/", "../")) else "modified" for d in job["deps"]}
        if job["params"]:
            deps["params.yaml"] = "new"
        outs = {o: "modified" if o.startswith("results/") else "deleted" for o in job["outs"]}
        payload[name] = [{"changed deps": deps}, {"changed outs": outs}]
    return payload


def test_a_fresh_clone_is_summarized_in_a_screenful():
    payload = fresh_clone_payload(ROOT)
    jobs = stage_jobs(ROOT)
    assert set(payload) == {name for names in jobs.values() for name in names}
    s = summarize(payload, jobs, locked=None, root=ROOT)
    lines = format_summary(s, show=3, width=100, cores=2)
    assert len(lines) <= MAX_LINES, "\n".join(lines)
    assert lines[0].startswith(f"{len(payload)} jobs in {len(jobs)} stages") and "0 up to date" in lines[0]
    assert f"{len(payload)} never run" in lines[0] and "no dvc.lock" in lines[1]
    for rule, names in jobs.items():  # one row per stage: all its jobs never ran
        row = next(line for line in lines if line.startswith(rule + " "))
        assert row.split()[1:4] == [str(len(names)), "0", str(len(names))], row
        assert s.stages[rule].never_run == len(names) and s.stages[rule].changed == 0
    # outputs under results/ are in git, the others are missing; the lists are cut short
    assert all(not p.startswith("results/") for st in s.stages.values() for p in st.missing)
    hashers = next(line for line in lines if line.startswith("  train_hasher "))
    assert f"… and {len(jobs['train_hasher']) - 1} more" in hashers and len(hashers) <= 100
    # the inputs that no stage makes (the TFLite reference model in ../shared/data)
    at = lines.index("Missing inputs that no stage makes (provide them first):")
    assert lines[at + 1].startswith("  ../shared/data/")
    assert lines[-1].startswith("Next: `snakemake --cores 2` then `dvc commit -f`") and "`dvc repro <stage>`" in lines[-1]


JOBS = {"fetch": ["fetch@a", "fetch@b"], "train": ["train@x", "train@y", "train@z"], "report": ["report"]}
LOCKED = {"fetch@a", "fetch@b", "train@x", "train@y", "report"}
PAYLOAD = {
    # recorded, but its output is gone: counted as never run, and restorable
    "fetch@b": [{"changed outs": {"data/raw/b": "deleted"}}],
    # recorded; a code file and a params key changed / the stage's definition changed
    "train@x": [{"changed deps": {"src/train.py": "modified", "params.yaml": {"methods.itq": "modified"}}}],
    "train@y": [{"changed deps": {"src/train.py": "modified"}}, "changed checksum"],
    # not recorded; an input another stage makes, and one nobody makes
    "train@z": [{"changed deps": {"data/raw/b/x.npy": "deleted", "/elsewhere/weights.bin": "deleted",
                                  "params.yaml": "new"}},
                {"changed outs": {"models/z.npz": "deleted"}}],
}


def test_jobs_are_counted_by_state_per_stage():
    s = summarize(PAYLOAD, JOBS, LOCKED)
    counts = {r: (st.jobs, st.up_to_date, st.never_run, st.changed) for r, st in s.stages.items()}
    assert counts == {"fetch": (2, 1, 1, 0), "train": (3, 0, 1, 2), "report": (1, 1, 0, 0)}
    assert s.stages["fetch"].missing == ["data/raw/b"] and s.stages["train"].missing == ["models/z.npz"]
    assert dict(s.stages["train"].changes) == {"src/train.py": 2, "params.yaml:methods.itq": 1,
                                               "the stage in dvc.yaml": 1}
    assert dict(s.missing_inputs) == {"/elsewhere/weights.bin": 1} and s.recorded_missing == 1

    lines = format_summary(s, show=3, width=100, cores=4)
    assert lines[0] == "6 jobs in 3 stages of dvc.yaml (one per Snakemake rule): 2 up to date, 2 never run, 2 changed"
    assert lines[2].split() == ["stage", "jobs", "up", "to", "date", "never", "run", "changed", "missing", "outputs"]
    assert lines[3].split() == ["fetch", "2", "1", "1", "0", "1"]
    assert lines[4].split() == ["train", "3", "0", "1", "2", "1"]
    assert "  train   src/train.py (2), params.yaml:methods.itq (1), the stage in dvc.yaml (1)" in lines
    at = lines.index("Missing inputs that no stage makes (provide them first):")
    assert lines[at + 1] == "  /elsewhere/weights.bin"
    assert lines[-1].startswith("Next: `dvc checkout` / `dvc pull` restores") and "`snakemake --cores 4`" in lines[-1]


def test_the_closing_line_says_what_to_do():
    def last(payload, locked):
        return format_summary(summarize(payload, JOBS, locked), cores=2)[-1]

    assert last({}, LOCKED) == "Nothing to do: every job is up to date."
    # outputs there, but not recorded (e.g. after a Snakemake run): commit, not recompute
    unrecorded = {"report": [{"changed outs": {"results/r.json": "modified"}}]}
    assert last(unrecorded, LOCKED - {"report"}).startswith("Next: the outputs exist but dvc.lock lacks them: "
                                                            "`dvc commit -f`")
    # one stage to redo: named
    assert last({"train@x": PAYLOAD["train@x"]}, LOCKED).endswith("or `dvc repro train`")


def test_lists_are_cut_to_a_few_items_and_the_line_width():
    items = ["a", "b", "c", "d", "e"]
    assert shorten(items, 3) == "a, b, c … and 2 more"
    assert shorten(items, 1) == "a … and 4 more"
    assert shorten(items[:2], 3) == "a, b" and shorten(items[:3], 3) == "a, b, c"
    long = ["x" * 30, "y" * 30, "z" * 30]
    assert shorten(long, 3, width=80) == f"{'x' * 30}, {'y' * 30} … and 1 more"
    assert shorten(long, 3, width=10) == f"{'x' * 30} … and 2 more"  # never fewer than one


# --- the command, with a stand-in `dvc` ----------------------------------------------------

def fake_dvc(folder, stdout="{}", stderr="", code=0):
    """An executable `dvc` that prints what it is told (the real one is not run)."""
    folder.mkdir(exist_ok=True)
    (folder / "out.txt").write_text(stdout)
    (folder / "err.txt").write_text(stderr)
    script = folder / "dvc"
    script.write_text(f'#!/bin/sh\ncat "{folder}/out.txt"\ncat "{folder}/err.txt" >&2\nexit {code}\n')
    script.chmod(0o755)


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages:\n  fetch:\n    cmd: fetch\n    outs: [data/raw/a]\n"
                                       "  report:\n    cmd: report\n    outs: [results/r.json]\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setattr("pseudosup.commands.dvc_status.VENV_BIN", tmp_path / "nowhere")
    return tmp_path


def status(project, capsys):
    from pseudosup.cli import main

    code = main(["dvc-status", "--root", str(project)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_prints_the_summary(project, capsys):
    fake_dvc(project / "bin", '{"fetch": [{"changed outs": {"data/raw/a": "deleted"}}]}')
    code, out, _ = status(project, capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("2 jobs in 2 stages") and "1 up to date, 1 never run" in lines[0]
    assert "  fetch   data/raw/a" in lines and lines[-1].endswith("`dvc repro fetch`")


@pytest.mark.parametrize("case, want", [
    ("no dvc", "dvc is not installed"),
    ("no dvc.yaml", "no dvc.yaml in"),
    ("not a repository", "not in a DVC repository"),
    ("dvc fails", "`dvc status --json` failed"),
    ("not json", "printed no JSON"),
])
def test_errors_say_what_to_do_and_exit_non_zero(project, capsys, case, want):
    if case == "no dvc.yaml":
        (project / "dvc.yaml").unlink()
    if case == "not a repository":
        fake_dvc(project / "bin", "", "ERROR: you are not inside of a DVC repository (checked up to mount point '/')", 253)
    if case == "dvc fails":
        fake_dvc(project / "bin", "", "ERROR: unexpected error - dvc.lock is broken", 255)
    if case == "not json":
        fake_dvc(project / "bin", "Everything is up to date.\n")
    code, out, err = status(project, capsys)
    assert code == 2 and not out and want in err, err
    assert ("make setup" in err) == (case == "no dvc")
    if case == "dvc fails":
        assert "dvc.lock is broken" in err and "dvc status -v" in err


# --- for real: a fresh clone -----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None or not (BIN / "dvc").exists(), reason="needs git and dvc")
def test_a_fresh_clone_for_real(tmp_path):
    """A clone has no dvc.lock and no data: `dvc status` prints thousands of lines; this a
    screenful (a local clone shares git's objects, so this is cheap)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, capture_output=True)
    proc = run_cli("dvc-status", cwd=clone, env={"PATH": f"{BIN}:{os.environ['PATH']}"})
    lines = proc.stdout.splitlines()
    jobs = stage_jobs(clone)
    assert len(lines) <= MAX_LINES, proc.stdout
    n = sum(len(names) for names in jobs.values())
    assert lines[0].startswith(f"{n} jobs in {len(jobs)} stages") and f"0 up to date, {n} never run" in lines[0]
    assert all(any(line.startswith(rule + " ") for line in lines) for rule in jobs)
    assert lines[-1].startswith("Next: ")
