"""The metrics gate: compare a run's metrics with committed baselines.

A baseline file (baselines/<experiment>.json) lists, per flattened metric name
(`<feature>/<run>/<metric>` or `mining/<feature>/<metric>`), the value, its
direction and an absolute tolerance. A metric regresses when it is worse than the
baseline by more than the tolerance, in its direction; a baseline metric missing
from the run is a failure too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .evaluation.metrics import direction
from .io import PseudosupError, read_json, write_json

GATED = ("map", "precision_at_k", "map_at_k", "ndcg", "acg", "wap", "precision_top", "pair_precision")


def flatten(metrics: dict) -> dict[str, float]:
    flat = {}
    for feat, runs in metrics.get("results", {}).items():
        for run, values in runs.items():
            for m, v in values.items():
                if m in GATED:
                    flat[f"{feat}/{run}/{m}"] = float(v)
    for feat, values in metrics.get("mining", {}).items():
        for m, v in values.items():
            if m in GATED:
                flat[f"mining/{feat}/{m}"] = float(v)
    return flat


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


def compare(metrics: dict, baseline: dict) -> tuple[list[Finding], list[Finding], list[str]]:
    """(regressions, improvements beyond tolerance, names not in the baseline)."""
    flat = flatten(metrics)
    regress, improve = [], []
    for name, spec in baseline["metrics"].items():
        higher = spec.get("direction", "higher" if direction(name) else "lower") == "higher"
        f = Finding(name, spec["value"], flat.get(name), spec["tolerance"], higher)
        if f.value is None:
            regress.append(f)
            continue
        worse = (f.baseline - f.value) if higher else (f.value - f.baseline)
        if worse > f.tolerance:
            regress.append(f)
        elif -worse > f.tolerance:
            improve.append(f)
    new = sorted(set(flat) - set(baseline["metrics"]))
    return regress, improve, new


def check(metrics_path: Path, baselines_dir: Path) -> tuple[list[Finding], list[Finding], list[str]]:
    metrics = read_json(metrics_path)
    base_path = baselines_dir / f"{metrics['experiment']}.json"
    if not base_path.exists():
        raise PseudosupError(f"{base_path}: no baseline for experiment '{metrics['experiment']}'; "
                             f"create it with `pseudosup update-baselines --metrics {metrics_path}`")
    return compare(metrics, read_json(base_path))


def make_baseline(metrics: dict, abs_tol: float, rel_tol: float) -> dict:
    """A baseline from a run: tolerance = max(abs_tol, rel_tol * |value|)."""
    out = {"experiment": metrics["experiment"], "split": metrics.get("split"), "metrics": {}}
    for name, v in sorted(flatten(metrics).items()):
        out["metrics"][name] = {"value": round(v, 6), "direction": "higher" if direction(name) else "lower",
                                "tolerance": round(max(abs_tol, rel_tol * abs(v)), 6)}
    return out


def write_baseline(metrics_path: Path, baselines_dir: Path, abs_tol: float, rel_tol: float) -> Path:
    metrics = read_json(metrics_path)
    path = baselines_dir / f"{metrics['experiment']}.json"
    write_json(path, make_baseline(metrics, abs_tol, rel_tol))
    return path
