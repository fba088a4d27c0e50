"""Diffusion settings sweep on a cross-feature experiment's own inputs: does diffusion
help the CNN index, and the CIE-embedded one, at any graph size?

    python benchmarks/bench_refine.py --name copydays-cie \
        --cnn data/features/copydays-style-synth/mnv2-gem.npy \
        --cie models/copydays-cie/cie/embedded.npy \
        --dataset copydays-style-synth --raw data/raw/copydays-style-synth \
        --protocol variants --protocol multiview

For each protocol, mAP of CNN-only, CIE, and diffusion (methods/refine.py, the
pipeline's functions) on the CNN index and on the CIE index over a grid of graph k,
query k and alpha (gamma 3, 20 CG iterations as the papers), plus Yang et al.'s
truncated diffusion at the papers' settings. The grid is scored on the evaluation
queries themselves: it shows what each setting can do, and any "best" row is
optimistic by selection (no held-out queries on these small sets).
Writes benchmarks/results/refine-sweep-<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

GRID = {"k": (5, 10, 20, 50), "query_k": (3, 10), "alpha": (0.5, 0.9, 0.99)}


def score_protocol(source, X, E, threads: int) -> dict:
    from pseudosup.methods.cie import normalise_dense
    from pseudosup.methods.cie_task import build_task
    from pseudosup.methods.refine import RefineSettings, diffusion_scores, truncated_diffusion_scores
    from pseudosup.mining.features_io import rows

    db, task = build_task(source, X.shape[0])
    Xq, Xdb, En = normalise_dense(rows(X, task.queries)), normalise_dense(rows(X, db)), normalise_dense(E)

    def mAP(scores) -> float:
        return round(float(task.evaluate(scores)[0]["map"]), 4)

    out = {"task": task.name, "queries": int(len(task.queries)), "database": int(len(db)),
           "cnn": mAP(Xq @ Xdb.T), "cie": mAP(Xq @ En.T), "grid": []}
    papers = RefineSettings()
    out["truncated_papers"] = {"cnn": mAP(truncated_diffusion_scores(Xq, Xdb, papers, threads)),
                               "cie": mAP(truncated_diffusion_scores(Xq, En, papers, threads))}
    for k in GRID["k"]:
        for qk in GRID["query_k"]:
            for alpha in GRID["alpha"]:
                s = RefineSettings(diffusion_k=k, diffusion_query_k=qk, diffusion_alpha=alpha)
                t0 = time.time()
                row = {"k": k, "query_k": qk, "alpha": alpha, "cnn_diffusion": mAP(diffusion_scores(Xq, Xdb, s, threads)),
                       "cie_diffusion": mAP(diffusion_scores(Xq, En, s, threads))}
                row["seconds"] = round(time.time() - t0, 2)
                out["grid"].append(row)
                print(task.name, row, flush=True)
    return out


def both(p: dict) -> str:
    """The settings at which CIE + diffusion beats CIE alone and diffusion alone."""
    wins = [g for g in p["grid"] if g["cie_diffusion"] > max(p["cie"], g["cnn_diffusion"])]
    return ", ".join(f"(k {g['k']}, query k {g['query_k']}, alpha {g['alpha']})" for g in wins) or "none"


def markdown(doc: dict) -> str:
    lines = [f"# Diffusion sweep: {doc['name']} ({doc['date']}, load {doc['load']})", "",
             "mAP on the experiment's own queries (optimistic by selection: no held-out queries). "
             "Papers' settings: k 50, query k 10, alpha 0.99.", ""]
    for p in doc["protocols"]:
        best_cnn = max(p["grid"], key=lambda g: g["cnn_diffusion"])
        best_cie = max(p["grid"], key=lambda g: g["cie_diffusion"])
        lines += [f"## {p['task']} ({p['queries']} queries, {p['database']:,} indexed)", "",
                  f"CNN-only {p['cnn']:.4f}, CIE {p['cie']:.4f}; truncated diffusion (Yang et al., papers' "
                  f"settings, truncation 1,000): CNN {p['truncated_papers']['cnn']:.4f}, CIE "
                  f"{p['truncated_papers']['cie']:.4f}.", "",
                  "| k | query k | alpha | CNN + diffusion | CIE + diffusion |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {g['k']} | {g['query_k']} | {g['alpha']} | {g['cnn_diffusion']:.4f} | {g['cie_diffusion']:.4f} |"
                  for g in p["grid"]]
        lines += ["", f"Best CNN + diffusion {best_cnn['cnn_diffusion']:.4f} (k {best_cnn['k']}, query k "
                  f"{best_cnn['query_k']}, alpha {best_cnn['alpha']}); best CIE + diffusion "
                  f"{best_cie['cie_diffusion']:.4f} (k {best_cie['k']}, query k {best_cie['query_k']}, alpha "
                  f"{best_cie['alpha']}); CIE + diffusion above CIE at "
                  f"{sum(g['cie_diffusion'] > p['cie'] for g in p['grid'])} of {len(p['grid'])} settings, above both CIE "
                  f"and CNN + diffusion (same setting) at {both(p)}.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    from pseudosup.methods.cie_task import TaskSource
    from pseudosup.mining.features_io import load_dense

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for a in ("--name", "--cnn", "--cie", "--dataset", "--raw"):
        ap.add_argument(a, required=True)
    ap.add_argument("--protocol", action="append", required=True, help="instance protocol (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    X, _ = load_dense(Path(args.cnn))
    E, _ = load_dense(Path(args.cie))
    protocols = [score_protocol(TaskSource(args.dataset, Path(args.raw), None, p), X, E, args.threads)
                 for p in args.protocol]
    doc = {"name": args.name, "inputs": {"cnn": args.cnn, "cie": args.cie},
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "load": " ".join(f"{x:.2f}" for x in os.getloadavg()), "protocols": protocols}
    out = ROOT / "benchmarks" / "results" / f"refine-sweep-{args.name}"
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
