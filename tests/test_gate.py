"""The metrics gate fails on a worse run and passes on the committed one."""

from __future__ import annotations

import copy
import json
import math
import re
import shlex
import subprocess

import pytest

from pseudosup.gate import compare, feature_of, flatten, make_baseline
from pseudosup.io import PseudosupError

from .conftest import ROOT, run_cli

METRICS = sorted((ROOT / "results/metrics").glob("*.json"))


def demo():
    return json.loads((ROOT / "results/metrics/demo.json").read_text())


def test_every_committed_metrics_file_has_a_baseline():
    assert METRICS
    for m in METRICS:
        assert (ROOT / "baselines" / m.name).exists(), f"no baseline for {m.name}"


def test_gate_passes_on_the_committed_results():
    proc = run_cli("check-metrics", *map(str, METRICS), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gate_fails_on_a_deliberately_worse_run_and_lists_every_regression(tmp_path):
    worse = demo()
    worse["results"]["pixels"]["itq-32"]["map"] -= 0.05
    worse["results"]["cnn-small"]["lsh-16"]["precision_at_k"] -= 0.2
    del worse["results"]["pixels"]["pcah-64"]
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(worse))
    proc = run_cli("check-metrics", str(path), "--baselines", str(ROOT / "baselines"), check=False)
    assert proc.returncode == 1
    out = proc.stdout
    assert "REGRESSION pixels/itq-32/map" in out
    assert "REGRESSION cnn-small/lsh-16/precision_at_k" in out
    assert "REGRESSION pixels/pcah-64/map: missing" in out
    assert out.count("REGRESSION") == 4  # pcah-64 map and precision both missing


def test_small_noise_within_tolerance_passes_and_direction_matters():
    m = demo()
    base = make_baseline(m, abs_tol=0.01, rel_tol=0.0)
    noisy = copy.deepcopy(m)
    noisy["results"]["pixels"]["itq-16"]["map"] -= 0.009
    assert compare(noisy, base)[0] == []
    better = copy.deepcopy(m)
    better["results"]["pixels"]["itq-16"]["map"] += 0.5
    regress, improve, _ = compare(better, base)
    assert regress == [] and [f.name for f in improve] == ["pixels/itq-16/map"]


def test_lower_is_better_metrics_regress_upwards():
    base = {"metrics": {"x/y/seconds": {"value": 10.0, "direction": "lower", "tolerance": 1.0}}}
    run = {"results": {"x": {"y": {"seconds": 12.0}}}}
    # seconds are not gated metrics, so flatten drops them: reported as missing
    assert [f.name for f in compare(run, base)[0]] == ["x/y/seconds"]
    assert "seconds" not in " ".join(flatten(run))


def test_missing_baseline_is_a_clear_error(tmp_path):
    m = demo()
    m["experiment"] = "nobody"
    (tmp_path / "nobody.json").write_text(json.dumps(m))
    proc = run_cli("check-metrics", str(tmp_path / "nobody.json"), check=False)
    assert proc.returncode == 2 and "no baseline for experiment 'nobody'" in proc.stderr


# --- values the gate must refuse rather than compare (NaN compares false with everything)

def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))  # json writes NaN / Infinity literals, as a broken run would
    return path


def all_values(d, value):
    for k, v in d.items():
        if isinstance(v, dict):
            all_values(v, value)
        else:
            d[k] = value


