"""The cross-feature experiments as integrated in the pipeline (params.yaml, the schema,
workflow/rules/cie.smk, the Plan): the committed params declare them and `rule all`
builds their files; on a copy of the project, with the committed rules, the issue-6
stages run end to end through Snakemake on a small copydays-style-synth (stand-in
feature files; real images); bad inputs name the problem."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from pseudosup import params as P
from pseudosup.io import PseudosupError
from pseudosup.workflow import Plan

from .conftest import ROOT, SHARED, copy_project, run_cli, snakemake

CROSS_KINDS = ("results/runs/{e}/retrieval.json", "results/tables/{e}-retrieval.md", "results/metrics/{e}.json",
               "results/figures/{e}/cie_map.png", "results/figures/{e}/finetune.png",
               "results/figures/{e}/cie_gallery.png")


def test_committed_params_declare_the_two_cross_experiments():
    config = P.load(ROOT / "params.yaml")
    exps = config["experiments"]
    assert "copydays-cie" in config["targets"]
    # cifar10-cie is built by `everything` / its own target (too slow for CI's budget)
    assert "cifar10-cie" in exps and "cifar10-cie" not in config["targets"]
    assert exps["copydays-cie"]["cross"]["protocol"] == "variants" and exps["copydays-cie"]["split"] is None
    assert exps["copydays-cie"]["cross"]["also"] == ["multiview"]
    assert exps["cifar10-cie"]["cross"]["verify"] is False and exps["cifar10-cie"]["split"] == "cifar10-test-q1k"
    # the CNN and SIFT features of the other experiments are reused, not redefined
    assert exps["cifar10-cie"]["cross"]["cnn"] in exps["real-small-cifar"]["features"]
    assert config["features"]["cifar-sift"]["vocabulary"]["split"] == "cifar10-test-q1k"  # fitted off the queries
    assert exps["copydays-cie"]["cross"]["cnn"] == exps["cifar10-cie"]["cross"]["cnn"]


def test_plan_lists_cross_files_and_keeps_them_out_of_the_report():
    plan = Plan(P.load(ROOT / "params.yaml"))
    names = ["demo", "copydays-cie", "cifar10-cie"]
    files = plan.cross_files(names)
    assert files == [k.format(e=e) for e in ("copydays-cie", "cifar10-cie") for k in CROSS_KINDS]
    assert plan.report_files(names) == ["results/metrics/demo.json", "results/tables/demo.md"]
    assert not [f for f in plan.figure_files(names) if "cie" in f]
    import re

    rx = re.compile(f"^({plan.cross_regex()})$")
    assert rx.match("copydays-cie") and rx.match("cifar10-cie") and not rx.match("demo")
    ex = re.compile(f"^({plan.experiment_regex()})$")
    assert ex.match("copydays-cie") and not ex.match("copydays-cie-retrieval")


@pytest.mark.parametrize("mutate, text", [
    (lambda p: p["experiments"]["demo"].update(split=None), "key 'experiments.demo': 'split' is required"),
    (lambda p: p["experiments"]["cifar10-cie"]["cross"].update(sift="mnv2-gem"),
     "experiments.cifar10-cie.cross.sift: feature 'mnv2-gem' must have extractor sift-bow"),
    (lambda p: p["experiments"]["cifar10-cie"]["cross"].update(cnn="gist512"),
     "experiments.cifar10-cie.cross.cnn: 'gist512' is not one of the experiment's features"),
    (lambda p: p["experiments"]["cifar10-cie"]["cross"].update(finetune={"epochs": 0}),
     "experiments.cifar10-cie.cross.finetune.epochs"),
    (lambda p: p["experiments"]["cifar10-cie"]["cross"].update(finetune={"epoch": 1}),
     "experiments.cifar10-cie.cross.finetune"),
    (lambda p: p["finetune"].update(max_pairs=0), "finetune.max_pairs"),
])
def test_bad_cross_settings_name_the_key(mutate, text):
    raw = P.load_yaml(ROOT / "params.yaml")
    mutate(raw)
    with pytest.raises(PseudosupError, match=text.replace(".", r"\.")):
        P.validate(raw, ROOT / "params.yaml")


def test_finetune_overrides_of_an_experiment_apply_only_to_it():
    from pseudosup.params import ParamSlice
    from pseudosup.stages.finetune import finetune_settings

    config = P.load(ROOT / "params.yaml")
    keys = ["finetune", "experiments.cifar10-cie.cross.finetune"]
    cfg = finetune_settings(ParamSlice((k, P.lookup(config, k)) for k in keys))
    assert cfg["epochs"] == 1 and cfg["max_pairs"] == 500 and cfg["margin"] == config["finetune"]["margin"]
    own = finetune_settings(ParamSlice((k, P.lookup(config, k)) for k in
                                       ["finetune", "experiments.copydays-cie.cross.finetune"]))
    assert own == config["finetune"]


@pytest.mark.shared_data
def test_rule_all_builds_the_cross_experiments_with_their_own_rules(tmp_path):
    project = copy_project(tmp_path / "p")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED)  # params' ../shared/data (weights, photos)
    out = snakemake(project, "--cores", "2", "--dry-run", *[k.format(e="copydays-cie") for k in CROSS_KINDS],
                    "results/metrics/cifar10-cie.json").stdout
    for rule in ("build_instance_bench", "mine_cross", "cie", "finetune", "evaluate_retrieval", "plot_cie"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, rule
    assert "rule report:" not in out and "--also-protocol multiview" in out and "--no-verify" in out


def tiny_project(project):
    """The committed params with a tiny instance experiment (random 64-px CNN, few copies)."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["instance_bench"].update(variants=2, distractors=5, max_side=256)
    params["cross_mining"]["verify"].update(max_side=320, min_inliers=10, drop_unverified=False)
    params["cie"].update(k=3, iterations=2)
    params["finetune"].update(trainable_blocks=2, epochs=1, batch_size=8, negatives=2, neg_min_rank=5,
                              neg_max_rank=40)
    params["features"]["bench-cnn"] = {"extractor": "cnn", "backbone": "mobilenet_v2", "weights": "random",
                                       "image_size": 64, "batch_size": 16}
    params["experiments"]["instance"] = {
        "dataset": "copydays-style-synth", "features": ["bench-sift", "bench-cnn"], "ceiling": False,
        "mining": False, "cross": {"sift": "bench-sift", "cnn": "bench-cnn", "protocol": "variants",
                                   "also": ["multiview"]}}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
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
    from pseudosup.io import file_sha256

    out = project / "data" / "features" / "copydays-style-synth"
    out.mkdir(parents=True, exist_ok=True)
    save_bow(out / "bench-sift.bow.npz", counts, idf, {"dataset": BENCH, "feature": "bench-sift"})
    save_array(out / "bench-sift.npy", np.zeros((n, 2), np.float32),
               {**standin_meta("bench-sift", n, 2), "bow_sha256": file_sha256(out / "bench-sift.bow.npz")})
    centres = rng.standard_normal((inst.max() + 1, 16))
    X = centres[inst] + 0.8 * rng.standard_normal((n, 16))
    save_array(out / "bench-cnn.npy", X.astype(np.float32), standin_meta("bench-cnn", n, 16))


