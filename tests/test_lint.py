"""The workflow passes its linters (`make lint` runs them, and ruff), and every rule
that runs a command records its time and memory (`benchmark:`)."""

from __future__ import annotations

import re
import subprocess

from .conftest import BIN, ROOT

# Accepted, and why: see the Makefile's lint target (one pinned environment for all rules).
ACCEPTED = "Specify a conda environment or container for each rule"


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_has_only_the_accepted_lint():
    proc = run("snakemake", "--lint")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 or "Lints for" in out, f"snakemake --lint did not load the workflow:\n{out[-4000:]}"
    lints = [line.strip() for line in out.splitlines() if re.match(r" +\* ", line)]
    # the conda/container lints are always there: none parsed means the format changed
    assert proc.returncode == 0 or lints, f"lint lines not recognised:\n{out[-4000:]}"
    others = [line for line in lints if ACCEPTED not in line]
    assert not others, f"snakemake --lint: {sorted(set(others))}\n{out[-4000:]}"


def test_workflow_files_are_snakefmt_formatted():
    proc = run("snakefmt", "--check", "--diff", "Snakefile", "workflow/rules")
    assert proc.returncode == 0, ("not formatted (fix: .venv/bin/snakefmt Snakefile workflow/rules):\n"
                                  + proc.stdout[-4000:] + proc.stderr)


def test_every_rule_with_a_command_has_a_benchmark():
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]
    missing = []
    for f in files:
        # a rule's block: from `rule <name>:` to the next top-level statement
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", f.read_text(), re.M):
            if re.search(r"^\s+(shell|run|script):", body, re.M) and not re.search(r"^\s+benchmark:", body, re.M):
                missing.append(f"{f.name}: {name}")
    assert not missing, f"rules without benchmark: {missing}"
