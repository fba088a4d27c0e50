"""The metrics of one evaluation run, as the evaluate stage writes them.

Each function returns the run file's metric keys for one ranking: Hamming ranking of
binary codes (`hamming_metrics`), Euclidean ranking of real-valued features
(`euclidean_metrics`), cosine ranking of a sparse TF-IDF bag of words through the
inverted index (`cosine_bow_metrics`). `cfg` is the `evaluation` params block (tie
rule, cut-offs, query batch); `k_map` the mAP@K cut-off of the split (`map_cutoff`),
None for none. The protocols and tie rules are those of `evaluation.ranking`; relevance
is one of its relevance objects (`relevance_from_labels`, `relevance_from_groundtruth`).
"""

from __future__ import annotations

import numpy as np

from ..codes import hamming, to_words
from ..io import PseudosupError
from . import ranking as R

# --- relevance -------------------------------------------------------------------------

def relevance_from_labels(labels: np.ndarray, q, db, relevance: str, label_columns=None, where: object = "split",
                          dataset: str = "?"):
    """ClassRelevance (relevance 'class') or MultiLabelRelevance ('multilabel') of the
    queries `q` and database `db` from the items' labels; `label_columns` keeps only
    those columns of multi-hot labels. `where` (the split file) and `dataset` name the
    inputs in errors."""
    labels = np.asarray(labels)
    if relevance == "class":
        return R.ClassRelevance(labels[q], labels[db])
    if labels.ndim != 2:
        raise PseudosupError(f"{where}: relevance 'multilabel' needs multi-hot labels (n, L); dataset "
                             f"'{dataset}' gives shape {labels.shape}")
    if label_columns is not None:
        labels = labels[:, np.asarray(label_columns)]
    return R.MultiLabelRelevance(labels[q], labels[db])


def relevance_from_groundtruth(gt, Xq, Xdb, k: int, threads: int = 1, where: object = "split",
                               dataset: str = "?"):
    """ListRelevance of the queries' top-`k` neighbours: the first `k` columns of the
    ground-truth table `gt` (one row per query), or, when `gt` is None or not a table,
    the exact Euclidean top-`k` of the features (ties by database index)."""
    if gt is None or np.ndim(gt) != 2:
        return R.ListRelevance(R.euclidean_ground_truth(Xq, Xdb, k, threads=threads), len(Xdb))
    gt = np.asarray(gt)
    if gt.shape[1] < k:
        raise PseudosupError(f"evaluation.groundtruth_k = {k} but the ground-truth file of '{dataset}' has "
                             f"only {gt.shape[1]} neighbours per query; use at most {gt.shape[1]}")
    if len(gt) != len(Xq):
        raise PseudosupError(f"{where}: {len(Xq)} queries but the ground truth of '{dataset}' has "
                             f"{len(gt)} rows")
    return R.ListRelevance(gt[:, :k], len(Xdb))


def map_cutoff(split_extra: dict | None, cfg: dict):
    """mAP@K cut-off: the split's own `map_at` (its `extra`), else `evaluation.map_at`."""
    return (split_extra or {}).get("map_at") or cfg.get("map_at")


# --- Hamming ranking -------------------------------------------------------------------

def hamming_metrics(qc, dbc, bits: int, rel, cfg: dict, threads: int = 1, k_map=None) -> dict:
    """Metrics of the Hamming ranking of the database codes `dbc` for the query codes
    `qc` (packed bits): mAP, precision@K, mAP@K, the precision@N curve, precision and
    recall within the Hamming radius, the precision-recall curve over all radii and,
    for multi-label relevance, NDCG / ACG / weighted mAP / precision at their cut-offs."""
    rule, r = cfg["tie_rule"], cfg["hamming_radius"]
    graded = isinstance(rel, R.MultiLabelRelevance)
    counts = R.level_histograms(qc, dbc, bits, rel, threads) if graded else None
    by_index = None
    if graded:
        total, hits = counts.sum(axis=2), counts[:, :, 1:].sum(axis=2)
    elif rule == "index" and isinstance(rel, (R.ClassRelevance, R.ListRelevance)):
        # one pass gives AP, every precision cut-off and the histograms (10,000 queries x
        # 1M codes: one scan instead of one per cut-off)
        ks = [cfg["precision_at"], *cfg["precision_curve_at"]]
        ap, pks, total, hits = R.hamming_index_pass(qc, dbc, rel, ks, bits, threads)
        cols = [np.ascontiguousarray(pks[:, c]) for c in range(len(ks))]   # the same sums as one k at a time
        by_index = (ap, cols[0], [float(c.mean()) for c in cols[1:]])
    else:
        total, hits = R.hamming_histograms(qc, dbc, bits, rel, cfg["query_batch"], threads)
    out = _binary_metrics(qc, dbc, total, hits, rel, cfg, threads, k_map, by_index)
    precision, recall = R.radius_curves(total, hits)
    out.update({"precision_radius": float(R.precision_within_radius(total, hits, r).mean()),
                "recall_radius": float(recall[min(r, bits)]), "radius": r,
                "pr_curve": {"precision": precision.round(6).tolist(), "recall": recall.round(6).tolist()}})
    if graded:
        ks = _graded_ks(cfg)
        g = R.hamming_graded_by_index(qc, dbc, rel, cfg["query_batch"], **ks) if rule == "index" else \
            R.graded_metrics(counts, rule=rule, **ks)
        out.update(_graded_out(g, ks))
    return out


