"""Feature extraction benchmark (issue 4): retrieval quality on CIFAR-10 test and speed.

    python benchmarks/bench_features.py                # everything (~15 min on 2 cores)
    python benchmarks/bench_features.py --part map     # only the mAP table
    python benchmarks/bench_features.py --part speed   # only the speed / memory figures

Quality: class-level mAP (and precision@500) of Euclidean ranking — cosine ranking
through the inverted index for the sparse SIFT bag of words, whose many exact ties
(similarity 0) are scored by the tie rule `expected` — on the 10,000 CIFAR-10
test images of ../shared/data/cifar10-test-jpg.tar: 1,000 queries (100 per class),
the other 9,000 as database, split `cifar10-test-q1k` (the committed file when it
exists, else drawn here by the same protocol function with seed 0 — the result
says which). Features: raw pixels, GIST-512 (grey) and GIST-960 (colour), RootSIFT
BoW (dense grid; vocabulary, IDF and projection learned on the split's `train`
part, no labels) and the bundled ImageNet MobileNetV2 (TFLite converted to torch)
with MAC / SPoC / GeM / R-MAC pooling, plus GeM PCA-whitened on the `train` part.

Speed (issue targets in brackets): MobileNetV2 at 224x224 [>= 40 img/s], SIFT on
1024-px images [>= 5 img/s], GIST-512 on 32x32 [>= 500 img/s], assignment of 1M
descriptors to 20k words [<= 30 s], peak memory of CNN extraction vs dataset size.
Each figure records the machine load (`uptime`) when it was measured: the 2 cores are
shared with other jobs on development machines.

Writes benchmarks/results/bench_features.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
SHARED = Path(os.environ.get("PSEUDOSUP_SHARED_DATA", ROOT.parent / "shared" / "data"))
TFLITE = SHARED / "coral" / "mobilenet_v2_1.0_224_quant.tflite"
OUT = ROOT / "benchmarks" / "results"
THREADS = 2


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "threads": THREADS}


# --- data ---------------------------------------------------------------------------------------

def cifar_test() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The 10,000 images (uint8 n x 32 x 32 x 3) in the dataset's item order (member
    paths sorted), labels from the class folders (alphabetical = CIFAR-10 order)."""
    import cv2

    with tarfile.open(SHARED / "cifar10-test-jpg.tar") as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.endswith(".jpg")), key=lambda m: m.name)
        classes = sorted({m.name.split("/")[-2] for m in members})
        imgs = np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(tf.extractfile(m).read(), np.uint8),
                                                   cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for m in members])
    labels = np.array([classes.index(m.name.split("/")[-2]) for m in members])
    return imgs, labels, [m.name for m in members]


def the_split(labels: np.ndarray):
    from pseudosup.data import splits

    committed = ROOT / "data" / "splits" / "cifar10-test-q1k.json"
    if committed.exists():
        s = splits.load_split(committed)
        return s, f"committed {committed.relative_to(ROOT)}"
    s = splits.make_split("cifar10-test-q1k", labels, 0)
    return s, "drawn here by pseudosup.data.splits.make_split('cifar10-test-q1k', labels, seed=0) (no committed file yet)"


# --- quality -------------------------------------------------------------------------------------

TIE_RULE = "expected"  # the project default (params evaluation.tie_rule)


def evaluate(X: np.ndarray, q: np.ndarray, db: np.ndarray, labels: np.ndarray) -> dict:
    from pseudosup.evaluation.ranking import ClassRelevance, squared_l2, tie_aware_metrics_by_distance

    rel = ClassRelevance(labels[q], labels[db])
    Xq, Xdb = np.ascontiguousarray(X[q], np.float32), np.ascontiguousarray(X[db], np.float32)
    m = tie_aware_metrics_by_distance(lambda a, b: squared_l2(Xq[a:b], Xdb), len(q), rel, 500, TIE_RULE)
    return {"mAP": round(float(m["ap"].mean()), 4), "P@500": round(float(m["precision_at_k"].mean()), 4),
            "dim": int(X.shape[1])}


