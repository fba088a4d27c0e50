"""The metrics gate: compare a run's metrics with committed baselines.

A baseline file (baselines/<experiment>.json) records the protocol its values were
measured on (experiment, dataset, split, tie_rule, precision_at; null where the run has
no such field) and lists, per flattened metric name (`<feature>/<run>/<metric>` or
`mining/<feature>/<metric>`), the value, its direction and an absolute tolerance. A
metric regresses when it is worse than the baseline by more than the tolerance, in its
direction; a baseline metric missing from the run is a failure too.

Refused with one line (PseudosupError) instead of compared: a run made on another
protocol than its baseline (its numbers are not comparable), a baseline that records no
protocol, any value that is null, not a number or not finite (in the run or in the
baseline) and negative baseline values or tolerances. NaN compares false with
everything, so without this an all-NaN run, or a NaN tolerance, would pass the gate.

Tolerances are max(abs_tol, rel_tol x |value|); or, from spreads measured across CPUs
(a file {"experiments": {<experiment>: {<metric name>: <max abs spread>}}}),
max(abs_tol, factor x spread), without rel_tol. A metric absent from that file takes the
largest spread of its feature (first name component; `mining/<feature>/...` counts as
<feature>) in the experiment. Such a baseline says so in "tolerance_source" and records
each metric's "spread" (and "spread_of": the metric it was borrowed from). With
keep_values a committed baseline keeps its values and only its tolerances are
re-derived (or kept too, without spreads: then it only gains the protocol fields it lacks).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path

from .evaluation.metrics import direction
from .io import PseudosupError, read_json, write_json
from .log import log

GATED = ("map", "precision_at_k", "map_at_k", "ndcg", "acg", "wap", "precision_top", "pair_precision")
# what a run's numbers depend on besides the code: a baseline holds for runs of the same
PROTOCOL = ("dataset", "split", "tie_rule", "precision_at")
RUN_BROKEN = "the run that wrote it is broken: fix it and rerun before gating"
BASELINE_BROKEN = "fix the baseline file (values and tolerances are finite numbers >= 0)"


def finite(v, what: str, hint: str, minimum: float = -math.inf) -> float:
    """`v` as a float; a PseudosupError naming `what` if it is null, not a number, not finite or below `minimum`."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PseudosupError(f"{what} is {_show(v)}, not a number; {hint}")
    if not math.isfinite(v):
        raise PseudosupError(f"{what} is {v}, not a finite number; {hint}")
    if v < minimum:
        raise PseudosupError(f"{what} is {v}, below {minimum:g}; {hint}")
    return float(v)


def flatten(metrics: dict, source: str | Path = "metrics") -> dict[str, float]:
    """Gated metrics by flattened name; a null or non-finite one is an error naming it and `source`."""
    flat = {}
    for feat, runs in _mapping(metrics.get("results", {}), "results", source).items():
        for run, values in _mapping(runs, f"results/{feat}", source).items():
            for m, v in _mapping(values, f"results/{feat}/{run}", source).items():
                if m in GATED:
                    flat[f"{feat}/{run}/{m}"] = v
    for feat, values in _mapping(metrics.get("mining", {}), "mining", source).items():
        for m, v in _mapping(values, f"mining/{feat}", source).items():
            if m in GATED:
                flat[f"mining/{feat}/{m}"] = v
    return {name: finite(v, f"{source}: metric {name}", RUN_BROKEN) for name, v in flat.items()}


def feature_of(name: str) -> str:
    parts = name.split("/")
    return parts[1] if parts[0] == "mining" and len(parts) == 3 else parts[0]


@dataclass
class Finding:
    name: str
    baseline: float | None
    value: float | None
    tolerance: float
    higher_is_better: bool

    @property
    def delta(self) -> float | None:
        return None if self.value is None or self.baseline is None else self.value - self.baseline

    def describe(self) -> str:
        if self.value is None:
            return f"{self.name}: missing from the run (baseline {self.baseline:.4f})"
        arrow = "higher" if self.higher_is_better else "lower"
        return (f"{self.name}: {self.value:.4f} vs baseline {self.baseline:.4f} "
                f"(delta {self.delta:+.4f}, tolerance {self.tolerance:.4f}, {arrow} is better)")


def baseline_metrics(baseline: dict, source: str | Path = "baseline") -> dict[str, tuple[float, float, bool]]:
    """name -> (value, tolerance, higher is better), every field checked."""
    specs = _mapping(baseline.get("metrics"), "metrics", source)
    out = {}
    for name, spec in specs.items():
        spec = _mapping(spec, f"metrics/{name}", source)
        what = f"{source}: metric {name}"
        value = finite(spec.get("value"), f"{what}: value", BASELINE_BROKEN, minimum=0)
        tol = finite(spec.get("tolerance"), f"{what}: tolerance", BASELINE_BROKEN, minimum=0)
        way = spec.get("direction", "higher" if direction(name) else "lower")
        if way not in ("higher", "lower"):
            raise PseudosupError(f"{what}: direction is {_show(way)}, not 'higher' or 'lower'; {BASELINE_BROKEN}")
        out[name] = (value, tol, way == "higher")
    return out


