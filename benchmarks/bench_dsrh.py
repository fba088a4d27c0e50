"""DSRH against ITQ and LSH on the multi-label sets, with DSRH's own metrics.

    python benchmarks/bench_dsrh.py                       # scene + cifar10-mosaic2x2, 16/32/48/64 bits
    python benchmarks/bench_dsrh.py --sets scene --bits 64

- `scene` (../shared/data/scene): queries = the 1,196 test rows, database = training set =
  the 1,211 training rows; 294 colour-moment features; 6 labels.
- `cifar10-mosaic2x2` (pseudosup.data.mosaics, seed 0): 500 query mosaics
  and 5,000 database (= training) mosaics from disjoint CIFAR-10 test images; features
  for ITQ / LSH / DSRH = the global-average-pooled 1,280-d output of the ImageNet
  MobileNetV2 (../shared/data/coral/mobilenet_v2_1.0_224_quant.tflite, dequantised float
  network) on the mosaics resized to 128x128. `dsrh` trains its head on those cached
  features (= `dsrh_cnn` with its backbone frozen); `dsrh_cnn` is also run end to end
  from the images at `--cnn-bits` to show the image path (same backbone, same head).

Metrics (evaluation.ranking.graded_metrics, tie rule expected): NDCG@100, ACG@100,
weighted mAP@5000, precision@100 (relevant = shares >= 1 label). DSRH uses the
training labels; ITQ and LSH do not (they are the issue's baselines, not a fair fight
of supervised against supervised). Results: benchmarks/results/<name>.{json,md}.
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
TFLITE = SHARED / "coral" / "mobilenet_v2_1.0_224_quant.tflite"


def scene():
    def load(p):
        a = np.loadtxt(p, delimiter=",")
        return a[:, :294].astype(np.float32), a[:, 294:].astype(np.uint8)

    Xtr, Ytr = load(SHARED / "scene" / "scene-train.arff")
    Xte, Yte = load(SHARED / "scene" / "scene-test.arff")
    return {"train": Xtr, "train_labels": Ytr, "queries": Xte, "query_labels": Yte}


def mosaic(threads: int):
    from pseudosup.data.mosaics import mosaic_protocol, read_cifar10_test_jpg
    from pseudosup.methods.hashing.dsrh import DSRHCNN

    images, labels, _ = read_cifar10_test_jpg(SHARED / "cifar10-test-jpg.tar")
    m = mosaic_protocol(images, labels, seed=0)
    cnn = DSRHCNN(64, {"backbone_weights": str(TFLITE)})
    cnn.backbone = cnn._make_backbone()
    return {"train": cnn._pooled(m["db_images"]), "train_labels": m["db_labels"],
            "queries": cnn._pooled(m["query_images"]), "query_labels": m["query_labels"],
            "train_images": m["db_images"], "query_images": m["query_images"]}


def evaluate(model, data, bits, queries_key="queries", db_key="train"):
    from pseudosup.evaluation import ranking as R

    rel = R.MultiLabelRelevance(data["query_labels"], data["train_labels"])
    counts = R.level_histograms(model.encode(data[queries_key]), model.encode(data[db_key]), bits, rel)
    return {k: float(v.mean()) for k, v in R.graded_metrics(counts, 100, 100, 5000, 100).items()}


def fit(name, bits, seed, data, params=None, x_key="train"):
    from pseudosup.methods import registry

    model = registry.get(name)(bits, params or {}, seed)
    if getattr(model, "supervised", False):
        model.fit(data[x_key], data["train_labels"])
    else:
        model.fit(data[x_key])
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["scene", "cifar10-mosaic2x2"])
    ap.add_argument("--bits", nargs="+", type=int, default=[16, 32, 48, 64])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--cnn-bits", type=int, default=64, help="bits of the end-to-end dsrh_cnn run (0 = skip)")
    ap.add_argument("--dsrh-params", type=json.loads, default={},
                    help='JSON overrides of the dsrh/dsrh_cnn params, e.g. \'{"hidden": 256, "epochs": 30}\'')
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="bench_dsrh")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()

    import torch

    from pseudosup.stages.common import set_threads

    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    t0 = time.time()
    runs = []
    for name in args.sets:
        data = scene() if name == "scene" else mosaic(args.threads)
        for bits in args.bits:
            for seed in args.seeds:
                for method in ("lsh", "itq", "dsrh"):
                    t = time.time()
                    m = fit(method, bits, seed, data, args.dsrh_params if method == "dsrh" else None)
                    res = evaluate(m, data, bits)
                    runs.append({"set": name, "method": method, "bits": bits, "seed": seed, **res,
                                 "fit_seconds": round(time.time() - t, 1)})
                    print(json.dumps(runs[-1]), flush=True)
        if name != "scene" and args.cnn_bits:
            t = time.time()
            m = fit("dsrh_cnn", args.cnn_bits, args.seeds[0], data,
                    {**args.dsrh_params, "backbone_weights": str(TFLITE)}, "train_images")
            res = evaluate(m, data, args.cnn_bits, "query_images", "train_images")
            runs.append({"set": name, "method": "dsrh_cnn (images in)", "bits": args.cnn_bits, "seed": args.seeds[0],
                         **res, "fit_seconds": round(time.time() - t, 1)})
            print(json.dumps(runs[-1]), flush=True)
    rec = {"name": args.name, "runs": runs, "load_before": load_before,
           "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()), "wall_seconds": round(time.time() - t0),
           "cpus": os.cpu_count(), "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": "python benchmarks/bench_dsrh.py " + " ".join(
               f"--{k.replace('_', '-')} " + (" ".join(map(str, v)) if isinstance(v, list)
                                              else f"'{json.dumps(v)}'" if isinstance(v, dict) else str(v))
               for k, v in vars(args).items() if k not in ("out_dir",))}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(rec, indent=2) + "\n")
    (args.out_dir / f"{args.name}.md").write_text(markdown(rec))
    print(markdown(rec))
    return 0


def markdown(rec) -> str:
    lines = ["| set | method | bits | NDCG@100 | ACG@100 | wAP@5000 | P@100 |", "|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for r in rec["runs"]:
        groups.setdefault((r["set"], r["method"], r["bits"]), []).append(r)
    for (s, m, b), rs in groups.items():
        cell = lambda k: f"{np.mean([r[k] for r in rs]):.4f}"  # noqa: E731
        lines.append(f"| {s} | {m} | {b} | {cell('ndcg')} | {cell('acg')} | {cell('wap')} | {cell('precision')} |")
    lines += ["", f"Tie rule expected; mean over seeds {sorted({r['seed'] for r in rec['runs']})}. Wall "
                  f"{rec['wall_seconds']} s; load before/after {rec['load_before']} / {rec['load_after']}; {rec['date']}, "
                  f"{rec['cpus']} cores. `{rec['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
