"""Label-free hashers side by side over several seeds, on a pipeline experiment's own
inputs (issue 13's targets: mean of 3 seeds, tie rule `expected`).

    python benchmarks/bench_hashers.py --experiment real-small-cifar --feature mnv2-gem \\
        --methods itq sdc sdc_rnn bihalf greedyhash --bits 16 32 64 --seeds 0 1 2 \\
        --name bench_hashers_cifar_mnv2

Reads what the pipeline built (`snakemake --cores 2 data/features/<dataset>/<feature>.npy`):
the experiment's features, its committed split (train / queries / database) and the
dataset's labels, and every method's settings from params.yaml `methods.<name>`, with
params `seed` replaced by each seed in turn. Scores with the evaluate stage's own code
(`evaluation.scoring.hamming_metrics`): full-ranking mAP and mAP@--map-at (1,000: the
published protocol of SDC / Bi-half), tie rule `expected` (or --tie-rule).

Resumable: each (method, bits, seed) run is appended to
benchmarks/results/<name>.runs.jsonl as it finishes and skipped on the next start; the
summary (<name>.json, <name>.md: mean ± std, per-seed differences from --baseline) is
rewritten after every run. Threads: --threads (torch, faiss and the Hamming kernels).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def load_inputs(params: dict, experiment: str, feature: str, data: Path):
    """(features, split, labels) of an experiment as the pipeline stores them."""
    from pseudosup.data import registry
    from pseudosup.data.splits import load_split

    exp = params["experiments"][experiment]
    X = np.load(data / "features" / exp["dataset"] / f"{feature}.npy", mmap_mode="r")
    split = load_split(data / "splits" / f"{exp['split']}.json")
    labels = registry.get(exp["dataset"]).labels(data / "raw" / exp["dataset"])
    return np.asarray(X, dtype=np.float32), split, labels


def run_one(method: str, cfg: dict, bits: int, seed: int, X, split, labels, ev: dict, threads: int) -> dict:
    """Fit on the split's training part, encode queries and database, score."""
    import torch

    from pseudosup.evaluation import ranking as R
    from pseudosup.evaluation.scoring import hamming_metrics
    from pseudosup.methods import registry
    from pseudosup.stages.train import make_hasher

    torch.set_num_threads(threads)
    # as the train stage builds it (threads reach the hashers that mine their training set)
    hasher = make_hasher(registry.get(cfg["hasher"]), bits, cfg, seed, threads)
    t0 = time.time()
    hasher.fit(X[split.part("train")])
    fit_s = time.time() - t0
    q, db = split.part("queries"), split.part("database")
    rel = R.ClassRelevance(labels[q], labels[db])
    m = hamming_metrics(hasher.encode(X[q]), hasher.encode(X[db]), bits, rel, ev, threads, ev["map_at"])
    return {"method": method, "bits": bits, "seed": seed, "map": m["map"], "map_at_k": m["map_at_k"],
            "precision_at_k": m["precision_at_k"], "fit_seconds": round(fit_s, 1)}


