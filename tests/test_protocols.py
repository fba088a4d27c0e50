"""Instance-retrieval protocols against their published definitions on constructed cases."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pseudosup.evaluation import protocols as P
from pseudosup.evaluation.ranking import ClassRelevance, euclidean_metrics
from pseudosup.io import PseudosupError

from .conftest import SHARED


def pr_walk_trapezoid(ranking_is_positive: np.ndarray, nres: int) -> float:
    """Brute force: walk the ranking; at every positive add the trapezoid between the
    precision before it (1 at the very top) and after it, width 1/nres."""
    area, tp = 0.0, 0
    for n_seen, is_pos in enumerate(ranking_is_positive):
        if is_pos:
            before = 1.0 if n_seen == 0 else tp / n_seen
            after = (tp + 1) / (n_seen + 1)
            area += (before + after) / 2 / nres
            tp += 1
    return area


def test_trapezoid_ap_hand_values():
    assert P.trapezoid_ap([0, 1, 2], 3) == 1.0
    assert P.trapezoid_ap([1], 1) == pytest.approx(0.25)          # (0/1 + 1/2) / 2
    assert P.trapezoid_ap([0, 2], 2) == pytest.approx((1 + 1) / 4 + (1 / 2 + 2 / 3) / 4)
    assert P.trapezoid_ap([0], 2) == pytest.approx(0.5)          # a positive never retrieved adds 0
    with pytest.raises(PseudosupError):
        P.trapezoid_ap([], 0)


def test_trapezoid_ap_matches_pr_walk_on_random_rankings():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 60))
        is_pos = rng.random(n) < rng.uniform(0.05, 0.6)
        if not is_pos.any():
            continue
        ranks = np.flatnonzero(is_pos)
        assert P.trapezoid_ap(ranks, is_pos.sum()) == pytest.approx(pr_walk_trapezoid(is_pos, is_pos.sum()))
        # plain (non-interpolated) AP by its definition
        prec = np.cumsum(is_pos)[is_pos] / (ranks + 1)
        assert P.plain_ap(ranks, is_pos.sum()) == pytest.approx(prec.mean())


def holidays_brute(order_row: np.ndarray, query: int, groups: np.ndarray) -> float:
    ranking = [i for i in order_row if i != query]  # the query is ignored in the scoring
    is_pos = np.array([groups[i] == groups[query] for i in ranking])
    return pr_walk_trapezoid(is_pos, int(is_pos.sum()))


def test_holidays_query_excluded_and_matches_brute_force():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(12), rng.integers(2, 5, 12))
    n = len(groups)
    queries = np.array([np.flatnonzero(groups == g)[0] for g in range(12)])  # first image of each group
    scores = rng.standard_normal((12, n))
    order = P.rank_by_scores(scores)
    m, aps = P.holidays_map(order, queries, groups)
    for q, item in enumerate(queries):
        assert aps[q] == pytest.approx(holidays_brute(order[q], item, groups))
    assert m == pytest.approx(aps.mean())
    # a perfect ranking with the query itself first, or anywhere, scores 1
    perfect = np.array([np.concatenate([[i], np.setdiff1d(np.flatnonzero(groups == groups[i]), [i]),
                                        np.flatnonzero(groups != groups[i])]) for i in queries])
    assert P.holidays_map(perfect, queries, groups)[0] == 1.0
    moved = perfect.copy()
    moved[:, :2] = moved[:, [1, 0]]  # query second: still ignored
    assert P.holidays_map(moved, queries, groups)[0] == 1.0


def oxford_brute(order_row, ok, junk) -> float:
    ranking = [i for i in order_row if i not in set(junk) or i in set(ok)]
    is_pos = np.isin(ranking, ok)
    return pr_walk_trapezoid(is_pos, len(ok))


def test_oxford_junk_removed_matches_brute_force():
    rng = np.random.default_rng(2)
    n = 80
    gnd = []
    for _ in range(10):
        perm = rng.permutation(n)
        gnd.append({"ok": perm[:rng.integers(1, 8)], "junk": perm[10:10 + rng.integers(0, 6)],
                    "bbx": [0, 0, 1, 1]})
    gnd.append({"ok": np.array([], dtype=int), "junk": np.array([3]), "bbx": [0, 0, 1, 1]})  # no positives
    order = P.rank_by_scores(rng.standard_normal((len(gnd), n)))
    m, aps = P.oxford_map(order, gnd)
    for q, g in enumerate(gnd[:-1]):
        assert aps[q] == pytest.approx(oxford_brute(order[q], g["ok"], g["junk"]))
    assert np.isnan(aps[-1]) and m == pytest.approx(aps[:-1].mean())  # skipped, not 0


def test_oxford_junk_anywhere_does_not_change_ap():
    ok, junk = np.array([0, 1, 2]), np.array([3, 4])
    others = np.arange(5, 20)
    base = np.concatenate([[0], others[:2], [1, 2], others[2:], junk])
    junk_first = np.concatenate([junk, [0], others[:2], [1, 2], others[2:]])
    a = P.oxford_map(base[None], [{"ok": ok, "junk": junk}])[0]
    b = P.oxford_map(junk_first[None], [{"ok": ok, "junk": junk}])[0]
    assert a == b == pytest.approx(P.trapezoid_ap([0, 3, 4], 3))


def test_ukbench_ns_score():
    groups = np.repeat(np.arange(5), 4)
    queries = np.arange(20)
    perfect = np.array([np.concatenate([np.flatnonzero(groups == groups[q]), np.flatnonzero(groups != groups[q])])
                        for q in queries])
    assert P.ukbench_ns(perfect, queries, groups)[0] == 4.0
    worst = np.array([np.concatenate([np.flatnonzero(groups != groups[q]), np.flatnonzero(groups == groups[q])])
                      for q in queries])
    assert P.ukbench_ns(worst, queries, groups)[0] == 0.0
    rng = np.random.default_rng(3)
    order = P.rank_by_scores(rng.standard_normal((20, 20)))
    want = [sum(groups[j] == groups[q] for j in order[q][:4]) for q in queries]
    assert np.array_equal(P.ukbench_ns(order, queries, groups)[1], want)


def test_class_map_matches_ranking_module():
    rng = np.random.default_rng(4)
    q, db = rng.standard_normal((30, 6)).astype(np.float32), rng.standard_normal((200, 6)).astype(np.float32)
    ql, dl = rng.integers(0, 4, 30), rng.integers(0, 4, 200)
    d = ((q[:, None, :].astype(np.float64) - db[None]) ** 2).sum(-1)
    m, aps = P.class_map(P.rank_by_scores(-d), ql, dl)
    want, _ = euclidean_metrics(q, db, ClassRelevance(ql, dl), 10)
    assert aps == pytest.approx(want, abs=1e-9)


def test_class_map_excludes_query_in_database():
    labels = np.array([0, 0, 1, 1])
    order = np.array([[0, 1, 2, 3]])  # query 0 ranks itself first
    m, _ = P.class_map(order, labels[[0]], labels, query_items=np.array([0]))
    assert m == 1.0  # item 1 is then rank 1
    m2, _ = P.class_map(order, labels[[0]], labels)
    assert m2 == 1.0 and P.class_map(np.array([[2, 3, 1, 0]]), labels[[0]], labels, np.array([0]))[0] == pytest.approx(1 / 3)


def test_class_map_with_tie_rules_on_tied_scores():
    """Scores with many exact ties (a sparse BoW's zeros): `index` is class_map, the
    order-independent rules bracket it, and without ties every rule gives class_map."""
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 3, (12, 40)).astype(np.float64)  # 3 values: big tie groups
    ql, dl = rng.integers(0, 2, 12), rng.integers(0, 2, 40)
    by_index = P.class_map(P.rank_by_scores(scores), ql, dl)[1]
    got = {r: P.class_map_ties(scores, ql, dl, r)[1] for r in ("optimistic", "expected", "pessimistic", "index")}
    assert got["index"] == pytest.approx(by_index, abs=1e-12)
    assert (got["optimistic"] >= by_index - 1e-12).all() and (got["pessimistic"] <= by_index + 1e-12).all()
    assert (got["optimistic"] >= got["expected"] - 1e-12).all() and (got["expected"] >= got["pessimistic"] - 1e-12).all()
    assert got["optimistic"].mean() > got["pessimistic"].mean()
    # expected = the mean over random orders of the tied items (Monte Carlo, 400 orders)
    mc = np.mean([P.class_map(np.array([np.lexsort((rng.random(40), -s)) for s in scores]), ql, dl)[1]
                  for _ in range(400)], axis=0)
    assert got["expected"].mean() == pytest.approx(mc.mean(), abs=0.005)
    distinct = rng.standard_normal((12, 40))
    for r in ("optimistic", "expected", "pessimistic"):
        assert P.class_map_ties(distinct, ql, dl, r)[1] == pytest.approx(
            P.class_map(P.rank_by_scores(distinct), ql, dl)[1], abs=1e-12)
    # a query that is in the database leaves its own ranking, with any rule
    items = np.full(12, -1)
    items[0] = 3
    for r in ("optimistic", "index"):
        assert P.class_map_ties(distinct, ql, dl, r, items)[1][0] == pytest.approx(
            P.class_map(P.rank_by_scores(distinct), ql, dl, items)[1][0], abs=1e-12)


def test_mismatched_ground_truth_is_an_error():
    with pytest.raises(PseudosupError, match="ground truth does not match"):
        P.instance_aps(np.zeros((3, 5), int), [np.array([1])] * 2, [np.array([])] * 3)
    with pytest.raises(PseudosupError, match="lacks 'ok'"):
        P.oxford_map(np.zeros((1, 5), int), [{"good": [1]}])


@pytest.mark.shared_data
def test_real_oxford5k_ground_truth_and_metric():
    """The cnnimageretrieval gnd_oxford5k.pkl: layout, and the metric's extremes on it."""
    gnd = pickle.loads((SHARED / "oxford5k" / "gnd_oxford5k.pkl").read_bytes())
    assert len(gnd["imlist"]) == 5063 and len(gnd["qimlist"]) == 55 and len(gnd["gnd"]) == 55
    n = len(gnd["imlist"])
    for q, g in zip(gnd["qimlist"], gnd["gnd"]):
        assert len(g["bbx"]) == 4 and len(g["ok"]) > 0
        assert not set(g["ok"]) & set(g["junk"])
        assert gnd["imlist"].index(q) in set(g["ok"])  # the (uncropped) query image is a positive
    ideal = np.array([np.concatenate([g["ok"], g["junk"], np.setdiff1d(np.arange(n), np.r_[g["ok"], g["junk"]])])
                      for g in gnd["gnd"]])
    assert P.oxford_map(ideal, gnd["gnd"])[0] == 1.0
    junk_first = np.array([np.concatenate([g["junk"], g["ok"], np.setdiff1d(np.arange(n), np.r_[g["ok"], g["junk"]])])
                           for g in gnd["gnd"]])
    assert P.oxford_map(junk_first, gnd["gnd"])[0] == 1.0  # junk is removed, not counted as negative
    rng = np.random.default_rng(0)
    random = np.array([rng.permutation(n) for _ in gnd["gnd"]])
    m, aps = P.oxford_map(random, gnd["gnd"])
    chance = np.mean([len(g["ok"]) / (n - len(g["junk"])) for g in gnd["gnd"]])
    assert 0.3 * chance < m < 3 * chance  # a random ranking scores about the positives' share


def test_retrieval_task_instance_matches_holidays_and_ukbench():
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(6), 4)
    items = np.arange(24)
    queries = items[::4]
    ok = [np.setdiff1d(np.flatnonzero(groups == groups[q]), [q]) for q in queries]
    task = P.RetrievalTask("h", "instance", queries, items, ok, [np.array([], int)] * 6)
    scores = rng.standard_normal((6, 24))
    got, aps = task.evaluate(scores)
    want, _ = P.holidays_map(P.rank_by_scores(scores), queries, groups)
    assert got["map"] == pytest.approx(want)  # query in the database = junk for itself
    uk = P.RetrievalTask("u", "instance", items, items, [np.flatnonzero(groups == g) for g in groups],
                         [np.array([], int)] * 24, query_is_result=True)
    s2 = rng.standard_normal((24, 24))
    assert uk.evaluate(s2)[0]["ns_score"] == pytest.approx(P.ukbench_ns(P.rank_by_scores(s2), items, groups)[0])


