"""Compiled Hamming-ranking kernels (numba): per-distance histograms without sorting.

Ranking a million codes per query by sorting costs O(n log n) and a lot of memory
traffic. Every order-independent metric only needs, per query, how many database
items (and how many relevant ones, or how many at each relevance level) lie at each
Hamming distance 0..nbits: one pass of XOR + popcount + counter increment per pair.
The `index` tie rule (ties by database position) is also one pass: scanning the
database in index order, an item's rank inside its distance group is the running
count of that group, so its final position is known once the histogram is complete.

The database is scanned in tiles that stay in cache while a block of queries reuses
them; query blocks run in parallel (numba `prange`, threads = numba.set_num_threads).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

DB_TILE = 16384   # database codes per tile (128 KiB of 64-bit words at 64 bits)
Q_TILE = 8        # queries sharing one pass over a tile


@intrinsic
def _popcount(typingctx, x):
    """LLVM ctpop on a uint64 (compiles to the POPCNT instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [args[0].type])
        return builder.call(fn, args)

    return sig, codegen


@njit(inline="always")
def _distance(qw, i, dbw, j):
    d = 0
    for w in range(qw.shape[1]):
        d += _popcount(qw[i, w] ^ dbw[j, w])
    return d


@njit(parallel=True, cache=True)
def histograms_by_label(qw, dbw, q_labels, db_labels, nbits):
    """(total, relevant) counts per distance; relevant = same label (labels < 0 never match)."""
    nq, ndb = qw.shape[0], dbw.shape[0]
    total = np.zeros((nq, nbits + 1), np.int64)
    rel = np.zeros((nq, nbits + 1), np.int64)
    nblocks = (nq + Q_TILE - 1) // Q_TILE
    for b in prange(nblocks):
        q0 = b * Q_TILE
        q1 = min(q0 + Q_TILE, nq)
        for t0 in range(0, ndb, DB_TILE):
            t1 = min(t0 + DB_TILE, ndb)
            for i in range(q0, q1):
                ql = q_labels[i]
                for j in range(t0, t1):
                    d = _distance(qw, i, dbw, j)
                    total[i, d] += 1
                    if db_labels[j] == ql and ql >= 0:
                        rel[i, d] += 1
    return total, rel


@njit(parallel=True, cache=True)
def histograms_by_list(qw, dbw, rel_idx, nbits):
    """(total, relevant) counts per distance; relevant = the query's row of `rel_idx`
    (distinct database indices, -1 = padding)."""
    nq, ndb = qw.shape[0], dbw.shape[0]
    total = np.zeros((nq, nbits + 1), np.int64)
    rel = np.zeros((nq, nbits + 1), np.int64)
    nblocks = (nq + Q_TILE - 1) // Q_TILE
    for b in prange(nblocks):
        q0 = b * Q_TILE
        q1 = min(q0 + Q_TILE, nq)
        for t0 in range(0, ndb, DB_TILE):
            t1 = min(t0 + DB_TILE, ndb)
            for i in range(q0, q1):
                for j in range(t0, t1):
                    total[i, _distance(qw, i, dbw, j)] += 1
        for i in range(q0, q1):
            for m in range(rel_idx.shape[1]):
                j = rel_idx[i, m]
                if j >= 0:
                    rel[i, _distance(qw, i, dbw, j)] += 1
    return total, rel


@njit(parallel=True, cache=True)
def histograms_by_level(qw, dbw, q_masks, db_masks, nbits, max_level):
    """Counts per (distance, level), level = shared labels = popcount(q_mask & db_mask)
    (labels as bit masks, up to 64 labels), capped at max_level. (nq, nbits+1, max_level+1)."""
    nq, ndb = qw.shape[0], dbw.shape[0]
    out = np.zeros((nq, nbits + 1, max_level + 1), np.int64)
    for i in prange(nq):
        qm = q_masks[i]
        for j in range(ndb):
            lev = np.int64(_popcount(qm & db_masks[j]))
            if lev > max_level:
                lev = max_level
            out[i, np.int64(_distance(qw, i, dbw, j)), lev] += 1
    return out


@njit(parallel=True, cache=True)
def ap_index_rule(qw, dbw, q_labels, db_labels, rel_idx, nbits, ks):
    """AP over the full ranking and precision at each of `ks`, ties by database index (a
    stable sort by distance), with the (total, relevant) per-distance histograms of the
    same pass. Relevance: same label when `rel_idx` has no columns, else the listed indices.
    Returns ap (nq,), precision (nq, len(ks)), total and relevant (nq, nbits + 1).

    One scan in index order gives each relevant item its distance d, its rank among items
    at distance d with a smaller index, and the same among relevant items; with the
    finished histograms, its position is  (items closer) + (rank in group) + 1. Every
    cut-off and both histograms come from that one pass (a 1M database is scanned once
    per query, not once per cut-off).
    """
    nq, ndb = qw.shape[0], dbw.shape[0]
    by_list = rel_idx.shape[1] > 0
    ap = np.zeros(nq)
    pk = np.zeros((nq, ks.shape[0]))
    total = np.zeros((nq, nbits + 1), np.int64)
    hits = np.zeros((nq, nbits + 1), np.int64)
    # relevant items per query: at most the list's width, else the whole database
    cap = rel_idx.shape[1] if by_list else ndb
    for i in prange(nq):
        mark = np.zeros(ndb if by_list else 0, np.bool_)
        if by_list:
            for m in range(rel_idx.shape[1]):
                if rel_idx[i, m] >= 0:
                    mark[rel_idx[i, m]] = True
        run = total[i]
        run_rel = hits[i]
        dists = np.empty(cap, np.int64)
        within = np.empty(cap, np.int64)
        within_rel = np.empty(cap, np.int64)
        nrel = 0
        for j in range(ndb):
            d = _distance(qw, i, dbw, j)
            is_rel = mark[j] if by_list else (db_labels[j] == q_labels[i] and q_labels[i] >= 0)
            if is_rel:
                dists[nrel] = d
                within[nrel] = run[d]
                within_rel[nrel] = run_rel[d]
                run_rel[d] += 1
                nrel += 1
            run[d] += 1
        if nrel == 0:
            continue
        before = np.zeros(nbits + 1, np.int64)
        before_rel = np.zeros(nbits + 1, np.int64)
        for d in range(1, nbits + 1):
            before[d] = before[d - 1] + run[d - 1]
            before_rel[d] = before_rel[d - 1] + run_rel[d - 1]
        s = 0.0
        for m in range(nrel):
            pos = before[dists[m]] + within[m] + 1
            s += (before_rel[dists[m]] + within_rel[m] + 1) / pos
            for c in range(ks.shape[0]):
                if pos <= min(ks[c], ndb):
                    pk[i, c] += 1.0
        ap[i] = s / nrel
        for c in range(ks.shape[0]):
            kk = min(ks[c], ndb)
            pk[i, c] = pk[i, c] / kk if kk > 0 else 0.0
    return ap, pk, total, hits
