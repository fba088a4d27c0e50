"""Provenance travels with the data, and every stage checks its inputs before any work.

Each bad input ends with one line naming the file (and the values that disagree), exit
code 2 and no output that looks complete. Feature files are written here by hand, the
way the features stage writes them (float32 .npy + sidecar with the .npy's sha256), so
that the checks, not the writer, are under test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from .conftest import ROOT, run_cli

SPLITS = ROOT / "data" / "splits"
TINY = SPLITS / "fmnist-tiny.json"      # queries are test images 60000.., database 0..
CIFAR = SPLITS / "cifar10-test-q1k.json"
N = 70_000                              # Fashion-MNIST items (60k train + 10k test)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_features(path, X, dataset="fashion-mnist", feature=None, n=None, sidecar=True, **meta):
    """A features file as `pseudosup features` writes it; keyword overrides fake a sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(X, dtype=np.float32))
    n = len(X) if n is None else n
    side = {"dataset": dataset, "feature": feature or path.stem, "n": n, "dim": int(X.shape[1]),
            "items": {"dataset": dataset, "count": n, "range": [0, n]}, "sha256": sha256(path), **meta}
    if sidecar:
        path.with_suffix(".json").write_text(json.dumps(side))
    return path


def features_of(tmp_path, rows=N, name="f8", seed=0):
    X = np.random.default_rng(seed).standard_normal((rows, 8)).astype(np.float32)
    return X, tmp_path / "data" / "features" / "fashion-mnist" / f"{name}.npy"


def evaluate(raw, features, out, *extra, split=TINY, model=None, env=None):
    src = ["--model", str(model)] if model else ["--euclidean"]
    return run_cli("evaluate", "--params", str(ROOT / "params.yaml"), "--keys", "evaluation", *src,
                   "--dataset", "fashion-mnist", "--raw", str(raw), "--features", str(features),
                   "--split", str(split), "--out", str(out), *extra, check=False, env=env)


def refused(proc, out, *words):
    """Exit 2, one error line naming `words` (the rest of stderr is the log), no traceback,
    and no output written."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, proc.stderr
    for w in words:
        assert str(w) in errors[0], (w, errors[0])
    assert not out.exists()
    return errors[0]


def flip_byte(path, offset=-5):
    """Change one byte, keeping size and mtime (what Snakemake and DVC look at)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


# --- evaluate: every input checked before any scoring -----------------------------------------

def test_good_features_are_scored_and_the_run_records_its_provenance(fmnist_raw, tmp_path):
    X, path = features_of(tmp_path)
    write_features(path, X)
    out = tmp_path / "run.json"
    proc = evaluate(fmnist_raw, path, out, env={"MKL_CBWR": "COMPATIBLE"})
    assert proc.returncode == 0, proc.stderr
    run = json.loads(out.read_text())
    assert run["dataset"] == "fashion-mnist" and run["split"] == "fmnist-tiny" and run["feature"] == "f8"
    assert run["split_sha256"] == sha256(TINY) and run["tie_rule"] == "expected"
    assert run["inputs"][str(path)] == sha256(path) and run["inputs"][str(TINY)] == sha256(TINY)
    assert run["inputs"][str(fmnist_raw / "MANIFEST.json")] == sha256(fmnist_raw / "MANIFEST.json")
    m = run["machine"]
    assert m["env"]["MKL_CBWR"] == "COMPATIBLE" and m["env"]["ATEN_CPU_CAPABILITY"] == os.environ.get("ATEN_CPU_CAPABILITY")
    assert m["versions"]["numpy"] == np.__version__ and m["versions"]["torch"] and m["versions"]["faiss"]
    assert m["threads"]["OMP_NUM_THREADS"] == "1" and m["cpu"]
    assert m["torch_cpu_capability"] == "not loaded by this stage"  # Euclidean scoring needs no torch


def test_split_of_another_dataset_is_refused(fmnist_raw, tmp_path):
    """Was: a CIFAR-10 split scored Fashion-MNIST features (mAP 0.3135, exit 0)."""
    X, path = features_of(tmp_path)
    write_features(path, X)
    out = tmp_path / "run.json"
    refused(evaluate(fmnist_raw, path, out, split=CIFAR), out, CIFAR, "cifar10-test-jpg", "fashion-mnist")


def test_fewer_rows_than_the_split_needs_is_refused(fmnist_raw, tmp_path):
    """Was: an IndexError traceback (the queries are test images 60000..)."""
    X, path = features_of(tmp_path, rows=60_000)
    write_features(path, X)
    out = tmp_path / "run.json"
    refused(evaluate(fmnist_raw, path, out), out, TINY, "part 'queries'", "60000 rows")