BENCH = "copydays-style-synth"


def standin_meta(feature, n, dim):
    """The sidecar entries the stages check (as the features stage writes them)."""
    return {"dataset": BENCH, "feature": feature, "n": n, "dim": dim,
            "items": {"dataset": BENCH, "count": n, "range": [0, n]}}


@pytest.mark.shared_data
@pytest.mark.slow
def test_cross_feature_experiment_runs_end_to_end(tmp_path):
    project = copy_project(tmp_path / "p")
    tiny_project(project)
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
    # params retrieval.refine.methods adds the label-free refinements (methods/refine.py)
    assert set(res["results"]) == {"sift", "cnn", "fusion", "cie", "cie-embedded-queries", "finetuned",
                                   "cnn-aqe", "cnn-dba-aqe", "cnn-diffusion", "cnn-diffusion-truncated", "cnn-k-reciprocal",
                                   "cie-diffusion", "cnn-collab-diffusion"}
    assert res["queries"] == 37 and res["database"] == 37 * 3 + 5
    for m, r in res["results"].items():
        assert 0 < r["map"] <= 1, m
    assert res["results"]["cie"]["bytes_per_image"] == 16 * 4
    # the graph-keeping refinements pay 8 bytes per stored neighbour on top of the vectors
    assert res["results"]["cnn-diffusion"]["bytes_per_image"] == 16 * 4 + 8 * 50
    # collaborative diffusion adds the verified pairs' two ends per item to the graph bound
    # (online: the pairs touching a query are left out, so at most the verified ones)
    verified = int(np.load(project / "data/pairs/instance/cross.npz")["verified"].sum())
    assert verified > 0 and 0 < res["collab_pairs"] <= verified
    assert res["results"]["cnn-collab-diffusion"]["bytes_per_image"] == pytest.approx(
        16 * 4 + 8 * 50 + 8 * 2 * res["collab_pairs"] / 116)
    # truncated diffusion stores each item's offline row (the whole database here: 116 < 1,000)
    assert res["results"]["cnn-diffusion-truncated"]["bytes_per_image"] == 16 * 4 + 8 * 116
    assert "| CNN + k-reciprocal re-ranking |" in (project / "results/tables/instance-retrieval.md").read_text()
    stats = json.loads((project / "results/mining/instance/cross.json").read_text())
    assert stats["num_pairs"] > 0 and "verification" in stats
    hist = json.loads((project / "results/cie/instance/history.json").read_text())["history"]
    assert [h["iteration"] for h in hist] == [0, 1, 2] and "map_cie" in hist[-1]
    ft = json.loads((project / "results/finetune/instance/history.json").read_text())["history"]
    assert [h["epoch"] for h in ft] == [0, 1] and "loss" in ft[1]
    table = (project / "results/tables/instance-retrieval.md").read_text()
    assert "| CIE (embedded CNN index) |" in table
    # the multiview protocol is scored on the same indexes: a second column pair, gated too
    (mv,) = res["also"]
    assert mv["task"] == "copydays-style-synth/multiview" and mv["queries"] == 12 and mv["database"] == res["database"]
    assert table.splitlines()[0] == ("| method | instance variants mAP | bytes/image | instance multiview mAP | "
                                     "bytes/image |")
    from pseudosup.gate import flatten

    flat = flatten(json.loads((project / "results/metrics/instance.json").read_text()))
    assert set(flat) == ({f"retrieval/{m}/map" for m in res["results"]}
                         | {f"retrieval-multiview/{m}/map" for m in mv["results"]})
    assert flat["retrieval-multiview/cie/map"] == mv["results"]["cie"]["map"]
    dry = snakemake(project, "--cores", "2", "--dry-run", *targets)
    assert "Nothing to be done" in dry.stdout + dry.stderr


