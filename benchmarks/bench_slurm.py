"""What running through SLURM costs: the tiny config locally vs. through the executor
plugin on the single-node cluster of scripts/slurm/, plus the cluster's start time.

    python benchmarks/bench_slurm.py          # as root; installs/starts/stops SLURM itself

Runs, each in a fresh copy of the project (tests/conftest.py copy_project):
  1. scripts/slurm/start.sh (timed; the cluster is stopped first if this script's own
     cluster runs) - the Debian install is timed only if the packages are missing;
  2. `snakemake --cores 2 --configfile tests/config/tiny.yaml` (local);
  3. `snakemake --profile profiles/slurm --configfile tests/config/tiny.yaml`;
then, from SLURM's completion log, per-job queue wait and run time. Both runs have the
same jobs and must give identical metrics (checked). The load average (`uptime`) before
and after is recorded: other work on the machine slows everything here.
Results: benchmarks/results/slurm.{json,md}.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import BIN, copy_project  # noqa: E402

SCRIPTS = ROOT / "scripts" / "slurm"
SLURM_DIR = Path(os.environ.get("PSEUDOSUP_SLURM_DIR", "/tmp/pseudosup-slurm"))
TINY = ["--configfile", "tests/config/tiny.yaml"]
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}


def timed(argv, cwd=ROOT, limit=1800) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.time()
    proc = subprocess.run(["timeout", "-k", "20", str(limit), *map(str, argv)], cwd=cwd, env=ENV,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return time.time() - t0, proc


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def jobcomp(ids: set[str]) -> list[dict]:
    """Queue wait and run time (s) of the given SLURM jobs, from jobcomp.log."""
    rows = []
    for line in (SLURM_DIR / "jobcomp.log").read_text().splitlines():
        f = dict(re.findall(r"(\w+)=(\S*)", line))
        if f.get("JobId") in ids:
            t = {k: dt.datetime.fromisoformat(f[k]) for k in ("SubmitTime", "StartTime", "EndTime")}
            rows.append({"id": f["JobId"], "state": f["JobState"],
                         "wait": (t["StartTime"] - t["SubmitTime"]).total_seconds(),
                         "run": (t["EndTime"] - t["StartTime"]).total_seconds()})
    return rows


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("run as root: it installs and starts SLURM")
    rec = {"name": "slurm", "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
           "machine": platform.machine(), "load_before": load()}
    t_install, p = timed([SCRIPTS / "install.sh"])
    rec["install"] = {"seconds": round(t_install, 1), "note": p.stdout.strip()}
    subprocess.run([SCRIPTS / "stop.sh", "--quiet"], check=True)
    t_start, _ = timed([SCRIPTS / "start.sh"])
    rec["start_seconds"] = round(t_start, 1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local, slurm = copy_project(Path(tmp) / "local"), copy_project(Path(tmp) / "slurm")
            t_local, _ = timed([BIN / "snakemake", "--cores", "2", *TINY], cwd=local)
            t_slurm, run = timed([BIN / "snakemake", "--profile", "profiles/slurm", *TINY], cwd=slurm)
            out = run.stdout + run.stderr
            ids = set(re.findall(r"has been submitted with SLURM jobid (\d+)", out))
            same = (json.loads((local / "results/metrics/tiny.json").read_text())
                    == json.loads((slurm / "results/metrics/tiny.json").read_text()))
    finally:
        subprocess.run([SCRIPTS / "stop.sh", "--quiet"], check=False)
    jobs = jobcomp(ids)
    rec.update({
        "local_seconds": round(t_local, 1), "slurm_seconds": round(t_slurm, 1),
        "slurm_jobs": len(ids), "all_completed": all(j["state"] == "COMPLETED" for j in jobs),
        "metrics_identical": same,
        "job_run_seconds_median": statistics.median(j["run"] for j in jobs),
        "job_wait_seconds_median": statistics.median(j["wait"] for j in jobs),
        "job_wait_seconds_max": max(j["wait"] for j in jobs),
        "load_after": load(),
    })
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "slurm.json").write_text(json.dumps(rec, indent=2) + "\n")
    md = (f"SLURM (single node, {rec['cpus']} cores, {rec['date']}; load average before {rec['load_before']}, "
          f"after {rec['load_after']}): tiny config locally {rec['local_seconds']} s, through "
          f"snakemake-executor-plugin-slurm {rec['slurm_seconds']} s ({rec['slurm_jobs']} SLURM jobs, "
          f"all COMPLETED: {rec['all_completed']}; per job median run {rec['job_run_seconds_median']:.0f} s, "
          f"median queue wait {rec['job_wait_seconds_median']:.0f} s, max {rec['job_wait_seconds_max']:.0f} s); "
          f"metrics identical: {same}. Cluster start {rec['start_seconds']} s; install {rec['install']['seconds']} s "
          f"({rec['install']['note']}).\n")
    (out_dir / "slurm.md").write_text(md)
    print(md, end="")
    return 0 if same and rec["all_completed"] else 1


if __name__ == "__main__":
    sys.exit(main())