def compare(metrics: dict, baseline: dict, metrics_source: str | Path = "metrics",
            baseline_source: str | Path = "baseline") -> tuple[list[Finding], list[Finding], list[str]]:
    """(regressions, improvements beyond tolerance, names not in the baseline)."""
    flat = flatten(metrics, metrics_source)
    specs = baseline_metrics(baseline, baseline_source)
    regress, improve = [], []
    for name, (value, tol, higher) in specs.items():
        f = Finding(name, value, flat.get(name), tol, higher)
        if f.value is None:
            regress.append(f)
            continue
        worse = (f.baseline - f.value) if higher else (f.value - f.baseline)
        if worse > f.tolerance:
            regress.append(f)
        elif -worse > f.tolerance:
            improve.append(f)
    new = sorted(set(flat) - set(specs))
    return regress, improve, new


def check(metrics_path: Path, baselines_dir: Path) -> tuple[list[Finding], list[Finding], list[str]]:
    metrics = read_metrics(metrics_path)
    base_path = baselines_dir / f"{metrics['experiment']}.json"
    remake = remake_command(metrics_path, baselines_dir)
    if not base_path.exists():
        raise PseudosupError(f"{base_path}: no baseline for experiment '{metrics['experiment']}'; "
                             f"create it with `{remake}`")
    baseline = _mapping(read_json(base_path), "", base_path)
    missing = [k for k in PROTOCOL if k not in baseline]
    if missing:
        raise PseudosupError(f"{base_path}: records no {', '.join(missing)} (made before the gate compared "
                             f"protocols); add them from this run, values and tolerances unchanged: "
                             f"`{remake} --keep-values`")
    _same_protocol(metrics, baseline, metrics_path, base_path,
                   f"gate a run of the baseline's protocol, or if the change is deliberate remake it: `{remake}`")
    return compare(metrics, baseline, metrics_path, base_path)


def remake_command(metrics_path: Path, baselines_dir: Path) -> str:
    return "pseudosup update-baselines " + shlex.join([str(metrics_path), "--baselines", str(baselines_dir)])


def read_metrics(path: Path) -> dict:
    metrics = _mapping(read_json(path), "", path)
    if not isinstance(metrics.get("experiment"), str) or not metrics["experiment"]:
        raise PseudosupError(f"{path}: no 'experiment' name; not a metrics file (results/metrics/<experiment>.json)")
    return metrics


def _same_protocol(metrics: dict, baseline: dict, metrics_path, base_path, todo: str) -> None:
    """Fail when a protocol field the baseline records differs from the run's."""
    differ = [k for k in ("experiment", *PROTOCOL) if k in baseline and baseline[k] != metrics.get(k)]
    if differ:
        run = ", ".join(f"{k} {_show(metrics.get(k))}" for k in differ)
        made = ", ".join(f"{k} {_show(baseline[k])}" for k in differ)
        raise PseudosupError(f"{metrics_path}: {run} but baseline {base_path} was made on {made}; {todo}")


@dataclass
class Spread:
    """One experiment's spreads measured across CPUs: tolerance = max(floor, factor x spread)."""
    values: dict[str, float]
    factor: float
    source: str
    experiment: str

    def of(self, name: str) -> tuple[float, str]:
        """(spread, the metric it was measured on): `name`'s own, else its feature's largest."""
        if name in self.values:
            return self.values[name], name
        feat = feature_of(name)
        same = sorted(n for n in self.values if feature_of(n) == feat)
        if not same:
            raise PseudosupError(f"{self.source}: no spread for metric {name} of experiment '{self.experiment}' "
                                 f"nor for any other metric of its feature '{feat}'; measure it and add it "
                                 f"under experiments/{self.experiment}")
        borrowed = max(same, key=self.values.get)
        return self.values[borrowed], borrowed

    def describe(self, floor: float) -> str:
        return f"measured spread x{self.factor:g} ({self.source}), at least {floor:g}"


def read_spread(path: Path, experiment: str, factor: float) -> Spread:
    data = _mapping(read_json(path), "", path)
    exps = _mapping(data.get("experiments"), "experiments", path)
    if experiment not in exps:
        raise PseudosupError(f"{path}: no spreads for experiment '{experiment}' under 'experiments'; "
                             f"measure them, or make its baseline without --spread")
    spreads = _mapping(exps[experiment], f"experiments/{experiment}", path)
    hint = "spreads are measured max abs differences (finite, >= 0)"
    values = {n: finite(v, f"{path}: experiments/{experiment}/{n}", hint, minimum=0) for n, v in spreads.items()}
    return Spread(values, factor, str(path), experiment)


