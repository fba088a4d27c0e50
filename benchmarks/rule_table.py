"""Per-rule table of a pipeline run, from the files Snakemake's `benchmark:` directive
wrote (logs/benchmarks/<rule>/<job>.tsv: wall seconds, peak RSS and more per job).

    python benchmarks/rule_table.py --logs logs/benchmarks --name default-targets \
        --note "snakemake --cores 2 from a clean clone (CI)"

Writes benchmarks/results/<name>-rules.{json,md}: per rule the number of jobs, their
summed and largest wall time, and the largest peak RSS of one job; plus per experiment
(the `experiment` or `dataset` part of the job file name, where the rule has one) the
summed wall time. Sums are job seconds: with 2 cores, jobs overlap, so the sum exceeds
the run's wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def read_jobs(logs: Path) -> list[dict]:
    """One row per benchmark file: rule, job (file stem), seconds, max_rss_mib."""
    jobs = []
    for tsv in sorted(logs.rglob("*.tsv")):
        with tsv.open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows:
            raise SystemExit(f"{tsv}: empty benchmark file (an interrupted job?); rerun the job or delete it")
        row = rows[-1]
        rss = row.get("max_rss", "-")
        job = tsv.relative_to(logs).with_suffix("")
        jobs.append({"rule": job.parts[0], "job": str(job),
                     "seconds": float(row["s"]), "max_rss_mib": float(rss) if rss not in ("-", "NA", "") else None})
    if not jobs:
        raise SystemExit(f"{logs}: no benchmark files; run the pipeline first (every rule has `benchmark:`)")
    return jobs


def by_rule(jobs: list[dict]) -> list[dict]:
    rules = {}
    for j in jobs:
        r = rules.setdefault(j["rule"], {"rule": j["rule"], "jobs": 0, "sum_s": 0.0, "max_s": 0.0,
                                         "max_job": "", "max_rss_mib": 0.0})
        r["jobs"] += 1
        r["sum_s"] += j["seconds"]
        if j["seconds"] >= r["max_s"]:
            r["max_s"], r["max_job"] = j["seconds"], j["job"]
        r["max_rss_mib"] = max(r["max_rss_mib"], j["max_rss_mib"] or 0.0)
    return sorted(rules.values(), key=lambda r: -r["sum_s"])


def by_experiment(jobs: list[dict], experiments: list[str]) -> dict[str, float]:
    """Summed job seconds per experiment, for jobs whose file names one (first path part
    after the rule, or the name before the first '-' for flat names)."""
    out = {}
    for j in jobs:
        parts = Path(j["job"]).parts[1:]
        name = parts[0] if parts else ""
        exp = next((e for e in experiments if name == e or name.startswith(e + "-")), None)
        if exp:
            out[exp] = out.get(exp, 0.0) + j["seconds"]
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def markdown(rules: list[dict], per_exp: dict, note: str, total: float) -> str:
    lines = [f"{note}; {sum(r['jobs'] for r in rules)} jobs, {total:,.0f} job-seconds in all "
             "(jobs overlap on 2 cores).", "",
             "| rule | jobs | job-seconds | largest job (s) | largest job | peak RSS of one job (MiB) |",
             "|---|---:|---:|---:|---|---:|"]
    for r in rules:
        lines.append(f"| {r['rule']} | {r['jobs']} | {r['sum_s']:,.0f} | {r['max_s']:,.1f} | `{r['max_job']}` | "
                     f"{r['max_rss_mib']:,.0f} |")
    if per_exp:
        lines += ["", "| experiment (jobs that name it) | job-seconds |", "|---|---:|"]
        lines += [f"| {e} | {s:,.0f} |" for e, s in per_exp.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=Path, default=Path("logs/benchmarks"), help="benchmark folder of a run")
    ap.add_argument("--name", required=True, help="results/<name>-rules.{json,md}")
    ap.add_argument("--note", required=True, help="what was run, where (first sentence of the table)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="for the experiment names")
    args = ap.parse_args()
    import yaml

    experiments = sorted(yaml.safe_load(args.params.read_text())["experiments"], key=len, reverse=True)
    jobs = read_jobs(args.logs)
    rules, per_exp = by_rule(jobs), by_experiment(jobs, experiments)
    total = sum(j["seconds"] for j in jobs)
    record = {"name": args.name, "note": args.note, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "cpu": platform.processor() or platform.machine(), "rules": rules, "experiments": per_exp,
              "jobs": jobs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}-rules.json").write_text(json.dumps(record, indent=1) + "\n")
    (RESULTS / f"{args.name}-rules.md").write_text(markdown(rules, per_exp, args.note, total))
    print((RESULTS / f"{args.name}-rules.md").read_text())


if __name__ == "__main__":
    main()
