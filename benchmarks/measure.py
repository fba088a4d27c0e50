"""Run a command and record its wall time and peak memory (sum of RSS over the whole
process tree, sampled every 0.2 s), as JSON and a Markdown line.

    python benchmarks/measure.py --name demo -- snakemake --cores 2

Results go to benchmarks/results/<name>.{json,md}; README sections quote the .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    total = biggest = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for p in procs:
        try:
            rss = p.memory_info().rss
        except psutil.Error:
            continue
        total += rss
        biggest = max(biggest, rss)
    return total, biggest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="result name (benchmarks/results/<name>.*)")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="command after --")
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    t0 = time.time()
    child = subprocess.Popen(cmd)
    ps = psutil.Process(child.pid)
    peak_total = peak_one = 0
    loads = []  # 1-min load average every ~5 s: other jobs on the machine slow the command down
    while child.poll() is None:
        total, one = tree_rss(ps)
        peak_total, peak_one = max(peak_total, total), max(peak_one, one)
        if not loads or time.time() - t0 > 5 * len(loads):
            loads.append(os.getloadavg()[0])
        time.sleep(0.2)
    wall = time.time() - t0
    rec = {"name": args.name, "command": " ".join(cmd), "exit_code": child.returncode,
           "wall_seconds": round(wall, 1), "peak_rss_total_mib": round(peak_total / 2**20),
           "peak_rss_one_process_mib": round(peak_one / 2**20), "cpus": os.cpu_count(),
           "machine": platform.machine(), "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d"),
           "load_1min_mean": round(sum(loads) / len(loads), 2) if loads else None,
           "load_1min_max": round(max(loads), 2) if loads else None}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(rec, indent=2) + "\n")
    (args.out_dir / f"{args.name}.md").write_text(
        f"`{rec['command']}`: {rec['wall_seconds']:.0f} s wall, peak memory {rec['peak_rss_total_mib']} MiB "
        f"(all processes together; largest single process {rec['peak_rss_one_process_mib']} MiB), "
        f"{rec['cpus']} cores, {rec['date']}, exit code {rec['exit_code']}"
        f" (1-min load during the run: mean {rec['load_1min_mean']}, max {rec['load_1min_max']})\n")
    print(json.dumps(rec, indent=2))
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