def test_more_rows_than_the_dataset_has_items_is_refused(fmnist_raw, tmp_path):
    X, path = features_of(tmp_path, rows=N + 1)
    write_features(path, X)
    out = tmp_path / "run.json"
    refused(evaluate(fmnist_raw, path, out), out, path, f"{N + 1} rows", f"{N} items")


def test_nan_query_row_is_refused(fmnist_raw, tmp_path):
    X, path = features_of(tmp_path)
    q = json.loads(TINY.read_text())["parts"]["queries"]["indices"][3]
    X[q, 2] = np.nan
    write_features(path, X)
    out = tmp_path / "run.json"
    refused(evaluate(fmnist_raw, path, out), out, path, f"row {q}", "NaN")


@pytest.mark.parametrize("meta, words", [
    ({"dataset": "cifar10-test-jpg"}, ["features of dataset 'cifar10-test-jpg'", "not 'fashion-mnist'"]),
    ({"feature": "cnn-small"}, ["feature 'cnn-small'", "the file's place says 'f8'"]),
])
def test_sidecar_naming_another_dataset_or_feature_is_refused(fmnist_raw, tmp_path, meta, words):
    X, path = features_of(tmp_path)
    if "dataset" in meta:  # a consistent sidecar of another dataset's features
        meta = {**meta, "items": {"dataset": meta["dataset"], "count": N, "range": [0, N]}}
    write_features(path, X, **meta)
    out = tmp_path / "run.json"
    refused(evaluate(fmnist_raw, path, out), out, path, *words)


def test_features_without_sidecar_are_refused(fmnist_raw, tmp_path):
    X, path = features_of(tmp_path)
    write_features(path, X, sidecar=False)
    out = tmp_path / "run.json"
    refused(evaluate(fmnist_raw, path, out), out, path, "no sidecar f8.json")


def test_one_flipped_byte_is_caught_though_size_and_mtime_are_unchanged(fmnist_raw, tmp_path):
    """Snakemake and DVC see the same size and mtime; the stage sees the sha256."""
    X, path = features_of(tmp_path)
    write_features(path, X)
    flip_byte(path)
    out = tmp_path / "run.json"
    err = refused(evaluate(fmnist_raw, path, out), out, path, "content hash differs from its sidecar")
    assert f"snakemake {path}" in err


# --- the same checks in the other stages --------------------------------------------------------

def train(features, out, split=TINY, raw=None):
    return run_cli("train", "--params", str(ROOT / "params.yaml"), "--keys", "seed", "methods.itq",
                   "--method", "itq", "--bits", "8", "--features", str(features), "--split", str(split),
                   "--dataset", "fashion-mnist", *(["--raw", str(raw)] if raw else []), "--out", str(out),
                   check=False)


def test_train_refuses_a_split_of_another_dataset_and_flipped_features(tmp_path):
    X, path = features_of(tmp_path)
    write_features(path, X)
    out = tmp_path / "m.npz"
    refused(train(path, out, split=CIFAR), out, CIFAR, "cifar10-test-jpg")
    flip_byte(path)
    refused(train(path, out), out, path, "content hash differs")


def test_model_is_evaluated_only_with_the_features_and_split_it_was_trained_on(fmnist_raw, tmp_path):
    X, path = features_of(tmp_path / "a")
    write_features(path, X)
    model = tmp_path / "m.npz"
    assert train(path, model).returncode == 0
    meta = json.loads(str(np.load(model)["meta"]))
    assert meta["inputs"][str(path)] == sha256(path) and meta["split_sha256"] == sha256(TINY)
    assert meta["dataset"] == "fashion-mnist" and meta["machine"]["cpu"]
    out = tmp_path / "run.json"
    assert evaluate(fmnist_raw, path, out, model=model).returncode == 0
    assert json.loads(out.read_text())["inputs"][str(model)] == sha256(model)
    out.unlink()
    # same feature name and dataset, other contents: the model is stale
    Xb, other = features_of(tmp_path / "b", seed=1)
    write_features(other, Xb)
    refused(evaluate(fmnist_raw, other, out, model=model), out, model, "other contents", other)
    # another split file of the dataset than the one it was trained on
    refused(evaluate(fmnist_raw, path, out, model=model, split=SPLITS / "fmnist-q1k.json"), out, model,
            "trained on split 'fmnist-tiny'")
    # a model file with one byte changed fails its zip CRC
    flip_byte(model, offset=200)
    refused(evaluate(fmnist_raw, path, out, model=model), out, model, "not a readable .npz")