def test_an_all_nan_metrics_file_fails_the_gate_through_the_cli(tmp_path):
    m = demo()
    all_values(m["results"], math.nan)
    all_values(m["mining"], math.nan)
    path = write(tmp_path / "demo.json", m)
    proc = run_cli("check-metrics", str(path), "--baselines", str(ROOT / "baselines"), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "passed" not in proc.stdout + proc.stderr
    assert f"{path}: metric " in proc.stderr and "is nan, not a finite number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_null_metric_value_is_a_one_line_error_naming_metric_and_file(tmp_path):
    m = demo()
    m["results"]["pixels"]["itq-16"]["map"] = None
    path = write(tmp_path / "demo.json", m)
    proc = run_cli("check-metrics", str(path), "--baselines", str(ROOT / "baselines"), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path}: metric pixels/itq-16/map is null, not a number" in proc.stderr
    assert "passed" not in proc.stdout


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, None, "0.7", True])
def test_non_finite_or_non_numeric_run_values_are_refused(value):
    m = demo()
    m["mining"]["cnn-small"]["pair_precision"] = value
    base = make_baseline(demo(), abs_tol=0.01, rel_tol=0.0)
    with pytest.raises(PseudosupError, match=r"^run\.json: metric mining/cnn-small/pair_precision is "):
        compare(m, base, "run.json", "base.json")


@pytest.mark.parametrize("field,value", [("tolerance", math.nan), ("tolerance", math.inf), ("tolerance", -0.01),
                                         ("tolerance", None), ("value", math.nan), ("value", -0.5),
                                         ("value", None)])
