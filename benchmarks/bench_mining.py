"""Benchmark: reversible-NN mining on 1,000,000 x 128 vectors (k = 10).

Target (issue 6): <= 20 min on 2 cores, recall@10 >= 0.95 against exact search
(measured on a sample), peak memory < 16 GB.

Data: SYNTHETIC clustered vectors, not a real dataset: 1,000 cluster centres
~ N(0, 4 I) in 128-d; each point = its centre + a cluster-specific random 16-d
subspace x N(0, I) + 0.1 N(0, I) noise (low intrinsic dimension, like local
descriptors; seeded). A second run uses the 47,646 real SIFT descriptors of
../shared/data/sift-real-small (if present) with the approximate index forced.

The graph is built by pseudosup.mining.knn.build_knn (faiss IVF, nprobe auto-tuned on a
tuning sample to target recall 0.95); recall@10 is then measured on a disjoint
sample of 1,000 rows against exact (brute-force) search; reversible pairs by
pseudosup.mining.reciprocal.

    python benchmarks/bench_mining.py [--n 1000000] [--threads 2]

Writes benchmarks/results/mining.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pseudosup.mining.knn import KnnSettings, build_knn  # noqa: E402
from pseudosup.mining.reciprocal import pair_stats, reciprocal_pairs  # noqa: E402

SHARED = Path(os.environ.get("PSEUDOSUP_SHARED_DATA", ROOT.parent / "shared" / "data"))


def clustered(n: int, d: int = 128, clusters: int = 1000, sub: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = (2.0 * rng.standard_normal((clusters, d))).astype(np.float32)
    bases = (rng.standard_normal((clusters, d, sub)) / np.sqrt(sub)).astype(np.float32)
    X = np.empty((n, d), np.float32)
    step = 100_000
    for i in range(0, n, step):
        m = min(step, n - i)
        c = rng.integers(0, clusters, m)
        u = rng.standard_normal((m, sub)).astype(np.float32)
        X[i:i + m] = centres[c] + np.einsum("mds,ms->md", bases[c], u) + 0.1 * rng.standard_normal((m, d)).astype(np.float32)
    return X


def read_fvecs(path: Path) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def mine(X: np.ndarray, k: int, settings: KnnSettings, threads: int) -> dict:
    t0 = time.time()
    g = build_knn(X, k, "l2", settings, threads)
    t_graph = time.time() - t0
    t1 = time.time()
    pairs = reciprocal_pairs(g.indices)
    t_pairs = time.time() - t1
    info = {k_: v for k_, v in g.info.items() if k_ != "settings"}
    return {"n": int(len(X)), "dim": int(X.shape[1]), "k": k, "knn": info, "graph_seconds": round(t_graph, 1),
            "pairs_seconds": round(t_pairs, 1), "total_seconds": round(t_graph + t_pairs, 1),
            **pair_stats(pairs, len(X)), "peak_memory_gb": round(peak_gb(), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mining")
    args = ap.parse_args()
    runs = []
    load_before = load()
    t0 = time.time()
    X = clustered(args.n)
    gen = time.time() - t0
    r = mine(X, args.k, KnnSettings(index="auto", target_recall=0.95, recall_sample=1000), args.threads)
    r.update(data="synthetic clustered (1,000 clusters, 16-d subspaces + noise; not a real dataset)",
             generate_seconds=round(gen, 1), load_before=load_before, load_after=load())
    runs.append(r)
    del X
    base = SHARED / "sift-real-small" / "base.fvecs"
    if base.exists():
        Xs = read_fvecs(base)
        r = mine(Xs, args.k, KnnSettings(index="ivf", target_recall=0.95, recall_sample=1000), args.threads)
        r.update(data="sift-real-small base (47,646 real SIFT descriptors), IVF forced", load_after=load())
        runs.append(r)
    doc = {"benchmark": "reversible-NN mining", "target": "1M x 128, k=10: <= 20 min on 2 cores, recall@10 >= 0.95, "
           "memory < 16 GB", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
           "threads": args.threads, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(doc))
    print(markdown(doc))


def markdown(doc: dict) -> str:
    lines = [f"# {doc['benchmark']} ({doc['date']}, {doc['machine']['cpus']} CPUs, {doc['threads']} threads)", "",
             f"Target: {doc['target']}.", "",
             "| data | n | index | nprobe | recall@k (sample) | graph s | pairs s | total s | pairs | coverage | peak GB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["runs"]:
        kn = r["knn"]
        lines.append(f"| {r['data']} | {r['n']:,} | {kn['index']} (nlist {kn.get('nlist', '-')}) | {kn.get('nprobe', '-')} | "
                     f"{kn['recall_at_k']:.4f} (id {kn.get('id_recall_at_k', 1.0):.4f}) | {r['graph_seconds']} | "
                     f"{r['pairs_seconds']} | {r['total_seconds']} | {r['num_pairs']:,} | {r['coverage']:.3f} | "
                     f"{r['peak_memory_gb']} |")
    lines += ["", "Machine load (uptime) before / after: " +
              "; ".join(f"{r.get('load_before', '')} / {r.get('load_after', '')}" for r in doc["runs"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