def evaluate_sparse(G, q, db, labels) -> dict:
    from pseudosup.evaluation.ranking import ClassRelevance, tie_aware_metrics_by_distance
    from pseudosup.features.sparse import InvertedIndex

    index = InvertedIndex(G[db])
    Gq = G[q]
    rel = ClassRelevance(labels[q], labels[db])
    out = {"dim": int(G.shape[1]), "nnz_per_image": round(float(G.nnz / G.shape[0]), 1)}
    for rule in (TIE_RULE, "index"):
        m = tie_aware_metrics_by_distance(lambda a, b: -index.scores(Gq[a:b]), len(q), rel, 500, rule)
        key = "" if rule == TIE_RULE else " (ties by index)"
        out.update({f"mAP{key}": round(float(m["ap"].mean()), 4), f"P@500{key}": round(float(m["precision_at_k"].mean()), 4)})
    zero = sum(int((index.scores(Gq[a:a + 256]) <= 0).sum()) for a in range(0, len(q), 256))
    out["zero_score_fraction"] = round(zero / (len(q) * len(db)), 4)
    return out


def quality(results: dict) -> None:
    import torch

    from pseudosup.data.registry import ArrayImages
    from pseudosup.features import bow, cnn, gist
    from pseudosup.features.sift import SiftConfig

    torch.set_num_threads(THREADS)
    imgs, labels, _ = cifar_test()
    split, split_note = the_split(labels)
    q, db, train = split.part("queries"), split.part("database"), split.part("train")
    src = ArrayImages(imgs)
    rows, timing = {}, {}
    results["map"] = {"split": split_note, "n_queries": int(len(q)), "n_database": int(len(db)),
                      "relevance": "same class", "ranking": "Euclidean (cosine via the inverted index for sparse BoW); "
                      f"equal distances by tie rule '{TIE_RULE}' (exact mean over their orders)", "rows": rows, "seconds": timing, "load_before": load_avg(), "date": machine()["date"]}

    rows["pixels (3072-d)"] = evaluate(imgs.reshape(len(imgs), -1).astype(np.float32) / 255, q, db, labels)
    print(rows, flush=True)

    t = time.time()
    G512, _ = gist.extract(src, (8, 8, 8, 8), False, 32, workers=THREADS)
    timing["gist-512"] = round(time.time() - t, 1)
    rows["GIST-512 (grey)"] = evaluate(G512, q, db, labels)
    t = time.time()
    G960, _ = gist.extract(src, (8, 8, 4), True, 32, workers=THREADS)
    timing["gist-960"] = round(time.time() - t, 1)
    rows["GIST-960 (colour)"] = evaluate(G960, q, db, labels)
    print(rows, flush=True)

    # RootSIFT BoW on a dense grid (the detector finds ~nothing on 32x32 images)
    sc = SiftConfig(dense_step=4, dense_size=16, min_side=64)
    t = time.time()
    X, _ = bow.sample_descriptors(src, sc, train, 300_000, 0, THREADS)
    words = bow.train_vocabulary(X, 1000, 20, 0, THREADS)
    counts, rep = bow.encode(src, words, sc, "exact", 1, THREADS)
    idf = bow.idf_of(counts[train])
    G = bow.tfidf(counts, idf)
    proj = bow.fit_projection(G[train], 128, True, 0)
    D = bow.project(G, proj)
    timing["sift-bow (vocabulary + encoding + projection)"] = round(time.time() - t, 1)
    rows["RootSIFT BoW, 1000 words, TF-IDF, cosine (inverted index)"] = evaluate_sparse(G, q, db, labels)
    rows["RootSIFT BoW -> PCA-whitened 128-d (dense, for hashing)"] = evaluate(D, q, db, labels)
    results["map"]["sift_descriptors_per_image"] = rep["descriptors_per_image"]
    print(rows, flush=True)

    t = time.time()
    backbone = cnn.load_backbone("mobilenet_v2", str(TFLITE))
    out, _ = cnn.extract(src, backbone, ["mac", "spoc", "gem", "rmac"], 224, "square", 16, 0, (1.0,), 3.0, 3, 32)
    timing["mobilenet_v2 224 (all poolings, one pass)"] = round(time.time() - t, 1)
    for m, name in (("mac", "MAC"), ("spoc", "SPoC"), ("gem", "GeM p=3"), ("rmac", "R-MAC L=3")):
        rows[f"MobileNetV2 (TFLite->torch) {name}"] = evaluate(out[m], q, db, labels)
    w = cnn.fit_whitening(out["gem"][train], 256)
    rows["MobileNetV2 GeM + PCA-whitening 256-d (learned on train part)"] = evaluate(
        cnn.apply_whitening(out["gem"], w), q, db, labels)
    results["map"]["load_after"] = load_avg()
    print(rows, flush=True)


