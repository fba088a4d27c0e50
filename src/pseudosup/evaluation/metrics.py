"""Metric registry: name -> direction and description (after ann-benchmarks).

The metrics gate uses the direction to decide what a regression is; tables and
plots use the description.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    description: str


METRICS: dict[str, Metric] = {}


def register(name: str, higher_is_better: bool, description: str) -> Metric:
    METRICS[name] = Metric(name, higher_is_better, description)
    return METRICS[name]


register("map", True, "mean average precision over the whole database ranking")
register("precision_at_k", True, "mean precision of the top K (evaluation.precision_at)")
register("precision_radius", True, "mean precision within Hamming radius r (0 if nothing retrieved)")
register("recall_radius", True, "mean recall within Hamming radius r")
register("map_at_k", True, "mean AP over the top K (evaluation.map_at), normalised by relevant items retrieved")
register("ndcg", True, "multi-label NDCG@K (gain 2^r - 1, r = shared labels; evaluation.ndcg_at)")
register("acg", True, "multi-label average cumulative gain@K (mean shared labels in the top K)")
register("wap", True, "multi-label weighted mAP over the top K (evaluation.wap_at)")
register("precision_top", True, "multi-label precision@K (relevant = shares >= 1 label)")
register("pair_precision", True, "fraction of mined pairs sharing a class label (diagnostic)")
register("num_pairs", True, "number of mined reversible-NN pairs")
register("seconds", False, "wall time of a stage")


def direction(name: str) -> bool:
    """True when higher is better. Unknown metrics default to higher-is-better."""
    base = name.split("/")[-1]
    return METRICS[base].higher_is_better if base in METRICS else True
