"""Your own images, end to end from docs/datasets.md alone, and the bad inputs a new
user meets on the way (one class, a split that does not exist, a key given twice, a
protocol of another dataset)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pseudosup.data.imagefolder import ImageFolder
from pseudosup.data.splits import load_split, read_sums, sha256_of

from .conftest import BIN, ROOT, SHARED, copy_project, run_cli

CIFAR_TAR = SHARED / "cifar10-test-jpg.tar"
USER_CLASSES = ("bird", "cat", "ship")
PER_CLASS = 70  # the docs draw 10 queries + 50 training images per class: 60 at least
MARKER = re.compile(r"<!-- own-images:(run|params) -->\s*```[a-z]*\n(.*?)```", re.S)


# --- helpers -------------------------------------------------------------------------------

def docs_steps() -> list[tuple[str, str]]:
    """The marked blocks of the docs' "Your own images" section, in order."""
    text = (ROOT / "docs/datasets.md").read_text()
    start = text.index("## Your own images\n")
    section = text[start:text.index("\n## ", start + 1)]
    return MARKER.findall(section)


def add_to_params(params: Path, snippet: str) -> None:
    """Add a YAML snippet of top-level sections to params.yaml as a user would: entries of a
    section that exists go under its line, new sections at the end (comments kept)."""
    text = params.read_text()
    for block in re.split(r"\n(?=\S)", snippet.strip("\n")):
        head, _, body = block.partition("\n")
        line = re.search(rf"^{re.escape(head)}[ \t]*$", text, re.M)
        if line:
            text = text[:line.end()] + "\n" + body.rstrip("\n") + text[line.end():]
        else:
            text = text.rstrip("\n") + "\n\n" + block.rstrip("\n") + "\n"
    params.write_text(text)


def shell(project: Path, script: str, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=project, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env})


def user_tar(dest: Path, classes=USER_CLASSES, per_class: int = PER_CLASS, top: str = "train/") -> Path:
    """Real CIFAR-10 test JPEGs re-laid out as a user's archive: <top>/<class>/<file>.jpg."""
    with tarfile.open(CIFAR_TAR) as src, tarfile.open(dest, "w") as out:
        names = sorted(n for n in src.getnames() if n.endswith(".jpg"))
        for cls in classes:
            for name in [n for n in names if n.startswith(f"test/{cls}/")][:per_class]:
                data = src.extractfile(name).read()
                info = tarfile.TarInfo(f"{top}{cls}/{name.rsplit('/', 1)[1]}")
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
    return dest