# --- speed ----------------------------------------------------------------------------------------

def speed(results: dict) -> None:
    import torch

    torch.set_num_threads(THREADS)
    sp = results["speed"] = {"date": machine()["date"]}
    sp["mobilenet_v2_224"] = _mnv2_speed()
    print(sp, flush=True)
    sp["sift_1024px"] = _sift_speed()
    print(sp, flush=True)
    sp["gist512_32px"] = _gist_speed()
    print(sp, flush=True)
    sp["assign_1M_to_20k"] = _assign_speed()
    print(sp, flush=True)
    sp["cnn_peak_memory"] = _memory()
    print(sp, flush=True)


def _mnv2_speed() -> dict:
    import torch

    from pseudosup.data.registry import ArrayImages
    from pseudosup.features import cnn
    from pseudosup.features.tflite import load_mobilenet_v2

    net = load_mobilenet_v2(TFLITE)
    trunk = net.features.to(memory_format=torch.channels_last)
    res = {"target_img_per_s": 40, "load_before": load_avg()}
    for bs in (8, 16, 32):
        x = torch.randint(0, 256, (bs, 3, 224, 224)).float().contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            trunk(net.normalize(x))
            t, n = time.time(), 0
            while time.time() - t < 8:
                trunk(net.normalize(x))
                n += bs
        res[f"forward_batch{bs}_img_per_s"] = round(n / (time.time() - t), 1)
    imgs, _, _ = cifar_test()
    backbone = cnn.load_backbone("mobilenet_v2", str(TFLITE))
    t = time.time()
    cnn.extract(ArrayImages(imgs[:800]), backbone, ["gem"], 224, "square", 16, 0)
    res["end_to_end_cifar_upscaled_img_per_s"] = round(800 / (time.time() - t), 1)
    res["load_after"] = load_avg()
    return res


def _sift_speed() -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from pseudosup.features.images import read_image, to_layout
    from pseudosup.features.sift import Sift, SiftConfig

    paths = sorted((SHARED / "oxford5k" / "jpg").glob("*.jpg"))
    greys = [to_layout(read_image(p), False)[0] for p in paths]
    # upscale to exactly 1024 px on the longer side (the files are ~1024x768 already)
    import cv2
    greys = [cv2.resize(g, (1024, int(round(g.shape[0] * 1024 / g.shape[1]))) if g.shape[1] >= g.shape[0]
                        else (int(round(g.shape[1] * 1024 / g.shape[0])), 1024)) for g in greys]
    cfg = SiftConfig(max_side=1024, max_keypoints=2000)
    sifts = [Sift(cfg) for _ in range(THREADS)]
    res = {"target_img_per_s": 5, "images": [f"{p.name} {g.shape[1]}x{g.shape[0]}" for p, g in zip(paths, greys)],
           "load_before": load_avg()}
    jobs = [g for _ in range(3) for g in greys]
    t = time.time()
    with ThreadPoolExecutor(THREADS) as pool:
        n_kp = list(pool.map(lambda jg: len(sifts[jg[0] % THREADS].describe(jg[1])[0]),
                             [(i, g) for i, g in enumerate(jobs)]))
    res["img_per_s_2_threads"] = round(len(jobs) / (time.time() - t), 2)
    t = time.time()
    for g in greys:
        sifts[0].describe(g)
    res["img_per_s_1_thread"] = round(len(greys) / (time.time() - t), 2)
    res["keypoints_per_image_mean"] = round(float(np.mean(n_kp)), 1)
    res["load_after"] = load_avg()
    return res