def test_retrieval_task_maps_items_to_database_positions():
    # Oxford-like: queries are extra items (cropped copies) after the database
    db = np.arange(10)
    task = P.RetrievalTask("o", "instance", np.array([10, 11]), db, [np.array([2, 3]), np.array([5])],
                           [np.array([4]), np.array([], int)])
    assert (task.query_pos == -1).all()
    scores = np.zeros((2, 10))
    scores[0, [4, 2, 3]] = [3, 2, 1]  # junk first, then both positives
    scores[1, 5] = 1
    assert task.evaluate(scores)[0]["map"] == 1.0
    with pytest.raises(PseudosupError, match="not in the database"):
        P.RetrievalTask("o", "instance", np.array([10]), db, [np.array([12])], [np.array([], int)])
    with pytest.raises(PseudosupError, match="expected"):
        task.evaluate(np.zeros((2, 9)))


def test_retrieval_task_class_level():
    rng = np.random.default_rng(6)
    ql, dl = rng.integers(0, 3, 8), rng.integers(0, 3, 40)
    task = P.RetrievalTask("c", "class", np.arange(40, 48), np.arange(40), query_labels=ql, db_labels=dl)
    s = rng.standard_normal((8, 40))
    assert task.evaluate(s)[0]["map"] == pytest.approx(P.class_map(P.rank_by_scores(s), ql, dl)[0])


