"""LDPH fidelity (and the beyond variant) side by side with its reference, in one run.

    python benchmarks/bench_ldph.py                                  # SIFT real-small, fidelity protocol
    python benchmarks/bench_ldph.py --methods itq ldph-itq ldph_nn-itq --name bench_ldph_nn

Protocol of the issue's fidelity table (the authors' MATLAB code run under Octave):
`../shared/data/sift-real-small`, train = the first 20,000 base vectors, database = all
47,646 base vectors, 1,000 queries, relevant = the top-100 L2 ground truth file
(groundtruth.ivecs), full-ranking mAP with ties broken by database index (tie rule
`index`), mean of 3 seeds. Method specs: `itq`, `sh`, `lsh`, `pcah`, `ldph-<reference>`
(faithful, authors' settings), `ldph_nn-<reference>` (our variant, its defaults).

`--dataset cifar10-features --features F.npy --labels L.npy` runs the same comparison on
precomputed features of CIFAR-10 (first 1,000 rows of each class... see --help of the
options): queries = `--n-queries` items (100 per class), database = the rest, training
set = the database, relevant = the top-K L2 neighbours computed with
`evaluation.ranking.euclidean_ground_truth` (K = `--gt-k`).

Results: benchmarks/results/<name>.{json,md}; the load (uptime) is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("PSEUDOSUP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

AUTHORS = {  # the issue's table: the authors' code under Octave, mean of 3 seeds
    "itq": {16: 0.1203, 32: 0.2429, 64: 0.3872, 128: 0.5236},
    "ldph-itq": {16: 0.1215, 32: 0.2414, 64: 0.3709, 128: 0.4912},
}


def read_vecs(path: Path, dtype) -> np.ndarray:
    """TEXMEX .fvecs / .ivecs: per vector an int32 dimension d, then d values."""
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    return raw.reshape(-1, d + 1)[:, 1:].view(dtype).copy()


def sift_real_small():
    root = SHARED / "sift-real-small"
    base = read_vecs(root / "base.fvecs", np.float32)
    query = read_vecs(root / "query.fvecs", np.float32)
    gt = read_vecs(root / "groundtruth.ivecs", np.int32).astype(np.int64)
    return {"train": base[:20000], "database": base, "queries": query, "gt": gt,
            "protocol": "sift-real-small: train = first 20,000 base, database = 47,646 base, "
                        "1,000 queries, relevant = top-100 L2 ground truth file, tie rule index"}


def features_protocol(features: Path, labels: Path, n_queries: int, gt_k: int, seed: int):
    from pseudosup.evaluation.ranking import euclidean_ground_truth

    X = np.load(features).astype(np.float32)
    y = np.load(labels)
    rng = np.random.default_rng(seed)
    per = n_queries // len(np.unique(y))
    q = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False) for c in np.unique(y)]))
    db = np.setdiff1d(np.arange(len(X)), q)
    gt = euclidean_ground_truth(X[q], X[db], gt_k, threads=2)
    return {"train": X[db], "database": X[db], "queries": X[q], "gt": gt,
            "protocol": f"{features.name}: {len(q)} queries ({per}/class, seed {seed}), database = training set = "
                        f"the other {len(db)}, relevant = top-{gt_k} L2 neighbours, tie rule index"}


def cifar10_cnn_features(cache: Path, size: int, threads: int) -> tuple[Path, Path]:
    """Global-average-pooled 1,280-d MobileNetV2 features (ImageNet weights: the bundled
    uint8 TFLite model, dequantised float network) of the 10,000 CIFAR-10 test images
    (../shared/data/cifar10-test-jpg.tar) resized to size x size; cached."""
    import torch

    from pseudosup.data.mosaics import read_cifar10_test_jpg
    from pseudosup.methods.hashing.dsrh import DSRHCNN

    feats, labs = cache / f"cifar10-test-mnv2-{size}.npy", cache / "cifar10-test-labels.npy"
    if not feats.exists():
        torch.set_num_threads(threads)
        images, labels, _ = read_cifar10_test_jpg(SHARED / "cifar10-test-jpg.tar")
        cnn = DSRHCNN(64, {"backbone_weights": str(SHARED / "coral" / "mobilenet_v2_1.0_224_quant.tflite"),
                           "image_size": size})
        cnn.backbone = cnn._make_backbone()
        cache.mkdir(parents=True, exist_ok=True)
        np.save(labs, labels)
        np.save(feats, cnn._pooled(images))
    return feats, labs


def make(spec: str, bits: int, seed: int):
    from pseudosup.methods import registry

    if "-" in spec:
        hasher, ref = spec.split("-", 1)
        return registry.get(hasher)(bits, {"reference": ref}, seed)
    return registry.get(spec)(bits, {}, seed)


def run_one(spec, bits, seed, data, rel, threads):
    from pseudosup.evaluation import ranking as R

    t = time.time()
    model = make(spec, bits, seed).fit(data["train"])
    fit_s = time.time() - t
    ap, _ = R.hamming_ranking_by_index(model.encode(data["queries"]), model.encode(data["database"]), rel, 500,
                                       threads=threads)
    return float(ap.mean()), fit_s, getattr(model, "history", [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="sift-real-small", choices=["sift-real-small", "features", "cifar10-cnn"])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/pseudosup-bench"),
                    help="where cifar10-cnn caches its computed features (not committed)")
    ap.add_argument("--image-size", type=int, default=128, help="cifar10-cnn: input size of MobileNetV2")
    ap.add_argument("--features", type=Path)
    ap.add_argument("--labels", type=Path)
    ap.add_argument("--n-queries", type=int, default=1000)
    ap.add_argument("--gt-k", type=int, default=100)
    ap.add_argument("--methods", nargs="+", default=["itq", "ldph-itq"])
    ap.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64, 128])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="bench_ldph")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--render", action="store_true", help="only rewrite <name>.md from <name>.json")
    args = ap.parse_args()
    if args.render:
        rec = json.loads((args.out_dir / f"{args.name}.json").read_text())
        (args.out_dir / f"{args.name}.md").write_text(markdown(rec, args))
        return 0

    from pseudosup.evaluation import ranking as R
    from pseudosup.stages.common import set_threads

    set_threads(args.threads)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    t0 = time.time()
    if args.dataset == "cifar10-cnn":
        args.features, args.labels = cifar10_cnn_features(args.cache, args.image_size, args.threads)
    data = sift_real_small() if args.dataset == "sift-real-small" else \
        features_protocol(args.features, args.labels, args.n_queries, args.gt_k, 0)
    rel = R.ListRelevance(data["gt"], len(data["database"]))
    runs = []
    for bits in args.bits:
        for spec in args.methods:
            for seed in args.seeds:
                m, fit_s, hist = run_one(spec, bits, seed, data, rel, args.threads)
                runs.append({"method": spec, "bits": bits, "seed": seed, "map": m, "fit_seconds": round(fit_s, 1),
                             "history": hist})
                print(f"{spec:14s} {bits:4d} bits seed {seed}: mAP {m:.4f} ({fit_s:.0f} s)", flush=True)
    table = summarise(runs, args)
    rec = {"name": args.name, "protocol": data["protocol"], "seeds": args.seeds, "runs": runs, "summary": table,
           "load_before": load_before, "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
           "wall_seconds": round(time.time() - t0), "cpus": os.cpu_count(), "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(rec, indent=2) + "\n")
    md = markdown(rec, args)
    (args.out_dir / f"{args.name}.md").write_text(md)
    print(md)
    return 0


def summarise(runs, args):
    out = {}
    for spec in args.methods:
        for bits in args.bits:
            vals = [r["map"] for r in runs if r["method"] == spec and r["bits"] == bits]
            out.setdefault(spec, {})[str(bits)] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)),
                                                   "min": float(np.min(vals)), "max": float(np.max(vals))}
    return out


def markdown(rec, args) -> str:
    sift = args.dataset == "sift-real-small"
    head = "| bits | " + " | ".join(f"{m} (ours)" + (f" | {m} (authors)" if sift and m in AUTHORS else "")
                                     for m in args.methods) + " |"
    lines = [f"mAP, {rec['protocol']}; mean ± std over seeds {rec['seeds']}.", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for bits in args.bits:
        cells = []
        for m in args.methods:
            s = rec["summary"][m][str(bits)]
            cells.append(f"{s['mean']:.4f} ± {s['std']:.4f}")
            if sift and m in AUTHORS:
                cells.append(f"{AUTHORS[m].get(bits, float('nan')):.4f}")
        lines.append(f"| {bits} | " + " | ".join(cells) + " |")
    lines += paired_lines(rec, args)
    lines += ["", f"Wall {rec['wall_seconds']} s; load before/after {rec['load_before']} / {rec['load_after']}; "
                  f"{rec['date']}, {rec['cpus']} cores. Command: `python benchmarks/bench_ldph.py "
                  f"--dataset {args.dataset}{'' if sift else f' --gt-k {args.gt_k}'} --methods {' '.join(args.methods)} --bits {' '.join(map(str, args.bits))} "
                  f"--seeds {' '.join(map(str, args.seeds))} --name {rec['name']}`", ""]
    return "\n".join(lines)


def paired_lines(rec, args) -> list[str]:
    """Per-seed difference of each LDPH-type method and its reference (same seed = same
    reference model, so the comparison is paired)."""
    out = []
    for m in args.methods:
        if "-" not in m or m.split("-", 1)[1] not in args.methods:
            continue
        ref = m.split("-", 1)[1]
        out += ["", f"{m} − {ref}, per seed {rec['seeds']} (paired: same reference model and pairs seed):", "",
                "| bits | differences | mean | seeds with a loss |", "|---|---|---|---|"]
        for bits in args.bits:
            diffs = []
            for seed in rec["seeds"]:
                got = {r["method"]: r["map"] for r in rec["runs"] if r["bits"] == bits and r["seed"] == seed}
                diffs.append(got[m] - got[ref])
            out.append(f"| {bits} | {', '.join(f'{d:+.4f}' for d in diffs)} | {np.mean(diffs):+.4f} | "
                       f"{sum(d < 0 for d in diffs)} of {len(diffs)} |")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