def _gist_speed() -> dict:
    from pseudosup.features import gist

    imgs, _, _ = cifar_test()
    grey = imgs[:4096].mean(axis=3).astype(np.uint8)
    res = {"target_img_per_s": 500, "load_before": load_avg()}
    gist.gist_batch(grey[:256], workers=THREADS)
    t = time.time()
    for a in range(0, len(grey), 256):
        gist.gist_batch(grey[a:a + 256], workers=THREADS)
    res["img_per_s"] = round(len(grey) / (time.time() - t), 1)
    res["load_after"] = load_avg()
    return res


def _assign_speed() -> dict:
    """1M real RootSIFT descriptors (dense grid on CIFAR-10) against 20k words (20k
    other real descriptors as centroids: assignment cost does not depend on how the
    words were trained)."""
    from pseudosup.data.registry import ArrayImages
    from pseudosup.features import bow
    from pseudosup.features.sift import SiftConfig

    imgs, _, _ = cifar_test()
    X, _ = bow.sample_descriptors(ArrayImages(imgs), SiftConfig(dense_step=4, dense_size=16, min_side=64),
                                  np.arange(len(imgs)), 1_020_000, 0, THREADS)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(X))
    words, desc = X[perm[:20_000]], X[perm[20_000:1_020_000]]
    res = {"target_s": 30, "n_descriptors": int(len(desc)), "n_words": 20_000, "load_before": load_avg()}
    for method in ("hnsw", "exact"):
        t = time.time()
        a = bow.Assigner(words, method, THREADS)
        build = time.time() - t
        t = time.time()
        out = a.assign(desc)
        res[f"{method}_seconds"] = round(time.time() - t, 1)
        res[f"{method}_build_seconds"] = round(build, 2)
        res[f"_{method}"] = out
    res["hnsw_agreement_with_exact"] = round(float((res.pop("_hnsw") == res.pop("_exact")).mean()), 4)
    res["load_after"] = load_avg()
    return res


