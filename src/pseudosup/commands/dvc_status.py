"""A short `dvc status`: per dvc.yaml stage (one per Snakemake rule), how many of its
jobs are up to date, never run or changed, which outputs are missing, and what to do.

`dvc status` prints one block per job (foreach item) and lists every dependency of a
job that dvc.lock has not recorded: thousands of lines on a fresh clone. This command
runs `dvc status --json` and prints a screenful instead:

  - a table, one row per stage: its jobs, how many are up to date, never run (no
    dvc.lock entry, or an output missing) and changed (recorded, but an input,
    parameter, output or the command differs from dvc.lock);
  - the missing outputs, a few per stage ("... and N more"), then what changed in the
    changed jobs (the dependencies and params keys, with how many jobs each), then
    the missing inputs that no stage makes (data to provide first);
  - one line saying what to do next.

The jobs that are up to date come from dvc.yaml and its foreach items (dvc-jobs.yaml),
since `dvc status` leaves them out; which jobs DVC has recorded, from dvc.lock. For one
stage's full list: `dvc status <stage>`. See docs/dvc.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HELP = "a short `dvc status`: per stage, jobs up to date / never run / changed, missing outputs, what to do"

# where `make setup` installs dvc (used when dvc is not on PATH)
VENV_BIN = Path(sys.executable).parent
MAX_LINES = 40  # what "a screenful" means here (tests hold a fresh clone to it)


def add_arguments(p) -> None:
    p.add_argument("--root", type=Path, default=Path("."),
                   help="project root: the folder with dvc.yaml and .dvc/ (default .)")
    p.add_argument("--show", type=int, default=3, metavar="N",
                   help="list at most N missing outputs (and N changes) per stage, fewer if the line would not "
                        "fit the terminal (default 3; `dvc status <stage>` lists all)")
    p.add_argument("--width", type=int, default=None,
                   help="line width for those lists (default: the terminal's, at most 120)")


def run(args) -> int:
    from ..io import PseudosupError

    if args.show < 1:
        raise PseudosupError(f"--show {args.show}: give at least 1")
    root = args.root
    jobs = stage_jobs(root)
    payload = dvc_status_json(root)
    width = args.width or min(shutil.get_terminal_size((100, 40)).columns, 120)
    summary = summarize(payload, jobs, locked_stages(root), root)
    print("\n".join(format_summary(summary, show=args.show, width=width)))
    return 0


# --- collecting: dvc.yaml's jobs, dvc.lock's entries, `dvc status --json` ----------------

def stage_jobs(root: Path) -> dict[str, list[str]]:
    """stage (rule) -> the names DVC gives its jobs (`rule@item`, or `rule` for a stage
    without foreach), in dvc.yaml's order (producers first)."""
    from ..dvcgen import read_stages
    from ..io import PseudosupError

    if not (root / "dvc.yaml").is_file():
        raise PseudosupError(f"no dvc.yaml in {root.resolve()}: run this in the project root (or pass --root), "
                             "or generate it with `pseudosup dvc-yaml`")
    try:
        stages = read_stages(root)
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise PseudosupError(f"cannot read the stages of {root / 'dvc.yaml'} with its items in dvc-jobs.yaml ({e}): "
                             "regenerate both with `pseudosup dvc-yaml`") from e
    return {rule: ([f"{rule}@{item}" for item in s["foreach"]] if "foreach" in s else [rule])
            for rule, s in stages.items()}


