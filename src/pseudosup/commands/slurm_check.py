"""Pre-flight check before `snakemake --profile profiles/slurm`: submits nothing.

Checks, on the submit host, everything whose absence would otherwise only show up as
failed or hanging jobs: the executor plugins are installed in this Python environment,
the SLURM client commands are on PATH, slurmctld answers, the status command of the
profile can see finished jobs (squeue needs MinJobAge >= 3 x the plugin's first
status-check delay), the partitions the profile names exist and have usable nodes (or a
default partition exists), and a configured account can be validated (the plugin refuses
to submit when it cannot). Prints one line per check; exits 2 listing every problem with
what to do. See docs/cluster.md.

`--settings` checks given settings instead of a profile's: the workflow's `onstart:` hook
(`pseudosup.workflow.slurm_preflight`) runs this command on the settings and jobs of the
run it starts, and stops the run, before anything is submitted, when a check fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

HELP = "pre-flight check of a SLURM cluster and the SLURM profile (submits nothing)"

# module -> what goes wrong without it
PLUGINS = {"snakemake_executor_plugin_slurm": "snakemake rejects `--executor slurm` (\"invalid choice\")",
           "snakemake_executor_plugin_slurm_jobstep": "every job fails on its node"}
COMMANDS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel")
# node states (sinfo %T) in which a node can run jobs now or soon; a trailing '*'
# (not responding) or a drain/down state makes a node unusable
USABLE_STATES = {"idle", "mixed", "allocated", "completing", "planned"}


@dataclass
class Settings:
    """What the run will use: from the profile, or the running workflow's (--settings)."""
    status_command: str | None = None      # squeue | sacct | None (plugin's auto choice)
    # the plugin's first status-check delay; 40 is the plugin's own default, stated only here:
    # the hook passes the run's value as is and both readers fall back to this (_init_seconds)
    init_seconds: int = 40
    partitions: set[str] = field(default_factory=set)   # named partitions ('' = default)
    accounts: set[str] = field(default_factory=set)


def add_arguments(p) -> None:
    p.add_argument("--profile", type=Path, default=Path("profiles/slurm"),
                   help="the Snakemake profile to check (directory with config.yaml; default profiles/slurm)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for each SLURM command (default 30)")
    p.add_argument("--settings", default=None, metavar="JSON",
                   help="check these settings instead of the profile's: a JSON object with status_command, "
                        "init_seconds, partitions ('' = the default partition) and accounts (what the "
                        "workflow's onstart hook passes for the run it starts)")


def run(args) -> None:
    from ..io import PseudosupError

    settings = settings_from_json(args.settings) if args.settings else settings_from_profile(args.profile)
    problems = check(settings, timeout=args.timeout)
    if problems:
        raise PseudosupError(f"SLURM pre-flight found {len(problems)} problem(s); nothing was submitted:\n"
                             + "\n".join(f"  - {p}" for p in problems))
    if args.settings:
        print("SLURM pre-flight passed: the run's jobs can be submitted")
    else:
        print("SLURM pre-flight passed: `snakemake --profile %s` can submit" % args.profile)


def settings_from_json(text: str) -> Settings:
    """--settings: the keys of `Settings` in a JSON object (lists for the sets)."""
    from ..io import PseudosupError

    try:
        raw = json.loads(text)
        if not isinstance(raw, dict) or set(raw) - set(Settings.__dataclass_fields__):
            raise ValueError(f"expected an object with keys among {sorted(Settings.__dataclass_fields__)}")
        return Settings(status_command=raw.get("status_command"), init_seconds=_init_seconds(raw.get("init_seconds")),
                        partitions={str(x) for x in raw.get("partitions", [])} or {""},
                        accounts={str(x) for x in raw.get("accounts", [])})
    except (ValueError, TypeError) as e:
        raise PseudosupError(f"--settings {text!r}: not valid settings ({e})") from None


