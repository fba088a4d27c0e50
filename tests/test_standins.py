"""Stand-ins (src/pseudosup/data/standin.py) and the paper experiments of params.yaml:
the manifest's contract and its errors, the counts each reader takes, the params file
that runs experiments on stand-ins, what `everything` leaves out and why, and the
splits the pipeline draws."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pseudosup.data import registry, splits, standin
from pseudosup.data.splits import PROTOCOL_INFO
from pseudosup.io import PseudosupError
from pseudosup.params import load
from pseudosup.workflow import Plan

from .conftest import ROOT

PAPER = ["ldph-sift1m", "ldph-gist1m", "ldph-cifar10", "ldph-nuswide", "dsrh-nuswide", "dsrh-mirflickr", "cie-holidays",
         "cie-holidays-rotated", "cie-oxford5k", "cie-paris6k", "cie-ukbench"]


def write_manifest(root: Path, dataset: str, files: dict, counts: dict | None = None) -> Path:
    doc = {"dataset": dataset, "description": "test", "files": files}
    if counts is not None:
        doc["counts"] = counts
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{dataset}.json").write_text(json.dumps(doc))
    return root


def entry(name: str, size: int = 10) -> dict:
    return {"url": f"http://127.0.0.1:1/{name}", "sha256": "0" * 64, "size": size}


def test_without_manifest_the_standin_is_unavailable_and_says_what_to_set(monkeypatch, tmp_path):
    monkeypatch.delenv(standin.ENV, raising=False)
    ok, why = registry.availability("standin-sift-1m")
    assert not ok and standin.ENV in why
    with pytest.raises(PseudosupError, match=standin.ENV):
        registry.get("standin-sift-1m")
    monkeypatch.setenv(standin.ENV, str(tmp_path))
    ok, why = registry.availability("standin-sift-1m")
    assert not ok and str(tmp_path / "sift-1m.json") in why


def test_manifest_replaces_urls_and_checksums_and_sizes_the_reader(monkeypatch, tmp_path):
    write_manifest(tmp_path, "sift-1m", {"sift.tar.gz": entry("sift.tar.gz", 1234)},
                   {"base": 30, "query": 5, "learn": 7})
    monkeypatch.setenv(standin.ENV, str(tmp_path))
    ds = registry.get("standin-sift-1m")
    assert ds.name == "standin-sift-1m" and ds.description.startswith("STAND-IN of sift-1m")
    (f,) = ds.files
    assert f.urls == ("http://127.0.0.1:1/sift.tar.gz",) and f.sha256 == "0" * 64 and f.size == 1234
    assert f.md5 is None and f.sha512 is None          # the real archive's digests are gone
    sizes = {m.name: m.size for m in f.members}
    assert sizes["sift_base.fvecs"] == 30 * (4 + 4 * 128)
    assert sizes["sift_groundtruth.ivecs"] == 5 * (4 + 4 * 100)
    assert ds.counts == {"base": 30, "query": 5, "learn": 7, "groundtruth": 5}
    assert registry.get("sift-1m").counts["base"] == 1_000_000   # the real entry is untouched
    assert registry.uses("standin-sift-1m") == ["standin-sift-1m", "sift-1m"]


@pytest.mark.parametrize("files, counts, match", [
    ({}, None, "lacks 'sift.tar.gz'"),
    ({"sift.tar.gz": {"url": "http://x/sift.tar.gz", "size": 3}}, None, r"lacks \['sha256'\]"),
    ({"sift.tar.gz": entry("sift.tar.gz")}, {"bass": 3}, r"unknown counts \['bass'\]"),
])
def test_bad_manifests_are_refused_by_name(monkeypatch, tmp_path, files, counts, match):
    write_manifest(tmp_path, "sift-1m", files, counts)
    monkeypatch.setenv(standin.ENV, str(tmp_path))
    with pytest.raises(PseudosupError, match=match):
        registry.get("standin-sift-1m")


def test_manifest_of_another_dataset_or_not_json_is_refused(monkeypatch, tmp_path):
    write_manifest(tmp_path, "gist-1m", {})
    (tmp_path / "sift-1m.json").write_text(json.dumps({"dataset": "gist-1m", "description": "", "files": {}}))
    (tmp_path / "ukbench.json").write_text("{not json")
    monkeypatch.setenv(standin.ENV, str(tmp_path))
    with pytest.raises(PseudosupError, match="manifest of 'gist-1m', not of 'sift-1m'"):
        registry.get("standin-sift-1m")
    with pytest.raises(PseudosupError, match="not valid JSON"):
        registry.get("standin-ukbench")


def test_readers_take_their_own_counts(monkeypatch, tmp_path):
    write_manifest(tmp_path, "holidays", {"jpg1.tar.gz": entry("a"), "jpg2.tar.gz": entry("b")},
                   {"images": 36, "groups": 12})
    write_manifest(tmp_path, "oxford5k", {"oxbuild_images-v1.tgz": entry("a"), "gnd_oxford5k.pkl": entry("b")},
                   {"database": 30, "queries": 3})
    write_manifest(tmp_path, "cifar-10", {"cifar-10-python.tar.gz": entry("a")}, {"per_batch": 100})
    write_manifest(tmp_path, "ukbench", {"ukbench.zip": entry("a")}, {"groups": 3})
    monkeypatch.setenv(standin.ENV, str(tmp_path))
    h = registry.get("standin-holidays")
    assert (h.expected_images, h.expected_groups) == (36, 12)
    assert registry.get("standin-oxford5k").expected == (30, 3)
    assert registry.get("standin-cifar-10").per_batch == 100
    with pytest.raises(PseudosupError, match=r"unknown counts \['groups'\] \(it has: \['images'\]\)"):
        registry.get("standin-ukbench")


def test_protocol_counts_a_standin_may_scale_are_the_protocols_own(monkeypatch, tmp_path):
    assert splits.protocol_counts("nuswide21-q2100") == ["top", "per_query", "per_train", "map_at"]
    assert splits.protocol_counts("cifar10-q1k") == ["per_query", "per_train"]
    assert splits.protocol_counts("sift1m-ldph-k100") == []
    assert splits.protocol_counts("gist1m-ldph-k100") == ["train"]
    doc = {"dataset": "sift-1m", "description": "test", "files": {"sift.tar.gz": entry("sift.tar.gz")},
           "counts": {"base": 30, "query": 5, "learn": 7}, "protocol": {"per_query": 2}}
    (tmp_path / "sift-1m.json").write_text(json.dumps(doc))
    monkeypatch.setenv(standin.ENV, str(tmp_path))
    # refused before any data is read, naming the manifest, the count and what the protocol takes
    with pytest.raises(PseudosupError, match=r"sift-1m.json: protocol: protocol 'sift1m-ldph-k100' takes no "
                                             r"counts \['per_query'\] \(it takes: none\)"):
        standin.draw_split("sift1m-ldph-k100", "standin-sift-1m", None, 0)


def test_a_local_only_dataset_has_no_standin(monkeypatch, tmp_path):
    write_manifest(tmp_path, "scene", {})
    monkeypatch.setenv(standin.ENV, str(tmp_path))
    with pytest.raises(PseudosupError, match="not downloaded"):
        registry.get("standin-scene")


# --- the params file of a stand-in run ----------------------------------------------------------

def test_params_for_keeps_each_definition_and_only_renames_its_data():
    params = load(ROOT / "params.yaml")
    out = standin.params_for(params, ["ldph-sift1m", "cie-oxford5k"], ROOT)
    assert out["targets"] == ["ldph-sift1m", "cie-oxford5k"] and set(out["experiments"]) == set(out["targets"])
    for name, exp in out["experiments"].items():
        real = params["experiments"][name]
        assert exp["dataset"] == "standin-" + real["dataset"]
        assert exp.get("split") == (real["split"] and "standin-" + real["split"])
        # numbers published for the real dataset are dropped: they say nothing about a stand-in
        assert "published" not in exp
        assert {k: v for k, v in exp.items() if k not in ("dataset", "split")} == \
               {k: v for k, v in real.items() if k not in ("dataset", "split", "published")}
    assert params["experiments"]["ldph-sift1m"]["published"]
    weights = out["features"]["mnv2-gem"]["weights"]
    assert Path(weights).is_absolute() and Path(weights) == (ROOT / params["features"]["mnv2-gem"]["weights"]).resolve()
    short = standin.params_for(params, ["ldph-sift1m"], ROOT, bits="shortest")
    assert short["experiments"]["ldph-sift1m"]["bits"] == [16]


def test_params_for_refuses_what_a_standin_cannot_redraw():
    params = load(ROOT / "params.yaml")
    with pytest.raises(PseudosupError, match="unknown experiment"):
        standin.params_for(params, ["no-such"], ROOT)
    params["experiments"]["mine"] = {**params["experiments"]["ldph-sift1m"], "split": "my-own"}
    with pytest.raises(PseudosupError, match="'my-own' is not a named protocol"):
        standin.params_for(params, ["mine"], ROOT)


def test_the_written_params_file_is_valid_and_names_standin_splits(tmp_path):
    import yaml

    from pseudosup.params import validate

    from .conftest import run_cli
    out = tmp_path / "standins.yaml"
    run_cli("standin-params", "--out", str(out), "--bits", "shortest", *PAPER)
    doc = yaml.safe_load(out.read_text())
    validate(doc, ROOT / "standins.yaml")   # as Snakemake would, inside the project (schema, splits)
    assert doc["experiments"]["ldph-sift1m"]["split"] == "standin-sift1m-ldph-k100"
    assert doc["experiments"]["cie-oxford5k"]["dataset"] == "standin-oxford5k"
    assert out.read_text().startswith("# written by `pseudosup standin-params`")


# --- the paper experiments and `everything` -----------------------------------------------------

def test_every_seed_table_has_an_experiment():
    params = load(ROOT / "params.yaml")
    datasets = {params["experiments"][e]["dataset"] for e in PAPER}
    assert {"sift-1m", "gist-1m", "cifar-10", "nus-wide", "nus-wide-lowlevel", "holidays", "holidays-rotated",
            "oxford5k", "paris6k", "ukbench", "mirflickr-25k"} <= datasets
    for e in ("ldph-sift1m", "ldph-gist1m", "ldph-cifar10", "ldph-nuswide"):
        exp = params["experiments"][e]
        assert exp["bits"] == [16, 32, 64, 128]
        assert {"lsh", "pcah", "itq", "sh", "ldph-lsh", "ldph-pcah", "ldph-itq", "ldph-sh", "ldph_nn-itq"} == \
               set(exp["methods"])
    for e in ("dsrh-nuswide", "dsrh-mirflickr"):
        assert params["experiments"][e]["bits"] == [16, 32, 48, 64] and "dsrh" in params["experiments"][e]["methods"]
    for e in PAPER:
        split = params["experiments"][e].get("split")
        assert split is None or split in PROTOCOL_INFO   # so stand-ins can redraw it


def _plan(params: dict, monkeypatch, cwd: Path) -> Plan:
    monkeypatch.chdir(cwd)
    (cwd / "data" / "splits").mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "data" / "splits").iterdir():
        (cwd / "data" / "splits" / f.name).write_bytes(f.read_bytes())
    return Plan(params)


def test_everything_leaves_out_what_must_be_downloaded_and_says_how(monkeypatch, tmp_path):
    monkeypatch.delenv("PSEUDOSUP_MIRROR", raising=False)
    params = load(ROOT / "params.yaml")
    params["paths"]["mirror"] = None
    plan = _plan(params, monkeypatch, tmp_path)
    why = plan.not_here()["ldph-sift1m"]
    assert "sift.tar.gz to download" in why and "snakemake --cores N ldph-sift1m" in why and "download: true" in why
    assert "ldph-sift1m" not in plan.available()
    # params `download: true`: everything fetches it
    assert "ldph-sift1m" in _plan({**params, "download": True}, monkeypatch, tmp_path).available()
    # a mirror holding the archive (or its extracted members) counts as here
    mirror = tmp_path / "mirror"
    (mirror / "sift-1m").mkdir(parents=True)
    for m in registry.get("sift-1m").files[0].members:
        (mirror / "sift-1m" / m.name).write_bytes(b"")
    params["paths"]["mirror"] = str(mirror)
    assert "ldph-sift1m" in _plan(params, monkeypatch, tmp_path).available()
    # so does a raw directory the download stage made
    params["paths"]["mirror"] = None
    (tmp_path / "data" / "raw" / "gist-1m").mkdir(parents=True)
    assert "ldph-gist1m" in _plan(params, monkeypatch, tmp_path).available()


def test_splits_drawn_from_the_data_get_a_rule_committed_ones_never(monkeypatch, tmp_path):
    params = load(ROOT / "params.yaml")
    plan = _plan(params, monkeypatch, tmp_path)
    drawn = plan.drawn_splits()
    assert drawn["cifar10-q1k"] == ("cifar10-q1k", "cifar-10")
    assert drawn["nuswide21-q2100"] == ("nuswide21-q2100", "nus-wide")
    committed = {p.stem for p in (tmp_path / "data" / "splits").glob("*.json")}
    assert "sift1m-ldph-k100" in committed and not committed & set(drawn)
    out = standin.params_for(params, ["ldph-sift1m"], ROOT)
    assert _plan(out, monkeypatch, tmp_path).drawn_splits() == {
        "standin-sift1m-ldph-k100": ("sift1m-ldph-k100", "standin-sift-1m")}


# --- every paper experiment end to end, on tiny stand-ins served from this machine -----------------

@pytest.fixture(scope="module")
def standin_run(tmp_path_factory):
    """Builds the tiny stand-ins (tests/standin_fixtures.py), serves them over HTTP and
    FTP on 127.0.0.1, writes the params file of every paper experiment on them (its
    shortest code length) and runs Snakemake on it from an empty data/ directory."""
    import os
    import time

    from . import standin_fixtures as F
    from .conftest import SHARED, copy_project, run_cli, snakemake
    from .servers import FTPFileServer, HTTPFileServer

    if not SHARED.is_dir():
        pytest.skip(f"the stand-ins are built from the real data in {SHARED}")
    base = tmp_path_factory.mktemp("standins")
    manifests = {name: F.build(name, base / "files", SHARED) for name in F.BUILDERS}
    (base / "ftp").mkdir()
    project = copy_project(base / "p")
    with HTTPFileServer() as http, FTPFileServer(base / "ftp") as ftp:
        F.serve(manifests, http, ftp, base / "manifests")
        os.environ[standin.ENV] = str(base / "manifests")
        try:
            run_cli("standin-params", "--params", str(ROOT / "params.yaml"), "--out", str(project / "standins.yaml"),
                    "--bits", "shortest", *PAPER)
            t0 = time.time()
            proc = snakemake(project, "--cores", "2", "--configfile", "standins.yaml", timeout=1500)
            seconds = time.time() - t0
            again = snakemake(project, "--cores", "2", "--configfile", "standins.yaml", "--dry-run")
        finally:
            del os.environ[standin.ENV]
        requests = list(http.requests) + [{"path": r["path"], "ftp": True} for r in ftp.requests]
    return {"project": project, "proc": proc, "again": again, "seconds": seconds, "requests": requests,
            "manifests": manifests}


@pytest.mark.slow
@pytest.mark.shared_data
def test_every_paper_experiment_runs_end_to_end_on_its_standin(standin_run):
    project = standin_run["project"]
    params = load(ROOT / "params.yaml")
    for e in PAPER:
        doc = json.loads((project / "results" / "metrics" / f"{e}.json").read_text())
        assert doc["dataset"] == "standin-" + params["experiments"][e]["dataset"]
        values = [v for row in doc["results"].values() for v in (row.values() if isinstance(row, dict) else [row])]
        assert values, e
    # UKBench's table carries its protocol's own score beside mAP
    assert "| cie-ukbench mAP | N-S score | bytes/image |" in (project / "results/tables/cie-ukbench-retrieval.md").read_text()
    print(f"\nall {len(PAPER)} paper experiments on tiny stand-ins: {standin_run['seconds']:.0f} s")
    # every stand-in file came over the wire through the real download code (TEXMEX over FTP);
    # the FTP server logs a file's name, the HTTP server its path below the root
    fetched = {r["path"].rsplit("/", 1)[-1] for r in standin_run["requests"]}
    wanted = {f for m in standin_run["manifests"].values() for f in m["files"]}
    assert wanted <= fetched, sorted(wanted - fetched)
    assert "Nothing to be done" in standin_run["again"].stdout + standin_run["again"].stderr


@pytest.mark.slow
@pytest.mark.shared_data
def test_standin_results_say_what_they_are(standin_run):
    project = standin_run["project"]
    for split in (project / "data" / "splits").glob("standin-*.json"):
        doc = json.loads(split.read_text())
        assert doc["dataset"].startswith("standin-") and doc["description"].startswith("STAND-IN data")
        scaled = standin_run["manifests"][doc["dataset"][len("standin-"):]].get("protocol")
        if scaled:
            assert doc["extra"]["standin_protocol_counts"] == scaled and "SCALED" in doc["description"]
    manifest = json.loads((project / "data" / "raw" / "standin-sift-1m" / "MANIFEST.json").read_text())
    assert manifest["dataset"] == "standin-sift-1m"
