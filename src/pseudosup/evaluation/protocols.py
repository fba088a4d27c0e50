"""Instance-retrieval protocols (Holidays, Oxford5k / Paris6k, UKBench) and a
class-level mAP wrapper, each written from its published definition.

Every function takes *rankings*: an (nq, n_db) int array, row q = database indices
best first (see `rank_by_scores`, ties broken by database index). Conventions:

- **Trapezoid AP** (INRIA's `holidays_map.py`; revisitop's `compute_ap`): with the
  0-based ranks r_0 < r_1 < ... of the positives in the (cleaned) ranking and
  `nres` positives in the ground truth, AP = sum_j (P0_j + P1_j) / 2 / nres with
  P0_j = j / r_j (1 when r_j = 0) and P1_j = (j + 1) / (r_j + 1): the area under
  the precision-recall curve by trapezoids. A positive missing from the ranking
  contributes nothing.
- **Holidays**: the query image itself is removed from its ranking ("if the query
  image is ranked, it is ignored in the scoring"); positives = the other images of
  its group.
- **Oxford5k / Paris6k** (original, not revisited): positives = `ok` (= good + ok
  in the cnnimageretrieval `gnd_*.pkl`), `junk` images are removed from the ranking
  (ranks of later positives move up); trapezoid AP. A query without positives is
  skipped (NaN AP, excluded from the mean), as in revisitop's `compute_map`.
- **UKBench N-S score**: mean number of the query's group (4 images, the query
  included) among its top 4 results; the maximum is 4.
- **Class-level mAP**: non-interpolated AP (mean precision at each relevant
  position) over the whole ranking, relevant = same label; a query with no
  relevant item has AP 0 (same convention as `evaluation.ranking`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..io import PseudosupError

# --- rankings ----------------------------------------------------------------------------

def rank_by_scores(scores: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Database indices by decreasing score per row, ties by database index (stable).

    `exclude[q]` (a database index or -1) is moved to the end of row q: used by
    protocols that remove the query from its own ranking when it is in the database.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if exclude is not None:
        scores = scores.copy()
        rows = np.flatnonzero(np.asarray(exclude) >= 0)
        scores[rows, np.asarray(exclude)[rows]] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")


def _positions(order: np.ndarray) -> np.ndarray:
    """Inverse permutation per row: position of every database item in the ranking."""
    pos = np.empty_like(order)
    rows = np.arange(order.shape[0])[:, None]
    pos[rows, order] = np.arange(order.shape[1])[None, :]
    return pos


# --- AP definitions ------------------------------------------------------------------------

def trapezoid_ap(ranks: np.ndarray, nres: int) -> float:
    """Trapezoid AP from the sorted 0-based ranks of the positives (see module doc)."""
    if nres <= 0:
        raise PseudosupError("trapezoid AP needs at least one positive (nres >= 1)")
    r = np.sort(np.asarray(ranks, dtype=np.float64))
    j = np.arange(len(r), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = np.where(r == 0, 1.0, j / np.where(r == 0, 1.0, r))
    p1 = (j + 1) / (r + 1)
    return float(((p0 + p1) / 2).sum() / nres)


def plain_ap(ranks: np.ndarray, nres: int) -> float:
    """Non-interpolated AP: mean over the positives of precision at their rank."""
    if nres <= 0:
        return 0.0
    r = np.sort(np.asarray(ranks, dtype=np.float64))
    return float(((np.arange(len(r)) + 1) / (r + 1)).sum() / nres)


def clean_ranks(pos_of_item: np.ndarray, positives: np.ndarray, junk: np.ndarray) -> np.ndarray:
    """0-based ranks of the positives once the junk items are removed from the ranking."""
    p = np.sort(pos_of_item[np.asarray(positives, dtype=np.int64)])
    j = np.sort(pos_of_item[np.setdiff1d(np.asarray(junk, dtype=np.int64), positives)])
    return p - np.searchsorted(j, p, side="left")


# --- protocols -------------------------------------------------------------------------------

def instance_aps(order: np.ndarray, positives: Sequence[np.ndarray], junk: Sequence[np.ndarray],
                 ap: str = "trapezoid") -> np.ndarray:
    """AP per query with per-query positive and junk lists (database indices).

    Queries without positives get NaN (excluded from `nanmean`)."""
    if len(positives) != len(order) or len(junk) != len(order):
        raise PseudosupError(f"{len(order)} rankings but {len(positives)} positive lists and "
                             f"{len(junk)} junk lists: the ground truth does not match the queries")
    pos = _positions(np.asarray(order))
    fn = trapezoid_ap if ap == "trapezoid" else plain_ap
    out = np.full(len(order), np.nan)
    for q in range(len(order)):
        pq = np.asarray(positives[q], dtype=np.int64)
        if len(pq):
            out[q] = fn(clean_ranks(pos[q], pq, junk[q]), len(pq))
    return out


def holidays_map(order: np.ndarray, query_items: np.ndarray, groups: np.ndarray) -> tuple[float, np.ndarray]:
    """INRIA Holidays: query (database item `query_items[q]`) removed from its ranking,
    positives = the rest of its group, trapezoid AP. Returns (mAP, AP per query)."""
    groups = np.asarray(groups)
    query_items = np.asarray(query_items, dtype=np.int64)
    positives = [np.setdiff1d(np.flatnonzero(groups == groups[i]), [i]) for i in query_items]
    aps = instance_aps(order, positives, [np.array([i]) for i in query_items])
    return _nanmean(aps, "holidays"), aps


def oxford_map(order: np.ndarray, gnd: Sequence[dict]) -> tuple[float, np.ndarray]:
    """Oxford5k / Paris6k (original protocol): positives = gnd[q]['ok'] (good + ok),
    gnd[q]['junk'] removed from the ranking, trapezoid AP; queries without
    positives are skipped. Returns (mAP, AP per query)."""
    for q, g in enumerate(gnd):
        if "ok" not in g or "junk" not in g:
            raise PseudosupError(f"ground truth of query {q} lacks 'ok'/'junk' (has {sorted(g)})")
    aps = instance_aps(order, [np.asarray(g["ok"]) for g in gnd], [np.asarray(g["junk"]) for g in gnd])
    return _nanmean(aps, "oxford"), aps


def ukbench_ns(order: np.ndarray, query_items: np.ndarray, groups: np.ndarray, top: int = 4) -> tuple[float, np.ndarray]:
    """UKBench N-S score: images of the query's group among its top 4 (query included).
    Returns (mean score, score per query)."""
    groups = np.asarray(groups)
    top_groups = groups[np.asarray(order)[:, :top]]
    per_query = (top_groups == groups[np.asarray(query_items)][:, None]).sum(axis=1).astype(np.float64)
    return float(per_query.mean()), per_query


def class_map(order: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray,
              query_items: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Class-level mAP: relevant = same label, non-interpolated AP over the whole ranking
    (AP 0 when nothing is relevant). `query_items` (database index or -1) removes a
    query that is in the database from its own ranking. Returns (mAP, AP per query)."""
    order = np.asarray(order)
    rel = np.asarray(db_labels)[order] == np.asarray(query_labels)[:, None]
    # a query that is in the database is not one of its own results: drop it per row
    keep = (order != np.asarray(query_items)[:, None]) if query_items is not None else np.ones_like(rel)
    aps = np.zeros(len(order))
    for q in range(len(order)):
        where = np.flatnonzero(rel[q][keep[q]])
        if len(where):
            aps[q] = float(((np.arange(len(where)) + 1) / (where + 1)).mean())
    return float(aps.mean()) if len(aps) else 0.0, aps