def settings_from_profile(profile: Path) -> Settings:
    import yaml

    from ..io import PseudosupError

    cfg_file = profile / "config.yaml"
    if not cfg_file.is_file():
        raise PseudosupError(f"{cfg_file}: not found; pass the profile directory with --profile "
                             "(the project's is profiles/slurm)")
    try:
        cfg = yaml.safe_load(cfg_file.read_text()) or {}
    except yaml.YAMLError as e:
        raise PseudosupError(f"{cfg_file}: not valid YAML ({e})") from None
    if cfg.get("executor") != "slurm":
        raise PseudosupError(f"{cfg_file}: `executor: slurm` missing (found {cfg.get('executor')!r}); "
                             "this is not a SLURM profile")
    init = cfg.get("slurm-init-seconds-before-status-checks")
    defaults = _resources(cfg.get("default-resources"))
    per_rule = cfg.get("set-resources") or {}
    per_rule = {rule: _resources(res) for rule, res in per_rule.items()} if isinstance(per_rule, dict) else {}
    partitions = {str(r["slurm_partition"]) for r in [defaults, *per_rule.values()] if r.get("slurm_partition")}
    if not defaults.get("slurm_partition"):
        partitions.add("")  # some rule falls back to the cluster's default partition
    accounts = {str(r["slurm_account"]) for r in [defaults, *per_rule.values()] if r.get("slurm_account")}
    return Settings(status_command=cfg.get("slurm-status-command"), init_seconds=_init_seconds(init),
                    partitions=partitions, accounts=accounts)


def _init_seconds(value) -> int:
    """The first status-check delay: `value`, or the default (Settings.init_seconds) when
    unset (missing or None: the workflow hook passes None when the run leaves it unset)."""
    return Settings.init_seconds if value is None else int(value)