@pytest.mark.shared_data
def test_stage_errors_name_the_problem_and_write_nothing(tmp_path):
    project = copy_project(tmp_path / "p")
    tiny_project(project)
    from pseudosup.data import instance_bench as B

    raw = project / "data/raw/copydays-style-synth"
    B.build(SHARED, raw, B.BenchSettings(variants=1, max_side=128))
    n = len(B.read_manifest(raw)["items"])
    inst = B.instance_labels(raw)
    standin_features(project, inst)
    feats = project / "data/features/copydays-style-synth"
    from pseudosup.io import save_array

    save_array(feats / "short.npy", np.zeros((n - 1, 16), np.float32), standin_meta("short", n - 1, 16))
    out = project / "models/x/embedded.npy"
    proc = run_cli("cie", "--params", "params.yaml", "--keys", "cie", "mining", "seed",
                   "--bow", str(feats / "bench-sift.bow.npz"), "--cnn", str(feats / "short.npy"),
                   "--out", str(out), "--history", str(project / "h.json"), cwd=project, check=False)
    assert proc.returncode == 2 and f"has {n} rows" in proc.stdout + proc.stderr and not out.exists()
    # pairs pointing outside the dataset: refused before the network is loaded
    from pseudosup.io import save_npz

    save_npz(project / "bad.npz", {"dataset": BENCH}, pairs=np.array([[0, 1]]), item_ids=np.array([[0, n + 5]]))
    proc = run_cli("finetune", "--params", "params.yaml", "--keys", "finetune", "features.bench-cnn", "seed",
                   "--feature", "bench-cnn", "--pairs", "bad.npz", "--dataset", "copydays-style-synth",
                   "--raw", str(raw), "--protocol", "variants", "--checkpoint", "ck.pt", "--features-out", "f.npy",
                   "--history", "fh.json", cwd=project, check=False)
    assert proc.returncode == 2 and "outside the" in proc.stdout + proc.stderr and not (project / "ck.pt").exists()
    # a protocol the benchmark does not have
    proc = run_cli("evaluate-retrieval", "--params", "params.yaml", "--keys", "retrieval", "evaluation",
                   "--bow", str(feats / "bench-sift.bow.npz"), "--cnn", str(feats / "bench-cnn.npy"),
                   "--dataset", "copydays-style-synth", "--raw", str(raw), "--protocol", "holidays",
                   "--out", "r.json", cwd=project, check=False)
    assert proc.returncode == 2 and "not one of ['multiview', 'variants']" in proc.stdout + proc.stderr
    # collaborative diffusion: pairs of items outside the database, or no pairs at all
    save_npz(project / "outside.npz", {"dataset": BENCH}, pairs=np.array([[0, 1]]),
             item_ids=np.array([[0, n + 5]]))
    base = ["evaluate-retrieval", "--params", "params.yaml", "--keys", "retrieval", "evaluation",
            "--bow", str(feats / "bench-sift.bow.npz"), "--cnn", str(feats / "bench-cnn.npy"),
            "--dataset", "copydays-style-synth", "--raw", str(raw), "--protocol", "variants"]
    proc = run_cli(*base, "--pairs", "outside.npz", "--out", "r3.json", cwd=project, check=False)
    assert proc.returncode == 2 and "outside.npz: pairs reference items outside" in proc.stdout + proc.stderr
    assert not (project / "r3.json").exists()
    proc = run_cli(*base, "--out", "r4.json", cwd=project, check=False)
    assert proc.returncode == 2 and "collab-diffusion needs the mined pairs: give --pairs" in proc.stdout + proc.stderr
    assert not (project / "r4.json").exists()
    # a further protocol on a split (class relevance) is refused before scoring
    proc = run_cli("evaluate-retrieval", "--params", "params.yaml", "--keys", "retrieval", "evaluation",
                   "--bow", str(feats / "bench-sift.bow.npz"), "--cnn", str(feats / "bench-cnn.npy"),
                   "--dataset", "copydays-style-synth", "--raw", str(raw), "--protocol", "variants",
                   "--also-protocol", "nope", "--out", "r2.json", cwd=project, check=False)
    assert proc.returncode == 2 and "nope" in proc.stdout + proc.stderr and not (project / "r2.json").exists()