def test_mine_refuses_flipped_features_and_records_provenance(fmnist_raw, tmp_path):
    X, path = features_of(tmp_path)
    write_features(path, X)
    out, stats = tmp_path / "pairs.npz", tmp_path / "stats.json"
    args = ["mine", "--params", str(ROOT / "params.yaml"), "--keys", "mining", "--dataset", "fashion-mnist",
            "--raw", str(fmnist_raw), "--features", str(path), "--split", str(TINY), "--out", str(out),
            "--stats", str(stats)]
    assert run_cli(*args, check=False).returncode == 0
    s = json.loads(stats.read_text())
    assert (s["dataset"], s["split"], s["split_sha256"]) == ("fashion-mnist", "fmnist-tiny", sha256(TINY))
    assert s["inputs"][str(path)] == sha256(path) and s["machine"]["versions"]["faiss"]
    out.unlink()
    stats.unlink()
    flip_byte(path)
    refused(run_cli(*args, check=False), out, path, "content hash differs")
    assert not stats.exists()


# --- writing: hash in the sidecar, nothing complete-looking on failure -------------------------------

def test_save_array_records_the_hash_and_an_interrupted_write_leaves_no_array(tmp_path, monkeypatch):
    from pseudosup import io

    path = tmp_path / "x.npy"
    io.save_array(path, np.ones((3, 2), np.float32), {"feature": "x"})
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == sha256(path)

    rename = os.replace

    def killed_before_the_array_is_renamed(src, dst):
        if str(dst).endswith(".npy"):
            raise KeyboardInterrupt
        return rename(src, dst)
    new = tmp_path / "y.npy"
    monkeypatch.setattr(io.os, "replace", killed_before_the_array_is_renamed)
    with pytest.raises(KeyboardInterrupt):
        io.save_array(new, np.zeros((3, 2), np.float32), {"feature": "y"})
    assert not new.exists() and not list(tmp_path.glob("y.npy.tmp-*"))
    # the sidecar is written before the rename: the array of an earlier run no longer matches it
    monkeypatch.undo()
    io.save_array(new, np.zeros((3, 2), np.float32), {"feature": "y"})
    monkeypatch.setattr(io.os, "replace", killed_before_the_array_is_renamed)
    with pytest.raises(KeyboardInterrupt):
        io.save_array(new, np.ones((3, 2), np.float32), {"feature": "y"})
    monkeypatch.undo()
    with pytest.raises(io.PseudosupError, match="y.npy: content hash differs from its sidecar"):
        io.load_array(new)


def test_a_changed_backbone_checkpoint_is_refused_by_the_features_stage(fmnist_raw, tmp_path):
    import torch

    from pseudosup.features.smallcnn import SmallCNN
    from pseudosup.provenance import state_sha256

    model = SmallCNN(1, 4, 8, 10)
    meta = {"kind": "small-cnn", "dataset": "fashion-mnist", "in_channels": 1, "n_classes": 10,
            "config": {"width": 4, "dim": 8}, "split": "fmnist-tiny", "part": "pretrain", "code_version": "t",
            "state_sha256": state_sha256(model.state_dict())}
    with torch.no_grad():
        next(model.parameters())[0].add_(1.0)  # the weights change after the hash was recorded
    ckpt = tmp_path / "backbone.pt"
    torch.save({"meta": meta, "state_dict": model.state_dict()}, ckpt)
    params = tmp_path / "p" / "params.yaml"
    shutil.copytree(ROOT / "workflow" / "schemas", tmp_path / "p" / "workflow" / "schemas")
    params.write_text("seed: 0\ntargets: []\nfeatures:\n  cnn-small: {extractor: small-cnn, batch_size: 1024,\n"
                      "    pretrain: {split: fmnist-tiny, part: pretrain, epochs: 1, batch_size: 100, width: 4, dim: 8}}\n")
    out = tmp_path / "data" / "features" / "fashion-mnist" / "cnn-small.npy"
    proc = run_cli("features", "--params", str(params), "--keys", "seed", "features.cnn-small", "--dataset",
                   "fashion-mnist", "--raw", str(fmnist_raw), "--feature", "cnn-small", "--backbone", str(ckpt),
                   "--out", str(out), check=False)
    refused(proc, out, ckpt, "its weights differ")


# --- item ids in the sidecar -----------------------------------------------------------------

