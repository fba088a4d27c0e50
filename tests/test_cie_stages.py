"""The integration snippets of docs/cie.md, applied to a copy of the project: the schema
and params blocks validate, and the rules run the issue-6 stages end to end through
Snakemake on a small copydays-style-synth (stand-in feature files; real images)."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from .conftest import ROOT, SHARED, copy_project, run_cli, snakemake

DOC = ROOT / "docs" / "cie.md"


def doc_block(tag: str) -> str:
    m = re.search(rf"```[a-z]+ {tag}\n(.*?)```", DOC.read_text(), re.S)
    assert m, f"docs/cie.md has no block tagged {tag}"
    return m.group(1)


def patch_project(project):
    """Apply the schema, params and rules of docs/cie.md to a project copy."""
    schema_path = project / "workflow" / "schemas" / "params.schema.yaml"
    schema = yaml.safe_load(schema_path.read_text())
    schema["properties"].update(yaml.safe_load(doc_block("schema")))
    exp = schema["$defs"]["experiment"]
    exp["properties"]["cross"] = yaml.safe_load(doc_block("experiment-schema"))["cross"]
    exp["required"] = [r for r in exp["required"] if r != "split"]
    exp["properties"]["split"]["type"] = ["string", "null"]
    schema_path.write_text(yaml.safe_dump(schema, sort_keys=False))

    params = yaml.safe_load((project / "params.yaml").read_text())
    params.update(yaml.safe_load(doc_block("params")))
    params["instance_bench"].update(variants=2, distractors=5, max_side=256)
    params["cross_mining"]["verify"].update(max_side=320, min_inliers=10, drop_unverified=False)
    params["cie"].update(k=3, iterations=2)
    params["finetune"].update(trainable_blocks=2, epochs=1, batch_size=8, negatives=2, neg_min_rank=5,
                              neg_max_rank=40)
    params["features"]["bench-sift"] = {"extractor": "sift-bow"}
    params["features"]["bench-cnn"] = {"extractor": "cnn", "backbone": "mobilenet_v2", "weights": "random",
                                       "image_size": 64, "batch_size": 16}
    params["experiments"]["instance"] = {
        "dataset": "copydays-style-synth", "split": None, "features": ["bench-sift", "bench-cnn"],
        "methods": [], "ceiling": False, "mining": False,
        "cross": {"sift": "bench-sift", "cnn": "bench-cnn", "protocol": "variants"}}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    (project / "workflow" / "rules" / "cie.smk").write_text(doc_block("rules"))
    snakefile = (project / "Snakefile").read_text()
    snakefile = snakefile.replace('include: "workflow/rules/mining.smk"\n',
                                  'include: "workflow/rules/mining.smk"\ninclude: "workflow/rules/cie.smk"\n')
    (project / "Snakefile").write_text(snakefile)
    # the data layer registers the benchmark once instance_bench is imported (docs: one line in registry.py)
    reg = project / "src" / "pseudosup" / "data" / "registry.py"
    text = reg.read_text()
    if "instance_bench" not in text:
        text = re.sub(r"(    from \. import [^\n]*?)(  # noqa: F401)", r"\1, instance_bench\2", text, count=1)
        reg.write_text(text)
    return params


def standin_features(project, n_items_instances):
    """Feature files in the features stage's formats: a TF-IDF-able bag of words whose
    words follow the instance (plus noise), and dense 'CNN' vectors likewise."""
    from pseudosup.features.bow import save_bow
    from pseudosup.io import save_array

    inst = n_items_instances
    rng = np.random.default_rng(0)
    n, V = len(inst), 400
    rows, cols = [], []
    for i, g in enumerate(inst):
        words = np.concatenate([rng.choice(np.arange(g * 5, g * 5 + 5) % V, 3), rng.integers(0, V, 8)])
        rows += [i] * len(words)
        cols += words.tolist()
    counts = sp.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=(n, V))
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=V)
    idf = np.where(df > 0, np.log(n / np.maximum(df, 1)), 0).astype(np.float32)
    out = project / "data" / "features" / "copydays-style-synth"
    out.mkdir(parents=True, exist_ok=True)
    save_bow(out / "bench-sift.bow.npz", counts, idf, {"feature": "bench-sift"})
    save_array(out / "bench-sift.npy", np.zeros((n, 2), np.float32), {"feature": "bench-sift"})
    centres = rng.standard_normal((inst.max() + 1, 16))
    X = centres[inst] + 0.8 * rng.standard_normal((n, 16))
    save_array(out / "bench-cnn.npy", X.astype(np.float32), {"feature": "bench-cnn"})


@pytest.mark.shared_data
@pytest.mark.slow
def test_docs_snippets_run_the_cross_feature_experiment(tmp_path):
    project = copy_project(tmp_path / "p")
    patch_project(project)
    run_cli("validate-params", "--params", str(project / "params.yaml"), cwd=project)
    os.environ["PSEUDOSUP_SHARED_DATA"] = str(SHARED)
    try:
        snakemake(project, "--cores", "2", "data/raw/copydays-style-synth")
        manifest = json.loads((project / "data/raw/copydays-style-synth/manifest.json").read_text())
        inst = np.unique([it["instance"] for it in manifest["items"]], return_inverse=True)[1]
        standin_features(project, inst)
        targets = ["results/runs/instance/retrieval.json", "results/tables/instance-retrieval.md",
                   "results/metrics/instance.json",
                   "results/figures/instance/cie_map.png", "results/figures/instance/finetune.png",
                   "results/figures/instance/cie_gallery.png"]
        snakemake(project, "--cores", "2", *targets)
    finally:
        os.environ.pop("PSEUDOSUP_SHARED_DATA", None)
    res = json.loads((project / "results/runs/instance/retrieval.json").read_text())
    assert set(res["results"]) == {"sift", "cnn", "fusion", "cie", "cie-embedded-queries", "finetuned"}
    assert res["queries"] == 37 and res["database"] == 37 * 3 + 5
    for m, r in res["results"].items():
        assert 0 < r["map"] <= 1, m
    assert res["results"]["cie"]["bytes_per_image"] == 16 * 4
    stats = json.loads((project / "results/mining/instance/cross.json").read_text())
    assert stats["num_pairs"] > 0 and "verification" in stats
    hist = json.loads((project / "results/cie/instance/history.json").read_text())["history"]
    assert [h["iteration"] for h in hist] == [0, 1, 2] and "map_cie" in hist[-1]
    ft = json.loads((project / "results/finetune/instance/history.json").read_text())["history"]
    assert [h["epoch"] for h in ft] == [0, 1] and "loss" in ft[1]
    assert "| CIE (embedded CNN index) |" in (project / "results/tables/instance-retrieval.md").read_text()
    from pseudosup.gate import flatten

    flat = flatten(json.loads((project / "results/metrics/instance.json").read_text()))
    assert set(flat) == {f"retrieval/{m}/map" for m in res["results"]}
    dry = snakemake(project, "--cores", "2", "--dry-run", *targets)
    assert "Nothing to be done" in dry.stdout + dry.stderr


@pytest.mark.shared_data
def test_stage_errors_name_the_problem_and_write_nothing(tmp_path):
    project = copy_project(tmp_path / "p")
    patch_project(project)
    from pseudosup.data import instance_bench as B

    raw = project / "data/raw/copydays-style-synth"
    B.build(SHARED, raw, B.BenchSettings(variants=1, max_side=128))
    n = len(B.read_manifest(raw)["items"])
    inst = B.instance_labels(raw)
    standin_features(project, inst)
    feats = project / "data/features/copydays-style-synth"
    from pseudosup.io import save_array

    save_array(feats / "short.npy", np.zeros((n - 1, 16), np.float32), {"feature": "short"})
    out = project / "models/x/embedded.npy"
    proc = run_cli("cie", "--params", "params.yaml", "--keys", "cie", "mining", "seed",
                   "--bow", str(feats / "bench-sift.bow.npz"), "--cnn", str(feats / "short.npy"),
                   "--out", str(out), "--history", str(project / "h.json"), cwd=project, check=False)
    assert proc.returncode == 2 and f"has {n} rows" in proc.stdout + proc.stderr and not out.exists()
    # pairs pointing outside the dataset: refused before the network is loaded
    from pseudosup.io import save_npz

    save_npz(project / "bad.npz", {}, pairs=np.array([[0, 1]]), item_ids=np.array([[0, n + 5]]))
    proc = run_cli("finetune", "--params", "params.yaml", "--keys", "finetune", "features.bench-cnn", "seed",
                   "--feature", "bench-cnn", "--pairs", "bad.npz", "--dataset", "copydays-style-synth",
                   "--raw", str(raw), "--protocol", "variants", "--checkpoint", "ck.pt", "--features-out", "f.npy",
                   "--history", "fh.json", cwd=project, check=False)
    assert proc.returncode == 2 and "outside the" in proc.stdout + proc.stderr and not (project / "ck.pt").exists()
    # a protocol the benchmark does not have
    proc = run_cli("evaluate-retrieval", "--params", "params.yaml", "--keys", "retrieval",
                   "--bow", str(feats / "bench-sift.bow.npz"), "--cnn", str(feats / "bench-cnn.npy"),
                   "--dataset", "copydays-style-synth", "--raw", str(raw), "--protocol", "holidays",
                   "--out", "r.json", cwd=project, check=False)
    assert proc.returncode == 2 and "not one of ['multiview', 'variants']" in proc.stdout + proc.stderr