def _vm_hwm_mib() -> float:
    """Peak resident memory of this process (VmHWM; reset by exec, unlike ru_maxrss,
    which a spawned child inherits from its parent on Linux)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _memory_child(n: int, conn) -> None:
    import torch

    from pseudosup.data.registry import ArrayImages
    from pseudosup.features import cnn

    torch.set_num_threads(THREADS)
    imgs, _, _ = cifar_test()
    imgs = np.ascontiguousarray(imgs[:n])
    backbone = cnn.load_backbone("mobilenet_v2", str(TFLITE))
    base = _vm_hwm_mib()
    cnn.extract(ArrayImages(imgs), backbone, ["gem"], 224, "square", 16, 0)
    conn.send({"n_images": n, "peak_rss_mib": _vm_hwm_mib(), "rss_before_extraction_mib": base})


def _memory() -> list[dict]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = []
    for n in (200, 1000):
        a, b = ctx.Pipe()
        p = ctx.Process(target=_memory_child, args=(n, b))
        p.start()
        out.append({**a.recv(), "batch_size": 16, "load": load_avg()})
        p.join()
    return out


# --- report ----------------------------------------------------------------------------------------

def write(results: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "bench_features.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(results)
    path.write_text(json.dumps(old, indent=2) + "\n")
    (OUT / "bench_features.md").write_text(markdown(old))


def markdown(r: dict) -> str:
    lines = ["**Feature extraction benchmark** (benchmarks/bench_features.py)", ""]
    m = r.get("machine", {})
    lines += [f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {THREADS} threads; last run {m.get('date', '?')}.", ""]
    if "map" in r:
        mp_ = r["map"]
        lines += ["#### Class-level mAP on CIFAR-10 test (1,000 queries / 9,000 database)", "",
                  f"Measured {mp_.get('date', '?')}. Split: {mp_['split']}. Relevance: {mp_['relevance']}. Ranking: {mp_['ranking']}. "
                  f"Load (1/5/15 min) before {mp_['load_before']}, after {mp_.get('load_after', '?')}.", "",
                  "| feature | dim | mAP | precision@500 |", "|---|---|---|---|"]
        for name, v in mp_["rows"].items():
            lines.append(f"| {name} | {v['dim']} | {v['mAP']:.4f} | {v['P@500']:.4f} |")
        for name, v in mp_["rows"].items():
            if "mAP (ties by index)" in v:
                lines += ["", f"{name}: {100 * v['zero_score_fraction']:.1f}% of the query/database pairs score exactly 0 "
                              f"(a tie); ordering ties by database index instead (class-sorted here) would give mAP "
                              f"{v['mAP (ties by index)']:.4f}, precision@500 {v['P@500 (ties by index)']:.4f}."]
        lines += ["", "Extraction times (s): " + ", ".join(f"{k} {v}" for k, v in mp_["seconds"].items()), ""]
    if "speed" in r:
        s = r["speed"]
        lines += ["#### Speed and memory", "", f"Measured {s.get('date', '?')}.", "", "| measure | value | target | load before / after |", "|---|---|---|---|"]
        if "mobilenet_v2_224" in s:
            v = s["mobilenet_v2_224"]
            best = max(v[k] for k in v if k.startswith("forward_batch"))
            lines.append(f"| MobileNetV2 224x224 forward, best batch (img/s) | {best} "
                         f"({', '.join(f'{k}: {v[k]}' for k in v if k.startswith('forward_batch'))}) | >= 40 | "
                         f"{v['load_before']} / {v['load_after']} |")
            lines.append(f"| MobileNetV2 end to end on CIFAR-10 upscaled to 224 (img/s) | "
                         f"{v['end_to_end_cifar_upscaled_img_per_s']} | >= 40 | {v['load_before']} / {v['load_after']} |")
        if "sift_1024px" in s:
            v = s["sift_1024px"]
            lines.append(f"| SIFT+RootSIFT on 1024-px Oxford images, 2 threads (img/s) | {v['img_per_s_2_threads']} "
                         f"(1 thread {v['img_per_s_1_thread']}; {v['keypoints_per_image_mean']} keypoints/img) | >= 5 | "
                         f"{v['load_before']} / {v['load_after']} |")
        if "gist512_32px" in s:
            v = s["gist512_32px"]
            lines.append(f"| GIST-512 on 32x32 (img/s) | {v['img_per_s']} | >= 500 | {v['load_before']} / {v['load_after']} |")
        if "assign_1M_to_20k" in s:
            v = s["assign_1M_to_20k"]
            lines.append(f"| assign 1M RootSIFT to 20k words, HNSW (s) | {v['hnsw_seconds']} (agreement with exact "
                         f"{v['hnsw_agreement_with_exact']}) | <= 30 | {v['load_before']} / {v['load_after']} |")
            lines.append(f"| assign 1M RootSIFT to 20k words, exact flat L2 (s) | {v['exact_seconds']} | <= 30 | "
                         f"{v['load_before']} / {v['load_after']} |")
        if "cnn_peak_memory" in s:
            for v in s["cnn_peak_memory"]:
                lines.append(f"| CNN extraction peak RSS, {v['n_images']} images, batch {v['batch_size']} (MiB) | "
                             f"{v['peak_rss_mib']} (before extraction {v['rss_before_extraction_mib']}) | "
                             f"bounded by the batch | {v['load']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["all", "map", "speed", "speed-fast", "memory"], default="all",
                    help="speed-fast: MobileNetV2, SIFT and GIST speeds only (no assignment, no memory)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"real data not found at {SHARED}; set PSEUDOSUP_SHARED_DATA")
    results = {"machine": machine()}
    if args.part in ("all", "map"):
        quality(results)
        write(results)
    if args.part in ("all", "speed"):
        speed(results)
        write(results)
    if args.part == "speed-fast":
        import torch

        torch.set_num_threads(THREADS)
        old = json.loads((OUT / "bench_features.json").read_text()) if (OUT / "bench_features.json").exists() else {}
        results["speed"] = {**old.get("speed", {}), "mobilenet_v2_224": _mnv2_speed(), "sift_1024px": _sift_speed(),
                            "gist512_32px": _gist_speed(),
                            "date": f"{machine()['date']} (MobileNetV2, SIFT, GIST rows; the others earlier)"}
        write(results)
    if args.part == "memory":
        old = json.loads((OUT / "bench_features.json").read_text()) if (OUT / "bench_features.json").exists() else {}
        results["speed"] = {**old.get("speed", {}), "cnn_peak_memory": _memory(),
                            "date": f"{machine()['date']} (memory rows; the others earlier)"}
        write(results)
    print((OUT / "bench_features.md").read_text())


if __name__ == "__main__":
    main()