def summarise(runs: list[dict], methods: list[str], bits: list[int], seeds: list[int], baseline: str) -> dict:
    """mean ± std per (method, bits) of each metric; paired differences from the baseline."""
    out = {}
    for m in methods:
        for b in bits:
            rs = {r["seed"]: r for r in runs if r["method"] == m and r["bits"] == b}
            if not rs:
                continue
            row = {"seeds": sorted(rs)}
            for key in ("map", "map_at_k", "fit_seconds"):
                v = np.array([rs[s][key] for s in sorted(rs)])
                row[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
            base = {r["seed"]: r for r in runs if r["method"] == baseline and r["bits"] == b}
            paired = [s for s in sorted(rs) if s in base]
            if m != baseline and paired:
                for key in ("map", "map_at_k"):
                    d = [rs[s][key] - base[s][key] for s in paired]
                    row[f"{key}_minus_{baseline}"] = {"per_seed": d, "mean": float(np.mean(d)),
                                                      "losses": int(sum(x < 0 for x in d))}
            out[f"{m}/{b}"] = row
    return out


def markdown(summary: dict, methods: list[str], bits: list[int], args, protocol: str, wall: float) -> str:
    def cell(m, b, key):
        r = summary.get(f"{m}/{b}")
        return f"{r[key]['mean']:.4f} ± {r[key]['std']:.4f}" if r else "-"

    lines = [f"{protocol}; mean ± std over seeds {args.seeds}, tie rule {args.tie_rule}.", ""]
    for key, title in (("map", "mAP (whole ranking)"), ("map_at_k", f"mAP@{args.map_at}")):
        lines += [f"**{title}**", "", "| method | " + " | ".join(f"{b} bits" for b in bits) + " |",
                  "|---|" + "---|" * len(bits)]
        lines += [f"| {m} | " + " | ".join(cell(m, b, key) for b in bits) + " |" for m in methods]
        lines += ["", f"{title} minus {args.baseline}, mean of paired seeds (seeds with a loss):", "",
                  "| method | " + " | ".join(f"{b} bits" for b in bits) + " |", "|---|" + "---|" * len(bits)]
        for m in methods:
            if m == args.baseline:
                continue
            cells = []
            for b in bits:
                d = summary.get(f"{m}/{b}", {}).get(f"{key}_minus_{args.baseline}")
                cells.append(f"{d['mean']:+.4f} ({d['losses']} of {len(d['per_seed'])})" if d else "-")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Training seconds (mean over seeds; " + f"{args.threads} thread(s), machine shared with other jobs):", "",
              "| method | " + " | ".join(f"{b} bits" for b in bits) + " |", "|---|" + "---|" * len(bits)]
    lines += [f"| {m} | " + " | ".join(f"{summary[f'{m}/{b}']['fit_seconds']['mean']:.0f}" if f"{m}/{b}" in summary
                                         else "-" for b in bits) + " |" for m in methods]
    cmd = " ".join(["python benchmarks/bench_hashers.py", "--experiment", args.experiment, "--feature", args.feature,
                    "--methods", *args.methods, "--bits", *map(str, args.bits), "--seeds", *map(str, args.seeds),
                    "--name", args.name])
    lines += ["", f"Summary written {wall:.0f} s into its invocation; runs are resumed from <name>.runs.jsonl; "
              f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
              f"{platform.processor() or platform.machine()}. Command: `{cmd}`", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="real-small-cifar")
    ap.add_argument("--feature", default="mnv2-gem")
    ap.add_argument("--methods", nargs="+", default=["itq", "sdc", "sdc_rnn", "bihalf", "greedyhash"])
    ap.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--baseline", default="itq", help="method the differences are taken from")
    ap.add_argument("--map-at", type=int, default=1000)
    ap.add_argument("--tie-rule", default="expected")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--name", default="bench_hashers")
    args = ap.parse_args()

    from pseudosup.params import load

    t0 = time.time()
    params = load(args.params)
    ev = {**params["evaluation"], "tie_rule": args.tie_rule, "map_at": args.map_at}
    X, split, labels = load_inputs(params, args.experiment, args.feature, args.data)
    protocol = (f"{args.experiment}, {args.feature} ({X.shape[1]}-d): {len(split.part('queries'))} queries, "
                f"{len(split.part('database'))} database, {len(split.part('train'))} training items, relevance = "
                "same class")
    log = RESULTS / f"{args.name}.runs.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["method"], r["bits"], r["seed"]) for r in runs}
    for seed in args.seeds:
        for b in args.bits:
            for m in args.methods:
                if (m, b, seed) in done:
                    continue
                r = run_one(m, params["methods"][m], b, seed, X, split, labels, ev, args.threads)
                print(json.dumps(r), flush=True)
                with log.open("a") as f:
                    f.write(json.dumps(r) + "\n")
                runs.append(r)
                write_summary(runs, args, protocol, time.time() - t0)
    write_summary(runs, args, protocol, time.time() - t0)


def write_summary(runs: list[dict], args, protocol: str, wall: float) -> None:
    """<name>.json and <name>.md from every run logged so far (of the listed methods)."""
    summary = summarise(runs, args.methods, args.bits, args.seeds, args.baseline)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(
        {"protocol": protocol, "seeds": args.seeds, "tie_rule": args.tie_rule, "map_at": args.map_at,
         "summary": summary}, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(summary, args.methods, args.bits, args, protocol, wall))


if __name__ == "__main__":
    main()
