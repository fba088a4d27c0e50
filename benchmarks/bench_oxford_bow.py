"""Plain RootSIFT bag of words on the 10 Oxford images (issue 4's "Done when"): can
TF-IDF BoW with an inverted index (cosine) rank same-landmark images first?

    python benchmarks/bench_oxford_bow.py            # the grid (~5 min on 1 thread, loaded machine)
    python benchmarks/bench_oxford_bow.py --quick    # 1024 px / 4,000 keypoints only

The images are ../shared/data/oxford5k/jpg (5 pitt_rivers, 3 radcliffe_camera,
bodleian_000132, oxford_002904); the ground truth gnd_oxford5k.pkl makes all ten
Oxford5k queries, each with 4 positives among the other nine (the pitt_rivers five;
the radcliffe_camera three with bodleian_000132 and oxford_002904). For every setting:
vocabulary by faiss k-means (10 iterations) on all RootSIFTs of the ten images, no
labels (as Philbin et al. learned theirs on Oxford itself), IDF on the ten images,
tf = count ** tf_power, L2, cosine scores; "x/10" = queries whose four positives all
score above the five others, mAP = mean AP of the ten queries over the nine others.
Each setting is run with two k-means seeds. One thread (faiss, OpenCV): the cores
are shared.

Writes benchmarks/results/oxford_bow.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
SHARED = Path(os.environ.get("PSEUDOSUP_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "benchmarks" / "results"
SIFTS = [(1024, 2000), (1024, 4000), (1024, 8000), (512, 2000)]
SIZES = [1000, 2000, 4000, 8000, 16000]
ASSIGN_K = [1, 3]
TF_POWERS = [1.0, 0.5]
SEEDS = [0, 1]


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def oxford() -> tuple[list[Path], dict[int, list[int]]]:
    """The ten image paths (sorted) and each query's positives (indices into them)."""
    paths = sorted((SHARED / "oxford5k" / "jpg").glob("*.jpg"))
    names = [p.stem for p in paths]
    gnd = pickle.loads((SHARED / "oxford5k" / "gnd_oxford5k.pkl").read_bytes())
    positives = {}
    for qi, q in enumerate(gnd["qimlist"]):
        if q in names:
            ok = {gnd["imlist"][i] for i in gnd["gnd"][qi]["ok"]}
            positives[names.index(q)] = [j for j, n in enumerate(names) if n in ok and n != q]
    return paths, positives


def evaluate(S: np.ndarray, positives: dict[int, list[int]]) -> tuple[int, float]:
    """(queries whose positives all score above every other image, mean AP). AP ranks
    the other images by score, ties by index."""
    perfect, aps = 0, []
    for i, pos in positives.items():
        others = np.array([j for j in range(len(S)) if j != i])
        rel = np.isin(others, pos)[np.argsort(-S[i, others], kind="stable")]
        aps.append(float((np.cumsum(rel) / np.arange(1, len(rel) + 1))[rel].mean()))
        perfect += int(S[i, pos].min() > np.delete(S[i], pos + [i]).max())
    return perfect, float(np.mean(aps))


def grid(paths, positives, sifts) -> list[dict]:
    from pseudosup.features import bow
    from pseudosup.features.images import FileImages
    from pseudosup.features.sift import SiftConfig

    rows = []
    for max_side, max_kp in sifts:
        _, described = bow.describe_images(FileImages(paths), SiftConfig(max_side=max_side, max_keypoints=max_kp))
        D = [d for _, d in described]
        X = np.concatenate(D)
        for size in [v for v in SIZES if 2 * v <= len(X)]:  # at least 2 descriptors per word
            for seed in SEEDS:
                t0 = time.time()
                assigner = bow.Assigner(bow.train_vocabulary(X, size, 10, seed=seed), "exact")
                nearest = [assigner.assign(d, max(ASSIGN_K)) for d in D]
                for k in ASSIGN_K:
                    counts = bow.counts_matrix([w[:, :k].ravel() for w in nearest], size)
                    idf = bow.idf_of(counts)
                    for p in TF_POWERS:
                        G = bow.tfidf(counts, idf, tf_power=p)
                        perfect, m = evaluate(bow.InvertedIndex(G).scores(G), positives)
                        rows.append({"max_side": max_side, "max_keypoints": max_kp, "descriptors": len(X),
                                     "words": size, "assign_k": k, "tf_power": p, "seed": seed,
                                     "perfect": perfect, "map": round(m, 4)})
                        print(f"{max_side:5d} px {max_kp:5d} kp ({len(X)} desc) {size:6d} words k={k} "
                              f"tf^{p}: seed {seed}: {perfect}/10 mAP {m:.3f}", flush=True)
                print(f"  ({time.time() - t0:.1f} s, load {load_avg()})", flush=True)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    key = ("max_side", "max_keypoints", "words", "assign_k", "tf_power")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in key), []).append(r)
    lines = [f"Plain RootSIFT BoW on the 10 Oxford images ({meta['date']}, {meta['cpu']}, 1 thread, "
             f"load {meta['load_before']} before / {meta['load_after']} after). x/10 = queries whose 4 positives "
             "all rank first; mAP over the other 9 images; one column per k-means seed "
             f"({', '.join(map(str, SEEDS))}).", "",
             "| max side | max keypoints | descriptors | words | assign k | tf | x/10 | mAP |",
             "|---:|---:|---:|---:|---:|---|---|---|"]
    for (side, kp, words, k, p), rs in groups.items():
        tf = "count" if p == 1 else f"count^{p:g}"
        lines.append(f"| {side} | {kp} | {rs[0]['descriptors']} | {words} | {k} | {tf} | "
                     f"{' / '.join(str(r['perfect']) for r in rs)} | {' / '.join('%.3f' % r['map'] for r in rs)} |")
    best = max(rows, key=lambda r: (r["perfect"], r["map"]))
    lines += ["", f"Best single run: {best['perfect']}/10 (mAP {best['map']:.3f}) with {best['max_keypoints']} "
              f"keypoints at {best['max_side']} px, {best['words']} words, assign k {best['assign_k']}, "
              f"tf power {best['tf_power']:g}, seed {best['seed']}. Runs reaching 10/10: "
              f"{sum(r['perfect'] == 10 for r in rows)} of {len(rows)}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only 1024 px / 4,000 keypoints")
    args = ap.parse_args()
    import cv2
    import faiss

    faiss.omp_set_num_threads(1)
    cv2.setNumThreads(1)
    if not (SHARED / "oxford5k" / "gnd_oxford5k.pkl").exists():
        print(f"no Oxford data under {SHARED}/oxford5k (set PSEUDOSUP_SHARED_DATA)", file=sys.stderr)
        return 2
    paths, positives = oxford()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "load_before": load_avg()}
    t0 = time.time()
    rows = grid(paths, positives, [(1024, 4000)] if args.quick else SIFTS)
    meta.update(load_after=load_avg(), seconds=round(time.time() - t0, 1))
    OUT.mkdir(parents=True, exist_ok=True)
    name = "oxford_bow_quick" if args.quick else "oxford_bow"
    (OUT / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (OUT / f"{name}.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