class _Mask:
    """A precomputed relevance mask with the `mask(q0, q1)` interface of evaluation.ranking."""

    def __init__(self, mask: np.ndarray):
        self._m = mask

    def mask(self, q0: int, q1: int) -> np.ndarray:
        return self._m[q0:q1]


def class_map_ties(scores: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray, rule: str,
                   query_items: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """`class_map` of the ranking by decreasing score with equal scores ordered by an
    order-independent tie rule (evaluation.ranking: expected / optimistic /
    pessimistic) instead of database index. A query that is in the database goes to
    the end of its own ranking as a non-relevant item, which leaves its AP unchanged."""
    from .ranking import tie_aware_metrics_by_distance

    dist = -np.asarray(scores, dtype=np.float64)
    mask = np.asarray(db_labels)[None, :] == np.asarray(query_labels)[:, None]
    if query_items is not None:
        rows = np.flatnonzero(np.asarray(query_items) >= 0)
        dist[rows, np.asarray(query_items)[rows]] = np.inf
        mask[rows, np.asarray(query_items)[rows]] = False
    aps = tie_aware_metrics_by_distance(lambda a, b: dist[a:b], len(dist), _Mask(mask), 1, rule)["ap"]
    return float(aps.mean()) if len(aps) else 0.0, aps


def _nanmean(aps: np.ndarray, name: str) -> float:
    if not np.isfinite(aps).any():
        raise PseudosupError(f"{name}: no query has a positive in the database; check the ground truth")
    return float(np.nanmean(aps))


# --- a retrieval task: who queries, what is searched, what is relevant -------------------------

class RetrievalTask:
    """Queries and database (item indices) plus the relevance of one protocol.

    kind "instance": `ok` / `junk` per query as *database positions*; a query that is
    itself in the database is junk for its own ranking unless `query_is_result`
    (UKBench, which then also reports the N-S score); ties by database index, as the
    instance benchmarks' reference code. kind "class": labels; equal scores ordered by
    `tie_rule` (default `index`; params `evaluation.tie_rule` in evaluate-retrieval).
    `evaluate(scores)` takes (nq, n_db) similarities (higher = better) and returns
    ({metric: value}, AP per query)."""

    def __init__(self, name: str, kind: str, queries: np.ndarray, database: np.ndarray, ok=None, junk=None,
                 query_labels=None, db_labels=None, query_is_result: bool = False, tie_rule: str = "index"):
        self.name, self.kind, self.tie_rule = name, kind, tie_rule
        self.queries = np.asarray(queries, np.int64)
        self.database = np.asarray(database, np.int64)
        pos = {int(d): p for p, d in enumerate(self.database)}
        self.query_pos = np.array([pos.get(int(q), -1) for q in self.queries], np.int64)
        self.query_is_result = query_is_result
        self.query_labels, self.db_labels = query_labels, db_labels
        if kind == "instance":
            self.ok = [self._positions(o, pos, "ok") for o in ok]
            self.junk = [self._positions(j, pos, "junk") for j in junk]
            if not query_is_result:
                self.junk = [np.union1d(j, [p]) if p >= 0 else j for j, p in zip(self.junk, self.query_pos)]
        elif kind != "class":
            raise PseudosupError(f"unknown retrieval task kind '{kind}' (instance or class)")

    @staticmethod
    def _positions(items, pos: dict, what: str) -> np.ndarray:
        items = np.asarray(items, np.int64)
        missing = [int(i) for i in items if int(i) not in pos]
        if missing:
            raise PseudosupError(f"ground truth lists item {missing[0]} as {what}, but it is not in the database")
        return np.array([pos[int(i)] for i in items], np.int64)

    def evaluate(self, scores: np.ndarray) -> tuple[dict, np.ndarray]:
        scores = np.asarray(scores)
        if scores.shape != (len(self.queries), len(self.database)):
            raise PseudosupError(f"{self.name}: scores of shape {scores.shape}, expected "
                                 f"({len(self.queries)}, {len(self.database)})")
        if self.kind == "class" and self.tie_rule != "index":
            return self._class_map_ties(scores)
        if self.kind == "class":
            order = rank_by_scores(scores)
            m, aps = class_map(order, self.query_labels, self.db_labels,
                               self.query_pos if (self.query_pos >= 0).any() else None)
            return {"map": m}, aps
        order = rank_by_scores(scores)
        aps = instance_aps(order, self.ok, self.junk)
        out = {"map": _nanmean(aps, self.name)}
        if self.query_is_result:
            top = order[:, :4]
            out["ns_score"] = float(np.mean([np.isin(t, o).sum() for t, o in zip(top, self.ok)]))
        return out, aps

    def _class_map_ties(self, scores: np.ndarray) -> tuple[dict, np.ndarray]:
        m, aps = class_map_ties(scores, self.query_labels, self.db_labels, self.tie_rule,
                                self.query_pos if (self.query_pos >= 0).any() else None)
        return {"map": m}, aps


def task_from_groundtruth(name: str, gt, database: np.ndarray) -> RetrievalTask:
    """An instance task from a data-layer ground truth (queries, ok, junk item indices)."""
    return RetrievalTask(name, "instance", gt.queries, database, gt.ok, gt.junk,
                         query_is_result=bool(getattr(gt, "query_is_result", False)))