def png_tar(dest: Path, names: list[str]) -> Path:
    """A tar of small PNGs at `names` (layout tests: the pixels do not matter)."""
    rng = np.random.default_rng(0)
    with tarfile.open(dest, "w") as out:
        for name in names:
            data = cv2.imencode(".png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))[1].tobytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest


def small_project(tmp: Path, datasets: dict | None = None, experiments: dict | None = None) -> Path:
    """A params.yaml (the committed one plus `datasets`/`experiments`) next to the schema
    and a copy of the committed splits, for CLI runs."""
    (tmp / "workflow").symlink_to(ROOT / "workflow")
    shutil.copytree(ROOT / "data/splits", tmp / "data/splits")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"] = {**params.get("datasets", {}), **(datasets or {})}
    params["experiments"].update(experiments or {})
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp


def download(project: Path, dataset: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli("download", "--params", "params.yaml", "--keys", "paths", f"datasets.{dataset}", "--dataset",
                   dataset, "--out", f"data/raw/{dataset}", "--cache", "cache", cwd=project, check=check)


# --- the docs, word for word ---------------------------------------------------------------

needs_cifar = pytest.mark.skipif(not CIFAR_TAR.is_file(), reason=f"real images not found: {CIFAR_TAR} "
                                 "(../shared/data; set PSEUDOSUP_SHARED_DATA)")


def test_docs_mark_the_steps():
    kinds = [kind for kind, _ in docs_steps()]
    assert kinds == ["params", "run", "run", "params", "run"], kinds
    commands = [body.strip() for kind, body in docs_steps() if kind == "run"]
    assert commands[-1] == "snakemake --cores 2 mine"
    assert "$MY_IMAGES" in docs_steps()[0][1]


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    """A copy of the project where the docs' marked steps were followed in order. The
    only substitution: $MY_IMAGES (the user's tar) is an environment variable."""
    if not CIFAR_TAR.is_file():
        pytest.skip(f"real images not found: {CIFAR_TAR}")
    tmp = tmp_path_factory.mktemp("own")
    project = copy_project(tmp / "project")
    env = {"MY_IMAGES": str(user_tar(tmp / "my-photos.tar"))}
    runs = []
    for kind, body in docs_steps():
        if kind == "params":
            add_to_params(project / "params.yaml", body.replace("$MY_IMAGES", env["MY_IMAGES"]))
            continue
        t0 = time.time()
        runs.append((body.strip(), shell(project, body, env), time.time() - t0))
    return project, runs


@pytest.mark.slow
@needs_cifar
def test_docs_commands_make_the_split(followed):
    project, runs = followed
    for command, proc, _ in runs[:-1]:
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    path = project / "data/splits/mine-q10.json"
    assert read_sums(path.parent)["mine-q10.json"] == sha256_of(path)
    split = load_split(path)  # verifies the sha256 again
    assert split.dataset == "folder-mine" and split.extra["classes"] == list(USER_CLASSES)
    assert {k: len(v) for k, v in split.parts.items()} == {"queries": 30, "database": 180, "train": 150}
    manifest = json.loads((project / "data/raw/folder-mine/MANIFEST.json").read_text())
    assert manifest["images"]["classes"] == list(USER_CLASSES)  # not ["train"]
    ds = ImageFolder("folder-mine", "images", "", "", "")
    labels, raw = ds.labels(project / "data/raw/folder-mine"), project / "data/raw/folder-mine"
    assert np.array_equal(np.bincount(labels[split.part("queries")]), [10, 10, 10])
    assert np.array_equal(np.bincount(labels[split.part("train")]), [50, 50, 50])
    assert ds.item_ids(raw)[0] == "train/bird/0000.jpg" and len(ds.item_ids(raw)) == 210
    proc = run_cli("validate-params", cwd=project)
    assert "valid" in proc.stdout


@pytest.mark.slow
@needs_cifar
def test_docs_run_features_and_evaluation(followed):
    project, runs = followed
    command, proc, seconds = runs[-1]
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    feats = np.load(project / "data/features/folder-mine/pixels.npy")
    assert feats.shape == (210, 32 * 32 * 3)
    ceiling = json.loads((project / "results/runs/mine/pixels/euclidean.json").read_text())
    assert 1 / 3 < ceiling["map"] <= 1  # three balanced classes: chance is 1/3
    metrics = json.loads((project / "results/metrics/mine.json").read_text())
    assert set(metrics["results"]) == {"pixels", "gist512"}
    assert "mine-q10" in (project / "results/tables/mine.md").read_text()
    print(f"snakemake --cores 2 mine: {seconds:.0f} s")


# --- layout: a single top folder is unwrapped; one class is an error ------------------------

@pytest.mark.parametrize("as_tar", [True, False])
def test_single_top_folder_is_unwrapped(tmp_path, as_tar):
    tar = png_tar(tmp_path / "w.tar", [f"photos/train/{c}/{i}.png" for c in ("a", "b") for i in range(3)])
    if not as_tar:
        with tarfile.open(tar) as tf:
            tf.extractall(tmp_path / "dir", filter="data")
    images = tar if as_tar else tmp_path / "dir"
    project = small_project(tmp_path, {"folder-wrapped": {"images": str(images)}})
    download(project, "folder-wrapped")
    ds = ImageFolder("folder-wrapped", "images", "", "", "")
    raw = project / "data/raw/folder-wrapped"
    assert ds.class_names(raw) == ("a", "b")
    assert ds.labels(raw).tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.item_ids(raw)[0] == "photos/train/a/0.png"


def test_folders_of_class_folders_are_refused(tmp_path):
    """train/<class>/ beside val/<class>/: 'train' and 'val' must not become two classes."""
    names = [f"ds/{part}/{c}/{i}.png" for part in ("train", "val") for c in ("a", "b") for i in range(2)]
    project = small_project(tmp_path, {"folder-parts": {"images": str(png_tar(tmp_path / "p.tar", names))}})
    proc = download(project, "folder-parts", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "['train', 'val']" in proc.stderr and "so those are not classes" in proc.stderr
    assert not (project / "data/raw/folder-parts").exists()


@pytest.mark.parametrize("names, cls", [
    ([f"onlyclass/{i}.png" for i in range(4)], "onlyclass"),          # one class folder
    ([f"train/cat/{i}.png" for i in range(4)], "cat"),                 # unwrapped: still one class
])
def test_one_class_is_an_error(tmp_path, names, cls):
    project = small_project(tmp_path, {"folder-one": {"images": str(png_tar(tmp_path / "one.tar", names))}})
    proc = download(project, "folder-one", check=False)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"1 class ('{cls}')" in last and "at least 2" in last and "one.tar" in last
    assert not (project / "data/raw/folder-one").exists()


# --- make-split: the generic protocol, and protocols of other datasets ----------------------

@pytest.fixture
def folder_project(tmp_path):
    names = [f"{c}/{i:02d}.png" for c in ("x", "y", "z") for i in range(12)]
    project = small_project(tmp_path, {"folder-tiny": {"images": str(png_tar(tmp_path / "t.tar", names))}})
    download(project, "folder-tiny")
    return project


def test_per_class_split_from_options_and_from_params(folder_project):
    p = folder_project
    run_cli("make-split", "--dataset", "folder-tiny", "--protocol", "per-class", "--queries-per-class", "2",
            "--database-per-class", "8", "--train-per-class", "5", "--seed", "3", "--name", "tiny-q2", cwd=p)
    split = load_split(p / "data/splits/tiny-q2.json")
    assert {k: len(v) for k, v in split.parts.items()} == {"queries": 6, "database": 24, "train": 15}
    assert split.seed == 3 and split.extra["train_per_class"] == 5 and split.extra["classes"] == ["x", "y", "z"]
    assert np.isin(split.part("train"), split.part("database")).all()
    # the same counts under params `splits:` give the same bytes
    params = yaml.safe_load((p / "params.yaml").read_text())
    params["splits"] = {"tiny-q2": {"dataset": "folder-tiny", "queries_per_class": 2, "database_per_class": 8,
                                    "train_per_class": 5, "seed": 3}}
    (p / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = (p / "data/splits/tiny-q2.json").read_bytes()
    run_cli("make-split", "--name", "tiny-q2", cwd=p)
    assert (p / "data/splits/tiny-q2.json").read_bytes() == first


def test_per_class_names_a_class_with_too_few_images(folder_project):
    proc = run_cli("make-split", "--dataset", "folder-tiny", "--protocol", "per-class", "--queries-per-class", "2",
                   "--train-per-class", "50", "--name", "tiny-big", cwd=folder_project, check=False)
    assert proc.returncode == 2
    assert "class 'x' has 10 items left" in proc.stderr and "fewer than 50" in proc.stderr
    assert not (folder_project / "data/splits/tiny-big.json").exists()
    assert "tiny-big.json" not in (folder_project / "data/splits/SHA256SUMS").read_text()


@pytest.mark.parametrize("extra", [["--dataset", "folder-tiny"], ["--raw", "data/raw/folder-tiny"]])
def test_protocol_of_another_dataset_is_refused(folder_project, extra):
    sums = (folder_project / "data/splits/SHA256SUMS").read_bytes()
    proc = run_cli("make-split", "--protocol", "cifar10-test-q1k", *extra, "--out-dir", "out", cwd=folder_project,
                   check=False)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "protocol 'cifar10-test-q1k' draws a split of dataset 'cifar10-test-jpg', not of 'folder-tiny'" in last
    assert "--protocol per-class" in last  # what to do instead
    assert not (folder_project / "out").exists()
    assert (folder_project / "data/splits/SHA256SUMS").read_bytes() == sums


# --- validate-params -------------------------------------------------------------------------

FMNIST_EXP = {"dataset": "fashion-mnist", "features": ["pixels"], "methods": ["itq"]}


def validate(project: Path) -> subprocess.CompletedProcess:
    return run_cli("validate-params", "--params", "params.yaml", cwd=project, check=False)


def test_unknown_split_is_refused(tmp_path):
    project = small_project(tmp_path, experiments={"mine": {**FMNIST_EXP, "split": "mine-q10"}})
    proc = validate(project)
    assert proc.returncode == 2 and "valid" not in proc.stdout
    assert "experiments.mine.split: split 'mine-q10' is neither committed (data/splits/mine-q10.json)" in proc.stderr
    assert "pseudosup make-split --dataset fashion-mnist --protocol per-class" in proc.stderr


def test_split_defined_under_splits_is_drawable(tmp_path):
    project = small_project(tmp_path, experiments={"mine": {**FMNIST_EXP, "split": "fm-q5"}})
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["splits"] = {"fm-q5": {"dataset": "fashion-mnist", "queries_per_class": 5}}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert validate(project).returncode == 0
    params["splits"]["fm-q5"]["dataset"] = "folder-other"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = validate(project)
    assert proc.returncode == 2
    assert "split 'fm-q5' is a split of dataset 'folder-other', not of the experiment's dataset 'fashion-mnist'" \
        in proc.stderr


@pytest.mark.parametrize("split, own", [("cifar10-test-q1k", "cifar10-test-jpg"),   # committed file
                                         ("cifar10-q1k", "cifar-10")])              # protocol, not committed
def test_split_of_another_dataset_is_refused(tmp_path, split, own):
    project = small_project(tmp_path, experiments={"mine": {**FMNIST_EXP, "split": split}})
    proc = validate(project)
    assert proc.returncode == 2
    assert (f"experiments.mine.split: split '{split}' is a split of dataset '{own}', not of the experiment's "
            "dataset 'fashion-mnist'") in proc.stderr


def test_duplicate_key_is_refused(tmp_path):
    project = small_project(tmp_path)
    text = (project / "params.yaml").read_text()
    lines = text.splitlines()
    demo = lines.index("  demo:")
    at = next(i for i in range(demo, len(lines)) if lines[i].strip() == "split: fmnist-q1k")
    lines.insert(at + 1, lines[at].replace("fmnist-q1k", "fmnist-tiny"))  # demo's split, given twice
    (project / "params.yaml").write_text("\n".join(lines) + "\n")
    proc = validate(project)
    assert proc.returncode == 2 and "valid" not in proc.stdout
    assert f"params.yaml:{at + 2}: duplicate key 'experiments.demo.split' (first at line {at + 1})" in proc.stderr