def _resources(value) -> dict:
    """default-resources / set-resources entries: a mapping or a list of 'key=value'."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    out = {}
    for item in value or []:
        key, _, val = str(item).partition("=")
        out[key.strip()] = val.strip().strip("'\"")
    return out


def check(settings: Settings, timeout: float = 30.0, say=print) -> list[str]:
    """Run every check; print one line each; return the problems (empty: all good)."""
    problems: list[str] = []
    for ok, line in _checks(settings, timeout):
        say(f"{'ok     ' if ok else 'PROBLEM'} {line}")
        if not ok:
            problems.append(line)
    return problems


def _checks(s: Settings, timeout: float):
    yield from _check_plugins()
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if missing:
        yield False, (f"SLURM client commands not on PATH: {', '.join(missing)}; run on the cluster's "
                      "submit (login) host, or load its SLURM module / install the client")
        return
    yield True, "SLURM client commands found (" + ", ".join(COMMANDS) + ")"
    ping = _run(["scontrol", "ping"], timeout)
    answer = (ping.stdout.strip().splitlines() or [""])[0]  # "Slurmctld(primary) at HOST is UP"
    if ping.returncode != 0 or not answer.endswith(" UP"):
        msg = answer or " ".join(ping.stderr.split()) or f"exit code {ping.returncode}"
        conf = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
        yield False, (f"slurmctld is not reachable (`scontrol ping`: {msg}); check that the controller "
                      f"runs and that {conf} names it (SlurmctldHost, SlurmctldPort)")
        return
    yield True, f"slurmctld reachable ({answer})"
    yield from _check_status_command(s, timeout)
    yield from _check_partitions(s, timeout)
    yield from _check_accounts(s, timeout)


def _check_plugins():
    for name, without in PLUGINS.items():
        dist = name.replace("_", "-")
        if not _installed(name):
            yield False, (f"{dist} is not installed in this Python environment ({sys.prefix}): run "
                          f"`make setup` (requirements.lock pins it) or `pip install {dist}`; without it {without}")
        else:
            yield True, f"{dist} {metadata.version(dist)} installed"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _check_status_command(s: Settings, timeout: float):
    # unset: the plugin takes sacct whenever the command exists (it may not answer)
    command = s.status_command or ("sacct" if shutil.which("sacct") else "squeue")
    if command == "sacct":
        out = _run(["sacct", "-n", "-X", "-o", "JobID", "-S", "now-1hour"], timeout)
        if out.returncode != 0:
            yield False, ("job states would be queried with sacct, but sacct fails "
                          f"({' '.join(out.stderr.split())}): without an accounting daemon set "
                          "`slurm-status-command: squeue` in the profile")
        else:
            yield True, "job states via sacct (accounting answers)"
        return
    min_age = _min_job_age(timeout)
    need = 3 * s.init_seconds
    if min_age is None:
        yield False, "cannot read MinJobAge from `scontrol show config`"
    elif min_age < need:
        yield False, (f"MinJobAge = {min_age} s < {need} s (3 x slurm-init-seconds-before-status-checks = "
                      f"{s.init_seconds}): squeue forgets finished jobs before the plugin looks; lower "
                      "slurm-init-seconds-before-status-checks in the profile or ask the admins to raise MinJobAge")
    else:
        yield True, f"job states via squeue: MinJobAge {min_age} s >= {need} s"


def _min_job_age(timeout: float) -> int | None:
    out = _run(["scontrol", "show", "config"], timeout)
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MinJobAge":
            digits = value.split()[0] if value.split() else ""
            return int(digits) if digits.isdigit() else None
    return None


def _check_partitions(s: Settings, timeout: float):
    out = _run(["sinfo", "-h", "-o", "%P|%a|%T"], timeout)
    if out.returncode != 0:
        yield False, f"`sinfo` failed: {' '.join(out.stderr.split())}"
        return
    avail: dict[str, str] = {}
    states: dict[str, set[str]] = {}
    default = None
    for line in out.stdout.split():
        name, up, state = (line.split("|") + ["", ""])[:3]
        if name.endswith("*"):
            name = default = name[:-1]
        avail[name] = up
        states.setdefault(name, set()).add(state)
    for part in sorted(s.partitions):
        label = f"partition '{part}'" if part else "the default partition"
        name = part or default
        if name is None:
            yield False, ("no partition is set and the cluster has no default partition: set "
                          "slurm_partition under default-resources in the profile")
            continue
        if name not in avail:
            yield False, (f"{label} does not exist (partitions: {', '.join(sorted(avail)) or 'none'}); "
                          "fix slurm_partition in the profile")
        elif avail[name] != "up":
            yield False, f"{label} is {avail[name]}, not up; pick another partition in the profile"
        elif not states[name] & USABLE_STATES:
            yield False, (f"{label} has no usable node (node states: {', '.join(sorted(states[name]))}); "
                          "ask the admins or pick another partition")
        else:
            yield True, f"{label}{'' if part else f' ({name})'} is up with usable nodes"


def _check_accounts(s: Settings, timeout: float):
    if not s.accounts:
        return
    user = os.environ.get("USER") or _run(["id", "-un"], timeout).stdout.strip()
    known = set()
    for cmd in (["sacctmgr", "-n", "-s", "list", "user", user, "format=account%256"],
                ["sshare", "-U", "--format", "Account%256", "--noheader"]):
        if shutil.which(cmd[0]):
            out = _run(cmd, timeout)
            if out.returncode == 0:
                known |= {a.strip().lower() for a in out.stdout.split() if a.strip()}
    if not known:
        yield False, ("slurm_account is set, but neither sacctmgr nor sshare can list your accounts "
                      "(no accounting on this cluster?); the plugin refuses to submit then: remove "
                      "slurm_account from the profile")
        return
    for acc in sorted(s.accounts):
        if acc.lower() in known:
            yield True, f"account '{acc}' is yours"
        else:
            yield False, f"account '{acc}' is not one of yours ({', '.join(sorted(known))}); fix slurm_account"


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"no answer within {timeout:g} s")
    except OSError as e:
        return subprocess.CompletedProcess(cmd, 127, "", str(e))