def test_bad_baseline_values_and_tolerances_are_refused_naming_file_and_metric(tmp_path, field, value):
    base = json.loads((ROOT / "baselines/demo.json").read_text())
    base["metrics"]["pixels/itq-16/map"][field] = value
    base_path = write(tmp_path / "baselines/demo.json", base)
    # a run far worse than the baseline: a NaN tolerance must not let it through
    m = demo()
    all_values(m["results"], 0.0)
    run = write(tmp_path / "demo.json", m)
    proc = run_cli("check-metrics", str(run), "--baselines", str(tmp_path / "baselines"), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{base_path}: metric pixels/itq-16/map: {field} is " in proc.stderr
    assert "passed" not in proc.stdout and "Traceback" not in proc.stderr


# --- the protocol a baseline was made on

@pytest.mark.parametrize("key,value", [("split", "x"), ("dataset", "mnist"), ("tie_rule", "index"),
                                       ("precision_at", 100)])
def test_a_run_on_another_protocol_than_its_baseline_is_refused(tmp_path, key, value):
    m = demo()
    m[key] = value
    run = write(tmp_path / "demo.json", m)  # values identical: only the protocol differs
    proc = run_cli("check-metrics", str(run), "--baselines", str(ROOT / "baselines"), check=False)
    assert proc.returncode == 2 and "passed" not in proc.stdout
    was = json.loads((ROOT / "baselines/demo.json").read_text())[key]
    assert (f"{run}: {key} {value!r} but baseline {ROOT / 'baselines'}/demo.json was made on {key} {was!r}"
            in proc.stderr), proc.stderr


def test_make_baseline_records_the_protocol():
    base = make_baseline(demo(), abs_tol=0.01, rel_tol=0.03)
    assert {k: base[k] for k in ("experiment", "dataset", "split", "tie_rule", "precision_at")} == {
        "experiment": "demo", "dataset": "fashion-mnist", "split": "fmnist-q1k", "tie_rule": "expected",
        "precision_at": 500}


def test_every_committed_baseline_records_the_protocol_of_its_metrics_file():
    for m in METRICS:
        metrics = json.loads(m.read_text())
        base = json.loads((ROOT / "baselines" / m.name).read_text())
        for key in ("experiment", "dataset", "split", "tie_rule", "precision_at"):
            assert key in base and base[key] == metrics.get(key), f"{m.name}: {key}"


def test_an_old_baseline_without_protocol_is_refused_and_the_hinted_command_completes_it(tmp_path):
    old = json.loads((ROOT / "baselines/demo.json").read_text())
    for key in ("dataset", "tie_rule", "precision_at"):
        old.pop(key, None)
    base_path = write(tmp_path / "baselines/demo.json", old)
    metrics = str(ROOT / "results/metrics/demo.json")
    proc = run_cli("check-metrics", metrics, "--baselines", str(tmp_path / "baselines"), check=False)
    assert proc.returncode == 2
    assert f"{base_path}: records no dataset, tie_rule, precision_at" in proc.stderr
    run_hinted(proc.stderr)
    new = json.loads(base_path.read_text())
    assert new["metrics"] == old["metrics"]  # values and tolerances untouched
    assert (new["dataset"], new["tie_rule"], new["precision_at"]) == ("fashion-mnist", "expected", 500)
    run_cli("check-metrics", metrics, "--baselines", str(tmp_path / "baselines"))


def run_hinted(stderr: str) -> subprocess.CompletedProcess:
    """Run the command an error message names between backticks."""
    (hint,) = re.findall(r"`(pseudosup [^`]+)`", stderr)
    return run_cli(*shlex.split(hint)[1:])


def test_the_missing_baseline_hint_is_a_command_that_works(tmp_path):
    metrics = str(ROOT / "results/metrics/demo.json")
    empty = tmp_path / "my baselines"  # a space: the hint must quote it
    proc = run_cli("check-metrics", metrics, "--baselines", str(empty), check=False)
    assert proc.returncode == 2 and "no baseline for experiment 'demo'" in proc.stderr
    run_hinted(proc.stderr)
    assert (empty / "demo.json").exists()
    assert "metrics gate passed" in run_cli("check-metrics", metrics, "--baselines", str(empty)).stdout


# --- tolerances from a measured cross-CPU spread

def spread_file(tmp_path, spreads, experiment="demo"):
    return write(tmp_path / "spread.json", {"experiments": {experiment: spreads}})


def update(tmp_path, *args, check=True):
    return run_cli("update-baselines", str(ROOT / "results/metrics/demo.json"),
                   "--baselines", str(tmp_path / "baselines"), *args, check=check)


def test_spread_tolerances_are_the_factor_times_the_spread_with_abs_tol_as_floor(tmp_path):
    spread = spread_file(tmp_path, {"pixels/itq-16/map": 0.02, "pixels/itq-32/map": 0.001,
                                    "cnn-small/euclidean/map": 0.004, "mining/cnn-small/pair_precision": 0.5})
    update(tmp_path, "--spread", str(spread), "--spread-factor", "2.5", "--abs-tol", "0.005", "--rel-tol", "0.5")
    base = json.loads((tmp_path / "baselines/demo.json").read_text())
    assert base["tolerance_source"] == f"measured spread x2.5 ({spread}), at least 0.005"
    mets = base["metrics"]
    assert mets["pixels/itq-16/map"]["tolerance"] == 0.05 and mets["pixels/itq-16/map"]["spread"] == 0.02
    assert mets["pixels/itq-32/map"]["tolerance"] == 0.005  # 2.5 x 0.001 under the floor; rel-tol unused
    # metrics missing from the file take the largest spread of their feature (pixels: 0.02)
    assert mets["pixels/lsh-16/precision_at_k"] == {**mets["pixels/lsh-16/precision_at_k"], "tolerance": 0.05,
                                                    "spread": 0.02, "spread_of": "pixels/itq-16/map"}
    # mining/cnn-small/... counts as feature cnn-small
    assert mets["cnn-small/itq-16/map"]["tolerance"] == 1.25
    assert mets["mining/pixels/pair_precision"]["spread_of"] == "pixels/itq-16/map"
    assert mets["pixels/itq-16/map"]["value"] == round(demo()["results"]["pixels"]["itq-16"]["map"], 6)
    run_cli("check-metrics", str(ROOT / "results/metrics/demo.json"), "--baselines", str(tmp_path / "baselines"))


def test_default_spread_factor_is_3(tmp_path):
    update(tmp_path, "--spread", str(spread_file(tmp_path, {"pixels/x/map": 0.01, "cnn-small/x/map": 0.02})))
    mets = json.loads((tmp_path / "baselines/demo.json").read_text())["metrics"]
    assert mets["pixels/itq-16/map"]["tolerance"] == 0.03 and mets["cnn-small/itq-16/map"]["tolerance"] == 0.06


def test_a_metric_without_any_spread_of_its_feature_is_an_error_and_nothing_is_written(tmp_path):
    spread = spread_file(tmp_path, {"pixels/itq-16/map": 0.02})
    proc = update(tmp_path, "--spread", str(spread), check=False)
    assert proc.returncode == 2
    assert (f"{spread}: no spread for metric cnn-small/euclidean/map of experiment 'demo' nor for any other "
            f"metric of its feature 'cnn-small'") in proc.stderr
    assert not (tmp_path / "baselines").exists()


@pytest.mark.parametrize("content,says", [
    ({"experiments": {"demo": {"pixels/itq-16/map": math.nan, "cnn-small/x/map": 0.1}}},
     "experiments/demo/pixels/itq-16/map is nan, not a finite number"),
    ({"experiments": {"demo": {"pixels/itq-16/map": -0.1, "cnn-small/x/map": 0.1}}},
     "experiments/demo/pixels/itq-16/map is -0.1, below 0"),
    ({"experiments": {"other": {}}}, "no spreads for experiment 'demo'"),
    ({"demo": {}}, "'experiments' is null, not a mapping"),
])
def test_bad_spread_files_are_refused(tmp_path, content, says):
    spread = write(tmp_path / "spread.json", content)
    proc = update(tmp_path, "--spread", str(spread), check=False)
    assert proc.returncode == 2 and f"{spread}: " in proc.stderr and says in proc.stderr, proc.stderr
    assert not (tmp_path / "baselines").exists()


@pytest.mark.parametrize("option,value", [("--abs-tol", "nan"), ("--rel-tol", "-1"), ("--spread-factor", "0"),
                                          ("--spread-factor", "inf")])
def test_bad_tolerance_options_are_refused(tmp_path, option, value):
    proc = update(tmp_path, option, value, check=False)
    assert proc.returncode == 2 and option in proc.stderr and "not a finite number" in proc.stderr
    assert not (tmp_path / "baselines").exists()


def test_keep_values_rederives_only_the_tolerances(tmp_path):
    committed = json.loads((ROOT / "baselines/demo.json").read_text())
    write(tmp_path / "baselines/demo.json", committed)
    spread = spread_file(tmp_path, {"pixels/itq-16/map": 0.02, "cnn-small/itq-16/map": 0.001})
    update(tmp_path, "--spread", str(spread), "--keep-values")
    new = json.loads((tmp_path / "baselines/demo.json").read_text())
    assert list(new["metrics"]) == list(committed["metrics"])
    for name, spec in committed["metrics"].items():
        assert new["metrics"][name]["value"] == spec["value"]
        assert new["metrics"][name]["tolerance"] == (0.06 if feature_of(name) == "pixels" else 0.01)
    assert new["tolerance_source"].startswith("measured spread x3 (")
    # the values are the committed ones even when the run's differ
    m = demo()
    m["results"]["pixels"]["itq-16"]["map"] = 0.5
    other = write(tmp_path / "run/demo.json", m)
    run_cli("update-baselines", str(other), "--baselines", str(tmp_path / "baselines"), "--keep-values",
            "--spread", str(spread))
    assert json.loads((tmp_path / "baselines/demo.json").read_text()) == new


def test_keep_values_refuses_a_missing_baseline_or_a_run_of_another_protocol(tmp_path):
    proc = update(tmp_path, "--keep-values", check=False)
    assert proc.returncode == 2 and f"{tmp_path}/baselines/demo.json: no baseline whose values to keep" in proc.stderr
    write(tmp_path / "baselines/demo.json", json.loads((ROOT / "baselines/demo.json").read_text()))
    m = demo()
    m["split"] = "x"
    proc = run_cli("update-baselines", str(write(tmp_path / "run/demo.json", m)), "--baselines",
                   str(tmp_path / "baselines"), "--keep-values", check=False)
    assert proc.returncode == 2 and "split 'x' but baseline" in proc.stderr
    assert json.loads((tmp_path / "baselines/demo.json").read_text())["split"] == "fmnist-q1k"