@pytest.mark.shared_data
def test_data_layer_oxford_loader_with_the_protocol(tmp_path):
    """The data layer's Oxford5k ground truth (queries = 55 cropped extra items) through
    RetrievalTask: the ideal ranking scores 1, junk placed first too, a random one ~ chance."""
    import shutil

    from pseudosup.data import registry

    raw = tmp_path / "oxford5k"
    raw.mkdir()
    shutil.copy(SHARED / "oxford5k" / "gnd_oxford5k.pkl", raw / "gnd_oxford5k.pkl")
    ds = registry.get("oxford5k")
    gt = ds.groundtruth(raw)
    db = np.arange(*ds.parts(raw)["database"])
    task = P.task_from_groundtruth("oxford5k", gt, db)
    assert len(task.queries) == 55 and len(db) == 5063 and (task.query_pos == -1).all()
    ideal = np.zeros((55, 5063))
    for q in range(55):
        ideal[q, task.junk[q]] = 2.0  # junk first: removed, not counted
        ideal[q, task.ok[q]] = 1.0
    assert task.evaluate(ideal)[0]["map"] == 1.0
    rng = np.random.default_rng(1)
    m = task.evaluate(rng.random((55, 5063)))[0]["map"]
    chance = np.mean([len(o) / (5063 - len(j)) for o, j in zip(task.ok, task.junk)])
    assert 0.3 * chance < m < 3 * chance