def test_items_record_positions_ids_and_only_the_hash_of_many_ids(monkeypatch):
    from pseudosup import provenance as P

    assert P.items_record("fashion-mnist", 5) == {"dataset": "fashion-mnist", "count": 5, "range": [0, 5]}
    assert P.items_record("x", 3, ["0", "1", "2"])["range"] == [0, 3]  # ArrayImages' default ids
    rec = P.items_record("folder-x", 3, ["b.jpg", "a.jpg", "c.jpg"])
    assert rec["ids"] == ["b.jpg", "a.jpg", "c.jpg"]
    assert rec["ids_sha256"] == hashlib.sha256(b"b.jpg\na.jpg\nc.jpg").hexdigest()
    monkeypatch.setattr(P, "INLINE_IDS", 2)
    assert "ids" not in P.items_record("folder-x", 3, ["b.jpg", "a.jpg", "c.jpg"])


def test_features_stage_writes_items_hash_inputs_and_machine(tmp_path):
    from pseudosup.cli import main
    from pseudosup.data import registry

    images = np.random.default_rng(0).integers(0, 255, (4, 6, 6), dtype=np.uint8)
    ids = ["cat/1.png", "cat/0.png", "dog/7.png", "dog/2.png"]

    class Folder(registry.Dataset):
        def images(self, raw):
            return images

        def image_source(self, raw):
            return registry.ArrayImages(images, ids)

    registry.register("provenance-test-folder")(lambda: Folder(
        name="provenance-test-folder", kind="images", description="test", homepage="-", license="-"))
    shutil.copytree(ROOT / "workflow" / "schemas", tmp_path / "workflow" / "schemas")
    (tmp_path / "params.yaml").write_text("seed: 0\ntargets: []\nfeatures:\n  pixels: {extractor: pixels}\n")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "MANIFEST.json").write_text("{}")
    out = tmp_path / "pixels.npy"
    assert main(["features", "--params", str(tmp_path / "params.yaml"), "--keys", "seed", "features.pixels",
                 "--dataset", "provenance-test-folder", "--raw", str(raw), "--feature", "pixels",
                 "--out", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["sha256"] == sha256(out) and meta["n"] == 4
    assert meta["items"] == {"dataset": "provenance-test-folder", "count": 4,
                             "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(), "ids": ids}
    assert meta["inputs"] == {str(raw / "MANIFEST.json"): sha256(raw / "MANIFEST.json")}
    assert set(meta["machine"]) >= {"cpu", "torch_cpu_capability", "env", "threads", "versions"}


# --- report and plot: split, dataset and tie rule come from the runs ----------------------------------

def run_file(path, feature="pixels", method="itq", bits=16, **over):
    run = {"dataset": "fashion-mnist", "split": "fmnist-q1k", "split_sha256": sha256(SPLITS / "fmnist-q1k.json"),
           "relevance": "class", "feature": feature, "tie_rule": "expected", "queries": 1000, "database": 60000,
           "method": method, "bits": bits, "map": 0.4, "precision_at_k": 0.5, "k": 500,
           "pr_curve": {"precision": [1.0], "recall": [0.0]}, "precision_curve": {"n": [1], "precision": [1.0]},
           **over}
    path.write_text(json.dumps(run))
    return path


def report(tmp_path, runs, mining=()):
    return run_cli("report", "--params", str(ROOT / "params.yaml"), "--keys", "experiments.demo",
                   "--experiment", "demo", "--runs", *map(str, runs), "--mining", *map(str, mining),
                   "--metrics", str(tmp_path / "m.json"), "--table", str(tmp_path / "t.md"), check=False)


def test_report_takes_the_split_from_the_runs(tmp_path):
    runs = [run_file(tmp_path / "a.json"), run_file(tmp_path / "b.json", bits=32)]
    assert report(tmp_path, runs).returncode == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert (m["dataset"], m["split"], m["tie_rule"]) == ("fashion-mnist", "fmnist-q1k", "expected")
    assert "fmnist-q1k" in (tmp_path / "t.md").read_text()


@pytest.mark.parametrize("over, words", [
    # params say fmnist-q1k (experiments.demo.split): runs of another split are stale, never relabelled
    ({"split": "fmnist-tiny", "split_sha256": sha256(TINY)}, ["split 'fmnist-tiny'", "'fmnist-q1k'"]),
    ({"dataset": "cifar10-test-jpg"}, ["dataset 'cifar10-test-jpg'", "'fashion-mnist'"]),
])
def test_report_refuses_runs_that_disagree_with_params(tmp_path, over, words):
    runs = [run_file(tmp_path / "a.json", **over), run_file(tmp_path / "b.json", bits=32, **over)]
    refused(report(tmp_path, runs), tmp_path / "m.json", tmp_path / "a.json", *words)
    assert not (tmp_path / "t.md").exists()


@pytest.mark.parametrize("over, words", [
    ({"split_sha256": "0" * 64}, ["split_sha256", "0" * 64]),
    ({"tie_rule": "index"}, ["tie_rule 'index'", "'expected'"]),
])
def test_report_and_plot_refuse_runs_that_disagree_with_each_other(tmp_path, over, words):
    runs = [run_file(tmp_path / "a.json"), run_file(tmp_path / "b.json", bits=32, **over)]
    refused(report(tmp_path, runs), tmp_path / "m.json", tmp_path / "b.json", *words)
    png = tmp_path / "map.png"
    proc = run_cli("plot", "--runs", *map(str, runs), "--map-vs-bits", str(png), check=False)
    refused(proc, png, tmp_path / "b.json", *words)


def test_report_refuses_mining_statistics_of_another_split(tmp_path):
    runs = [run_file(tmp_path / "a.json")]
    stats = tmp_path / "mining.json"
    stats.write_text(json.dumps({"dataset": "fashion-mnist", "split": "fmnist-tiny", "split_sha256": sha256(TINY),
                                 "feature": "pixels", "num_pairs": 5, "coverage": 0.1, "pair_precision": 0.9}))
    refused(report(tmp_path, runs, [stats]), tmp_path / "m.json", stats, "fmnist-tiny", "fmnist-q1k")


# --- the machine record ------------------------------------------------------------------------

def test_machine_record_does_not_import_torch_and_reports_its_isa_once_loaded():
    code = ("import sys, json; from pseudosup.machine import machine; m = machine(); "
            "assert 'torch' not in sys.modules, 'imported torch'; "
            "import torch; m2 = machine(); "
            "assert m2['torch_cpu_capability'] == torch.backends.cpu.get_cpu_capability(); "
            "assert m2['threads']['torch'] == torch.get_num_threads(); print(json.dumps(m2))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "ATEN_CPU_CAPABILITY": "default"})
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)
    assert m["env"]["ATEN_CPU_CAPABILITY"] == "default" and m["torch_cpu_capability"] == "DEFAULT"
    with open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    if model is not None:  # x86 names its model there; elsewhere the platform's processor name is used
        assert m["cpu"] == model


# --- pseudosup verify: every recorded hash under data/ and models/ ---------------------------------

def test_verify_lists_every_file_that_changed_after_it_was_written(tmp_path, capsys):
    from types import SimpleNamespace

    import torch

    from pseudosup.commands import verify
    from pseudosup.io import save_array, save_npz
    from pseudosup.provenance import state_sha256

    feats = tmp_path / "data" / "features" / "ds"
    for name in ("good", "flipped"):
        save_array(feats / f"{name}.npy", np.arange(40, dtype=np.float32).reshape(10, 4), {"feature": name})
    flip_byte(feats / "flipped.npy")
    write_features(feats / "nosidecar.npy", np.zeros((3, 2)), sidecar=False)
    save_npz(tmp_path / "models" / "ok.npz", {"method": "itq"}, w=np.ones(100))
    save_npz(tmp_path / "models" / "bad.npz", {"method": "itq"}, w=np.ones(100))
    flip_byte(tmp_path / "models" / "bad.npz", offset=200)
    layer = torch.nn.Linear(3, 2)
    meta = {"state_sha256": state_sha256(layer.state_dict())}
    with torch.no_grad():
        layer.weight.add_(1.0)
    torch.save({"meta": meta, "state_dict": layer.state_dict()}, tmp_path / "models" / "backbone.pt")
    (tmp_path / "data" / "raw" / "ds").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "ds" / "x.npy").write_bytes(b"raw files are the download's business")

    assert verify.run(SimpleNamespace(paths=[tmp_path / "data", tmp_path / "models"])) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "6 files checked, 4 failed"
    failed = sorted(line.split(":")[0] for line in lines[:-1])
    assert failed == sorted(str(p) for p in (feats / "flipped.npy", feats / "nosidecar.npy",
                                             tmp_path / "models" / "bad.npz", tmp_path / "models" / "backbone.pt"))
    assert verify.run(SimpleNamespace(paths=[feats / "good.npy", tmp_path / "models" / "ok.npz", SPLITS])) == 0


def test_verify_refuses_a_path_that_does_not_exist(tmp_path):
    from types import SimpleNamespace

    from pseudosup.commands import verify
    from pseudosup.io import PseudosupError

    with pytest.raises(PseudosupError, match=r"missing: no such file or directory"):
        verify.run(SimpleNamespace(paths=[tmp_path / "missing"]))