def test_database_pairs_keep_verified_ones_and_refuse_bad_files(tmp_path):
    from pseudosup.io import save_npz
    from pseudosup.methods.cie_task import database_pairs

    db = np.array([3, 5, 8, 9])
    f = tmp_path / "p.npz"
    save_npz(f, {"dataset": BENCH}, item_ids=np.array([[3, 5], [8, 9], [5, 9]]), verified=np.array([True, False, True]))
    np.testing.assert_array_equal(database_pairs(f, db), [[0, 1], [1, 3]])
    for name, arrays, text in [
            ("neg.npz", {"item_ids": np.array([[-7, 3]])}, "outside the indexed database"),
            ("far.npz", {"item_ids": np.array([[3, 400]])}, "outside the indexed database"),
            ("gap.npz", {"item_ids": np.array([[3, 4]])}, "outside the indexed database"),
            ("flt.npz", {"item_ids": np.array([[3.0, 5.0]])}, "expected integer (pairs, 2)"),
            ("ver.npz", {"item_ids": np.array([[3, 5]]), "verified": np.array([True, True])}, "`verified` has shape"),
            ("none.npz", {"pairs": np.array([[0, 1]])}, "no `item_ids`")]:
        save_npz(tmp_path / name, {"dataset": BENCH}, **arrays)
        with pytest.raises(PseudosupError, match=re.escape(f"{tmp_path / name}: ") + ".*" + re.escape(text)):
            database_pairs(tmp_path / name, db)


def test_online_pairs_leave_out_the_queries_own_pairs():
    from types import SimpleNamespace

    from pseudosup.methods.cie_task import online_pairs

    pairs = np.array([[0, 1], [2, 3], [1, 4], [4, 5]])
    # queries at database positions 1 and 5 (instance protocol), or outside the database (-1)
    np.testing.assert_array_equal(online_pairs(SimpleNamespace(query_pos=np.array([1, 5])), pairs), [[2, 3]])
    np.testing.assert_array_equal(online_pairs(SimpleNamespace(query_pos=np.array([-1, -1])), pairs), pairs)