def make_baseline(metrics: dict, abs_tol: float, rel_tol: float, spread: Spread | None = None,
                  source: str | Path = "metrics") -> dict:
    """A baseline from a run: tolerance max(abs_tol, rel_tol x |value|), or max(abs_tol, factor x spread)."""
    out = {"experiment": metrics["experiment"], **{k: metrics.get(k) for k in PROTOCOL}}
    flat = flatten(metrics, source)
    if spread is not None:
        out["tolerance_source"] = spread.describe(abs_tol)
        _warn_unused(spread, flat)
    out["metrics"] = {name: _entry(name, round(v, 6), direction(name), abs_tol, rel_tol, spread)
                      for name, v in sorted(flat.items())}
    return out


def keep_values(baseline: dict, metrics: dict, abs_tol: float, spread: Spread | None,
                base_path: str | Path = "baseline", metrics_path: str | Path = "metrics") -> dict:
    """`baseline` with its values kept: tolerances from `spread` (kept without one); protocol
    fields it lacks taken from `metrics`, whose protocol must match the fields it has."""
    specs = baseline_metrics(baseline, base_path)
    _same_protocol(metrics, baseline, metrics_path, base_path,
                   "its values cannot be kept for a run of another protocol; drop --keep-values to remake it")
    out = {"experiment": metrics["experiment"], **{k: baseline.get(k, metrics.get(k)) for k in PROTOCOL}}
    if spread is None:
        if "tolerance_source" in baseline:
            out["tolerance_source"] = baseline["tolerance_source"]
        out["metrics"] = baseline["metrics"]
        return out
    out["tolerance_source"] = spread.describe(abs_tol)
    _warn_unused(spread, specs)
    out["metrics"] = {name: _entry(name, baseline["metrics"][name]["value"], higher, abs_tol, 0.0, spread)
                      for name, (_, _, higher) in specs.items()}
    return out


def _entry(name: str, value: float, higher: bool, abs_tol: float, rel_tol: float, spread: Spread | None) -> dict:
    e = {"value": value, "direction": "higher" if higher else "lower"}
    if spread is None:
        e["tolerance"] = round(max(abs_tol, rel_tol * abs(value)), 6)
        return e
    s, measured_on = spread.of(name)
    e["tolerance"] = round(max(abs_tol, spread.factor * s), 6)
    e["spread"] = s
    if measured_on != name:
        e["spread_of"] = measured_on
    return e


def _warn_unused(spread: Spread, names) -> None:
    unused = sorted(set(spread.values) - set(names))
    if unused:  # a typo, or a metric the run no longer has: say so, it gates nothing
        log.warning("%s: spreads of metrics experiment '%s' does not have: %s", spread.source,
                    spread.experiment, ", ".join(unused))


def build_baseline(metrics_path: Path, baselines_dir: Path, abs_tol: float, rel_tol: float,
                   spread_path: Path | None = None, spread_factor: float = 3.0,
                   keep: bool = False) -> tuple[Path, dict]:
    """(baselines/<experiment>.json, its new content) for one metrics file."""
    metrics = read_metrics(metrics_path)
    exp = metrics["experiment"]
    spread = read_spread(spread_path, exp, spread_factor) if spread_path is not None else None
    path = baselines_dir / f"{exp}.json"
    if not keep:
        return path, make_baseline(metrics, abs_tol, rel_tol, spread, metrics_path)
    if not path.exists():
        raise PseudosupError(f"{path}: no baseline whose values to keep; drop --keep-values to make one "
                             f"from {metrics_path}")
    return path, keep_values(_mapping(read_json(path), "", path), metrics, abs_tol, spread, path, metrics_path)


def write_baselines(metrics_paths: list[Path], baselines_dir: Path, **options) -> list[Path]:
    """Build every baseline before writing any: one bad input leaves all files as they were."""
    built = [build_baseline(p, baselines_dir, **options) for p in metrics_paths]
    for path, baseline in built:
        write_json(path, baseline)
    return [path for path, _ in built]


def _mapping(v, key: str, source) -> dict:
    if not isinstance(v, dict):
        where = f"'{key}' is" if key else "content is"
        raise PseudosupError(f"{source}: {where} {_show(v)}, not a mapping; rewrite it with the command that makes it")
    return v


def _show(v) -> str:
    if v is None:
        return "null"
    return repr(v) if isinstance(v, (str, int, float)) else f"a {type(v).__name__}"