def _binary_metrics(qc, dbc, total, hits, rel, cfg, threads, k_map, by_index=None) -> dict:
    """`by_index`: (ap, precision@K, precision curve) of the index rule when already computed."""
    k, rule = cfg["precision_at"], cfg["tie_rule"]
    curve_at = list(cfg["precision_curve_at"])
    if by_index is not None:
        ap, pk, curve = by_index
        m_at = _map_at_by_index(qc, dbc, rel, k_map, cfg) if k_map else None
    elif rule == "index":
        ap, pk = R.hamming_ranking_by_index(qc, dbc, rel, k, cfg["query_batch"], threads)
        curve = [float(R.hamming_ranking_by_index(qc, dbc, rel, n, cfg["query_batch"], threads)[1].mean())
                 for n in curve_at]
        m_at = _map_at_by_index(qc, dbc, rel, k_map, cfg) if k_map else None
    else:
        ap = R.ap_from_histograms(total, hits, rule)
        pk = R.precision_at_k_from_histograms(total, hits, k, rule)
        curve = R.precision_curve(total, hits, curve_at, rule).tolist()
        m_at = float(R.map_at_k(total, hits, int(k_map), rule).mean()) if k_map else None
    out = {"map": float(ap.mean()), "precision_at_k": float(pk.mean()), "k": k,
           "precision_curve": {"n": curve_at, "precision": [round(float(c), 6) for c in curve]}}
    if m_at is not None:
        out.update(map_at_k=m_at, map_at=int(k_map))
    return out


def _map_at_by_index(qc, dbc, rel, k_map, cfg) -> float:
    qw, dbw = to_words(qc), to_words(dbc)
    vals = []
    for q0 in range(0, len(qw), cfg["query_batch"]):
        q1 = min(q0 + cfg["query_batch"], len(qw))
        order = np.argsort(hamming(qw[q0:q1], dbw), axis=1, kind="stable")
        ranked = np.take_along_axis(rel.mask(q0, q1), order, axis=1)
        vals.append(R.ranked_metrics(ranked, 1, int(k_map))["map_at_k"])
    return float(np.concatenate(vals).mean())


def _graded_ks(cfg) -> dict:
    return {"k_ndcg": cfg["ndcg_at"], "k_acg": cfg["acg_at"], "k_wap": cfg["wap_at"],
            "k_precision": cfg["multilabel_precision_at"]}


def _graded_out(g, ks) -> dict:
    return {"ndcg": float(g["ndcg"].mean()), "acg": float(g["acg"].mean()), "wap": float(g["wap"].mean()),
            "precision_top": float(g["precision"].mean()),
            "graded_at": {"ndcg": ks["k_ndcg"], "acg": ks["k_acg"], "wap": ks["k_wap"], "precision": ks["k_precision"]}}


# --- real-valued rankings --------------------------------------------------------------

def euclidean_metrics(Xq, Xdb, rel, cfg: dict, k_map=None) -> dict:
    """Metrics of the Euclidean ranking of the features (float32 squared L2)."""
    db = np.ascontiguousarray(Xdb, dtype=np.float32)
    db_sq = (db ** 2).sum(1)
    q = np.ascontiguousarray(Xq, dtype=np.float32)
    return distance_metrics(lambda a, b: R.squared_l2(q[a:b], db, db_sq), len(q), rel, cfg, k_map)


def cosine_bow_metrics(G, q, db, rel, cfg: dict, k_map=None) -> dict:
    """Metrics of the cosine ranking of the L2-normalised TF-IDF rows `G` (CSR, one row
    per item) through the inverted index, with the fraction of zero-score pairs (ties)."""
    from ..features.sparse import InvertedIndex

    index, Gq = InvertedIndex(G[db]), G[q]
    zero, seen = [0], set()

    def dist(a, b):
        s = index.scores(Gq[a:b])
        if a not in seen:  # some metrics rank each block twice; count each pair once
            seen.add(a)
            zero[0] += int((s <= 0).sum())
        return -s

    out = distance_metrics(dist, len(q), rel, cfg, k_map)
    out.update(ranking="cosine of L2-normalised TF-IDF, inverted index", n_words=int(G.shape[1]),
               nnz_per_item=round(float(G.nnz / max(1, G.shape[0])), 2),
               zero_score_fraction=round(zero[0] / max(1, len(q) * len(db)), 6))
    return out


def distance_metrics(dist, nq: int, rel, cfg: dict, k_map=None) -> dict:
    """mAP, precision@K (and mAP@K, or the graded metrics) of the ranking by `dist(q0, q1)`.
    Ties (equal distances: duplicates, the zero similarities of a sparse bag of words)
    follow `evaluation.tie_rule`, as for Hamming ranking; the graded multi-label
    metrics break them by database index."""
    k = cfg["precision_at"]
    graded = isinstance(rel, R.MultiLabelRelevance)
    m = R.tie_aware_metrics_by_distance(dist, nq, rel, k, cfg["tie_rule"], cfg["query_batch"],
                                        None if graded else k_map)
    out = {"map": float(m["ap"].mean()), "precision_at_k": float(m["precision_at_k"].mean()), "k": k}
    if graded:
        ks = _graded_ks(cfg)
        out.update(_graded_out(R.graded_by_distance(dist, nq, rel, cfg["query_batch"], **ks), ks))
    elif k_map:
        out.update(map_at_k=float(m["ap_at_k"].mean()), map_at=int(k_map))
    return out