def locked_stages(root: Path) -> set[str] | None:
    """The jobs dvc.lock records; None when there is no dvc.lock."""
    import yaml

    lock = root / "dvc.lock"
    if not lock.is_file():
        return None
    doc = yaml.load(lock.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    return set(doc.get("stages") or {})


def find_dvc() -> str:
    from ..io import PseudosupError

    found = shutil.which("dvc")
    if found:
        return found
    if (VENV_BIN / "dvc").is_file() and os.access(VENV_BIN / "dvc", os.X_OK):
        return str(VENV_BIN / "dvc")
    raise PseudosupError("dvc is not installed (not on PATH, not in this Python environment): "
                         "`make setup` installs the project's pinned environment with it "
                         "(or: pip install 'dvc>=3.50,<4')")


def dvc_status_json(root: Path) -> dict:
    """`dvc status --json` in `root`, parsed: job -> list of its changes."""
    from ..io import PseudosupError

    dvc = find_dvc()
    cmd = [dvc, "status", "--json"]
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    except OSError as e:
        raise PseudosupError(f"cannot run {dvc} ({e}): reinstall dvc (`make setup`)") from e
    said = (done.stderr + done.stdout).strip()
    if done.returncode != 0:
        if "not inside of a DVC repository" in said:
            raise PseudosupError(f"{root.resolve()} is not in a DVC repository (no .dvc/ folder): run this in a "
                                 "clone of the project (its .dvc/config is committed), or `dvc init` first")
        tail = "\n".join(said.splitlines()[-10:])
        raise PseudosupError(f"`dvc status --json` failed in {root.resolve()} (exit {done.returncode}):\n{tail}\n"
                             "Fix what it says (`dvc status -v` shows more), then run this again")
    try:
        payload = json.loads(done.stdout or "{}")
    except json.JSONDecodeError as e:
        raise PseudosupError(f"`dvc status --json` in {root.resolve()} printed no JSON ({e}): "
                             f"{done.stdout[:300]!r}; is {dvc} DVC 3?") from e
    if not isinstance(payload, dict):
        raise PseudosupError(f"`dvc status --json` printed {type(payload).__name__}, not an object: is {dvc} DVC 3?")
    return payload


# --- summarizing -------------------------------------------------------------------------

@dataclass
class StageStatus:
    jobs: int = 0
    up_to_date: int = 0
    never_run: int = 0
    changed: int = 0
    missing: list[str] = field(default_factory=list)          # missing output paths
    changes: Counter = field(default_factory=Counter)        # what changed (changed jobs) -> jobs


@dataclass
class Summary:
    stages: dict[str, StageStatus]
    missing_inputs: Counter          # inputs no stage makes -> jobs that need them
    has_lock: bool
    recorded_missing: int = 0        # missing outputs of jobs dvc.lock records (restorable)


def summarize(payload: dict, jobs: dict[str, list[str]], locked: set[str] | None, root: Path = Path(".")) -> Summary:
    """Count each stage's jobs by state from `dvc status --json`'s payload (`payload`:
    job -> changes; up-to-date jobs are absent), dvc.yaml's jobs and dvc.lock's."""
    stages = {rule: StageStatus(jobs=len(names)) for rule, names in jobs.items()}
    known = {name for names in jobs.values() for name in names}
    made = set()   # every output the payload names: its inputs are made by some stage
    for entries in payload.values():
        for e in entries:
            if isinstance(e, dict):
                made.update(e.get("changed outs", {}))
    missing_inputs: Counter = Counter()
    recorded_missing = 0
    for name, entries in payload.items():
        rule = _rule(name)
        st = stages.setdefault(rule, StageStatus())
        if name not in known:  # a job dvc.yaml does not list (a .dvc file, a stale dvc-jobs.yaml)
            st.jobs += 1
        deps, outs, other = {}, {}, []
        for e in entries:
            if isinstance(e, dict):
                deps.update(e.get("changed deps", {}))
                outs.update(e.get("changed outs", {}))
            else:
                other.append(str(e))
        missing = [p for p, s in outs.items() if s == "deleted" or (s == "not in cache" and not (root / p).exists())]
        st.missing += missing
        for p, s in deps.items():
            if s == "deleted" and not _covered(p, made):
                missing_inputs[_shown_path(p, root)] += 1
        recorded = locked is not None and name in locked
        if missing and recorded:
            recorded_missing += len(missing)
        if not recorded or missing:
            st.never_run += 1
            continue
        st.changed += 1
        for label in _changes(deps, outs, other):
            st.changes[label] += 1
    for rule, st in stages.items():
        st.up_to_date = st.jobs - st.never_run - st.changed
        st.missing.sort()
    return Summary(stages, missing_inputs, locked is not None, recorded_missing)


def _rule(name: str) -> str:
    """The stage (rule) of a job name: `train_hasher@demo-pixels-itq-16` -> train_hasher
    (a dvc.yaml elsewhere: `sub/dvc.yaml:rule@item` -> sub/dvc.yaml:rule)."""
    return name.split("@", 1)[0]


def _covered(path: str, outputs: set[str]) -> bool:
    """An input that some output is, holds or lies inside."""
    return any(path == o or path.startswith(o + "/") or o.startswith(path + "/") for o in outputs)


def _shown_path(path: str, root: Path) -> str:
    """Paths outside the project as DVC prints them (absolute) -> relative when shorter."""
    if not os.path.isabs(path):
        return path
    rel = os.path.relpath(path, root.resolve())
    return rel if len(rel) < len(path) else path


def _changes(deps: dict, outs: dict, other: list[str]) -> list[str]:
    """What differs from dvc.lock in one recorded job, one label each."""
    labels = []
    for path, status in deps.items():
        if isinstance(status, dict):  # a params file: key -> new / modified / deleted
            labels += [f"{path}:{key}" + ("" if s == "modified" else f" ({s})") for key, s in status.items()]
        else:
            labels.append(path + ("" if status == "modified" else f" ({status})"))
    labels += [f"{path} (output {status})" for path, status in outs.items()]
    words = {"changed checksum": "the stage in dvc.yaml", "changed command": "the command",
             "always changed": "always changed"}
    labels += [words.get(o, o) for o in other]
    return labels


# --- printing ----------------------------------------------------------------------------

COLUMNS = ("jobs", "up to date", "never run", "changed", "missing outputs")


def shorten(items: list[str], limit: int = 3, width: int | None = None) -> str:
    """`a, b, c … and N more`: at most `limit` items, fewer while the text would be wider
    than `width`, never fewer than one."""
    items = list(items)
    shown = 1
    for k in range(2, min(limit, len(items)) + 1):
        if width is not None and len(_listed(items, k)) > width:
            break
        shown = k
    return _listed(items, shown)


def _listed(items: list[str], k: int) -> str:
    rest = len(items) - k
    return ", ".join(items[:k]) + (f" … and {rest} more" if rest > 0 else "")


def format_summary(s: Summary, show: int = 3, width: int = 100, cores: int | None = None) -> list[str]:
    """The lines to print (at most a screenful on a fresh clone; see MAX_LINES)."""
    total = StageStatus(jobs=sum(st.jobs for st in s.stages.values()))
    for st in s.stages.values():
        total.up_to_date += st.up_to_date
        total.never_run += st.never_run
        total.changed += st.changed
    name_w = max([len("stage")] + [len(r) for r in s.stages])
    lines = [f"{total.jobs} jobs in {len(s.stages)} stages of dvc.yaml (one per Snakemake rule): "
             f"{total.up_to_date} up to date, {total.never_run} never run, {total.changed} changed",
             ("never run: no dvc.lock entry, or an output missing"
              + ("" if s.has_lock else " (there is no dvc.lock: DVC has recorded nothing yet)")),
             f"{'stage':<{name_w}}  " + "  ".join(COLUMNS)]
    for rule, st in s.stages.items():
        cells = (st.jobs, st.up_to_date, st.never_run, st.changed, len(st.missing))
        lines.append(f"{rule:<{name_w}}  " + "  ".join(f"{c:>{len(h)}}" for c, h in zip(cells, COLUMNS)))
    indent = 2 + name_w + 2
    missing = [(r, st.missing) for r, st in s.stages.items() if st.missing]
    if missing:
        lines.append("Missing outputs (`dvc status <stage>` lists all):")
        lines += [f"  {r:<{name_w}}  {shorten(ps, show, width - indent)}" for r, ps in missing]
    changed = [(r, st.changes) for r, st in s.stages.items() if st.changes]
    if changed:
        lines.append("Changed since dvc.lock (in how many jobs):")
        for r, counts in changed:
            labels = [f"{label} ({n})" for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
            lines.append(f"  {r:<{name_w}}  {shorten(labels, show, width - indent)}")
    if s.missing_inputs:
        inputs = [p if n == 1 else f"{p} ({n} jobs)" for p, n in sorted(s.missing_inputs.items())]
        lines += ["Missing inputs that no stage makes (provide them first):", "  " + shorten(inputs, show, width - 2)]
    lines.append(next_step(s, cores))
    return lines


def next_step(s: Summary, cores: int | None = None) -> str:
    """One line: what to run to bring the project up to date."""
    todo = [r for r, st in s.stages.items() if st.never_run or st.changed]
    if not todo:
        return "Nothing to do: every job is up to date."
    stage = todo[0] if len(todo) == 1 else "<stage>"
    cores = cores or os.cpu_count() or 1
    if not any(st.missing or st.changed for st in s.stages.values()):
        return (f"Next: the outputs exist but dvc.lock lacks them: `dvc commit -f` records them if Snakemake made "
                f"them from these inputs; else `dvc repro {stage}`")
    restore = "`dvc checkout` / `dvc pull` restores outputs dvc.lock records; to compute: " \
        if s.recorded_missing else ""
    return (f"Next: {restore}`snakemake --cores {cores}` then `dvc commit -f` (records the run in dvc.lock), "
            f"or `dvc repro {stage}`")
