"""The retrieval task of the cross-feature (CIE) experiments, shared by the cie,
finetune, evaluate-retrieval and plot-cie stages: which items are indexed, how
retrieval is scored (class labels of a split, or an instance protocol of the dataset's
ground truth), and the similarity scores of every method compared.

A stage declares the task's options with `add_task_args(parser)` and reads them with
`TaskSource.from_args(args)`; nothing else here knows about the command line. Imports
are deferred so that declaring the options stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..io import PseudosupError

# the methods evaluate-retrieval compares, in table / figure order
LABELS = {"sift": "SIFT-only (BoW inverted index)", "cnn": "CNN-only (pretrained)",
          "fusion": "late fusion (score sum)", "cie": "CIE (embedded CNN index)",
          "cie-embedded-queries": "CIE, queries embedded too (transductive)", "finetuned": "fine-tuned CNN",
          "cnn-aqe": "CNN + alpha-QE", "cnn-dba-aqe": "CNN + DBA + alpha-QE", "cnn-diffusion": "CNN + diffusion",
          "cnn-diffusion-truncated": "CNN + truncated diffusion (Yang et al.)",
          "cnn-k-reciprocal": "CNN + k-reciprocal re-ranking", "cie-diffusion": "CIE + diffusion",
          "cnn-collab-diffusion": "CNN graph + mined SIFT pairs, diffusion (collaborative; ours)"}
# label-free refinements of the CNN / CIE index (methods/refine.py), params retrieval.refine.methods
REFINEMENTS = ("aqe", "dba-aqe", "diffusion", "diffusion-truncated", "k-reciprocal", "cie-diffusion",
               "collab-diffusion")


def add_task_args(p) -> None:
    """The options naming the indexed items and (optionally) how retrieval is scored."""
    p.add_argument("--dataset", default=None, help="dataset name (for the scoring protocol)")
    p.add_argument("--raw", type=Path, default=None, help="the dataset's raw directory")
    p.add_argument("--split", type=Path, default=None,
                   help="split file: index its database part, score its queries (class relevance)")
    p.add_argument("--protocol", default=None,
                   help="instance protocol of the dataset's ground truth (e.g. variants, multiview); "
                        "default: class labels of the split, or the dataset's own ground truth")


@dataclass(frozen=True)
class TaskSource:
    """Where the task comes from: a split file (class relevance), or the dataset's
    ground truth (`protocol`, None for its default); without dataset and raw directory
    only the indexed items are known."""

    dataset: str | None = None
    raw: Path | None = None
    split: Path | None = None
    protocol: str | None = None

    @classmethod
    def from_args(cls, args) -> "TaskSource":
        """From the options `add_task_args` declared."""
        return cls(args.dataset, args.raw, args.split, args.protocol)

    def with_protocol(self, protocol: str) -> "TaskSource":
        return replace(self, protocol=protocol)


def build_task(source: TaskSource, n_items: int, dataset: str | None = None):
    """(database item indices, RetrievalTask or None) for inputs of `n_items` rows, one
    per item of `dataset` (their sidecars' dataset): the split must be of that dataset
    and the split / ground truth index only those rows."""
    from ..data import instance_bench, registry  # noqa: F401 (registers copydays-style-synth)
    from ..evaluation.protocols import RetrievalTask, task_from_groundtruth
    from ..provenance import check_split_items

    rows = f"the inputs have {n_items} rows (one per item)"
    if source.split is not None:
        from ..data.splits import load_split

        split = load_split(source.split)
        for want in {dataset, source.dataset} - {None}:
            if split.dataset != want:
                raise PseudosupError(f"{source.split}: split of dataset '{split.dataset}', but the inputs are items "
                                     f"of '{want}'; use a split of '{want}'")
        check_split_items(split, source.split, n_items, rows)
        db = split.part("database")
        if source.dataset is None or source.raw is None:
            return db, None
        labels = registry.get(source.dataset).labels(source.raw)
        if len(labels) != n_items:
            raise PseudosupError(f"dataset '{source.dataset}' has {len(labels)} labelled items in {source.raw} but "
                                 f"{rows}; give inputs computed on this dataset")
        q = split.part("queries")
        return db, RetrievalTask(split.name, "class", q, db, query_labels=labels[q], db_labels=labels[db])
    db = np.arange(n_items, dtype=np.int64)
    if source.dataset is None or source.raw is None:
        if source.protocol:
            raise PseudosupError("--protocol needs --dataset and --raw")
        return db, None
    ds = registry.get(source.dataset)
    if ds.num_items(source.raw) != n_items:
        raise PseudosupError(f"dataset '{source.dataset}' has {ds.num_items(source.raw)} items in {source.raw} but "
                             f"{rows}; give inputs computed on this dataset")
    # "default": the dataset's own (official) ground truth, for datasets with one protocol
    named = source.protocol and source.protocol != "default"
    gt = ds.groundtruth(source.raw, source.protocol) if named else ds.groundtruth(source.raw)
    parts = ds.parts(source.raw)
    if "database" in parts:
        db = np.arange(*parts["database"], dtype=np.int64)
    return db, task_from_groundtruth(f"{source.dataset}/{source.protocol or 'default'}", gt, db)


def task_record(source: TaskSource) -> dict:
    """What the indexed items / the protocol were, for the outputs' records."""
    from ..provenance import split_record

    if source.split is not None:
        from ..data.splits import load_split

        return split_record(load_split(source.split), source.split)
    return {"protocol": source.protocol}


def iteration_scorer(task, G, X, db):
    """Callback scoring the CNN index after each CIE iteration (queries' original
    vectors; also their embedded vectors when they are database items) and the
    embedded BoW."""
    from ..mining.features_io import rows
    from ..mining.knn import normalise_dense

    q_cnn = normalise_dense(rows(X, task.queries))
    q_bow = rows(G, task.queries)
    in_db = task.query_pos >= 0

    def score(t, Xt, Gt):
        out = {"map_cie": task.evaluate(q_cnn @ Xt.T)[0]["map"],
               "map_sift_embedded": task.evaluate((q_bow @ Gt.T).toarray())[0]["map"]}
        if in_db.all():
            out["map_cie_embedded_queries"] = task.evaluate(Xt[task.query_pos] @ Xt.T)[0]["map"]
        return out
    return score


def epoch_scorer(task):
    """Callback scoring fine-tuned descriptors F (one row per item) after each epoch."""
    def score(epoch, F):
        return {"map": task.evaluate(F[task.queries] @ F[task.database].T)[0]["map"]}
    return score


def score_all(task, G, X, E=None, F=None, fusion_weight: float = 1.0, refine: dict | None = None,
              threads: int = 1) -> dict:
    """{method: (scores (nq, n_db), bytes per image)}: every entry of iter_scores."""
    return dict(iter_scores(task, G, X, E, F, fusion_weight, refine, threads))


def iter_scores(task, G, X, E=None, F=None, fusion_weight: float = 1.0, refine: dict | None = None,
                threads: int = 1, pairs=None):
    """(method, (scores (nq, n_db), bytes per image)) for the available inputs, one at a
    time (a caller that scores and drops each holds a few (nq, n_db) matrices, not one per
    method: 10,200 x 10,200 on UKBench is 0.4 GB each): the bag of words G, the CNN
    features X, the CIE-embedded index E (database rows), the fine-tuned features F;
    cosine similarity everywhere. `refine` (params retrieval.refine) adds the refinements
    it names in `methods`; `pairs` ((m, 2) database positions of mined, verified pairs)
    feed collaborative diffusion, those touching a query dropped (online_pairs)."""
    from ..mining.features_io import rows
    from ..mining.knn import normalise_dense
    from .cie import bytes_per_image

    q, db = task.queries, task.database
    Gq, Gdb = rows(G, q), rows(G, db)
    Xq, Xdb = normalise_dense(rows(X, q)), normalise_dense(rows(X, db))
    b_sift = bytes_per_image("sparse", len(db), nnz=Gdb.nnz)
    b_cnn = bytes_per_image("dense", len(db), dim=Xdb.shape[1])
    s_sift, s_cnn = (Gq @ Gdb.T).toarray(), Xq @ Xdb.T
    yield "sift", (s_sift, b_sift)
    yield "cnn", (s_cnn, b_cnn)
    fused = s_sift + fusion_weight * s_cnn  # a new matrix: score_all's callers keep "sift"
    del s_sift, s_cnn
    yield "fusion", (fused, b_sift + b_cnn)
    del fused
    if E is not None:
        E = normalise_dense(E)
        b_cie = bytes_per_image("dense", len(db), dim=E.shape[1])
        yield "cie", (Xq @ E.T, b_cie)
        if (task.query_pos >= 0).all():
            yield "cie-embedded-queries", (E[task.query_pos] @ E.T, b_cie)
    if F is not None:
        Fq, Fdb = normalise_dense(rows(F, q)), normalise_dense(rows(F, db))
        yield "finetuned", (Fq @ Fdb.T, bytes_per_image("dense", len(db), dim=Fdb.shape[1]))
    if refine and refine.get("methods"):
        yield from refined_scores(Xq, Xdb, E, refine, threads, None if pairs is None else online_pairs(task, pairs))


def needs_pairs(refine: dict | None) -> bool:
    """Whether params retrieval.refine asks for a method that needs mined pairs."""
    return "collab-diffusion" in (refine or {}).get("methods", [])


def database_pairs(path, db) -> np.ndarray:
    """The mined pairs of a `mine-cross` file as (m, 2) positions in the database `db`
    (item ids): those that passed geometric verification where it ran (a file may keep
    the others: cross_mining.verify.drop_unverified false), else all. Every pair must
    join two database items (mining ran on the database)."""
    from ..io import PseudosupError, load_npz

    _, arrays = load_npz(path)
    if "item_ids" not in arrays:
        raise PseudosupError(f"{path}: no `item_ids` array; give the pairs of `pseudosup mine-cross`")
    ids = np.asarray(arrays["item_ids"])
    if ids.ndim != 2 or ids.shape[1] != 2 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise PseudosupError(f"{path}: `item_ids` has shape {ids.shape} ({ids.dtype}), expected integer (pairs, 2)")
    if "verified" in arrays:
        keep = np.asarray(arrays["verified"])
        if keep.shape != (len(ids),):
            raise PseudosupError(f"{path}: `verified` has shape {keep.shape}, expected ({len(ids)},); rerun "
                                 f"`snakemake -R {path}`")
        ids = ids[keep.astype(bool)]
    db = np.asarray(db, dtype=np.int64)
    bad = ids.size and (ids.min() < 0 or ids.max() > db.max(initial=-1))
    pos = np.full(int(db.max(initial=-1)) + 1, -1, dtype=np.int64)
    pos[db] = np.arange(len(db))
    out = np.full(ids.shape, -1, dtype=np.int64) if bad else pos[ids]
    if ids.size and (out < 0).any():
        raise PseudosupError(f"{path}: pairs reference items outside the indexed database; mine them with the "
                             f"same split or protocol (`snakemake -R {path}`)")
    return out


def online_pairs(task, pairs: np.ndarray) -> np.ndarray:
    """The pairs that touch no query: where the queries are database items (instance
    protocols), a query's own mined pairs would tell the graph about the query itself
    (transductive); the online setting, like the CIE row, must not use them."""
    in_db = task.query_pos[task.query_pos >= 0]
    return pairs[~np.isin(pairs, in_db).any(axis=1)] if len(in_db) else pairs


def _solves_logged(done: int, total: int) -> None:
    from ..log import log

    log.info("truncated diffusion: %d / %d offline solves", done, total)


def refined_scores(Xq, Xdb, E, refine: dict, threads: int = 1, pairs=None):
    """The refinements named in refine["methods"] (REFINEMENTS), as iter_scores' entries
    "cnn-<name>" / "cie-diffusion". Index size: the dense vectors plus, for the methods
    that keep a graph online (diffusion, k-reciprocal), 8 bytes (id + weight) per stored
    neighbour (collaborative diffusion: the kNN bound plus the pairs' two ends per item);
    truncated diffusion stores each item's offline row (8 bytes per entry)."""
    from ..io import PseudosupError
    from ..mining.knn import normalise_dense
    from .cie import bytes_per_image
    from .refine import RefineSettings, alpha_qe, dba, diffusion_scores, k_reciprocal_scores, truncated_diffusion_scores

    names = list(refine["methods"])
    unknown = sorted(set(names) - set(REFINEMENTS))
    if unknown:
        raise PseudosupError(f"retrieval.refine.methods: {unknown} not among {list(REFINEMENTS)}")
    s = RefineSettings(**{k: v for k, v in refine.items() if k != "methods"})
    dense = bytes_per_image("dense", len(Xdb), dim=Xdb.shape[1])
    for name in names:
        if name == "aqe":
            yield "cnn-aqe", (alpha_qe(Xq, Xdb, s.qe_k, s.qe_alpha, threads) @ Xdb.T, dense)
        elif name == "dba-aqe":
            D = dba(Xdb, s.dba_k, s.dba_alpha, threads)
            yield "cnn-dba-aqe", (alpha_qe(Xq, D, s.qe_k, s.qe_alpha, threads) @ D.T, dense)
        elif name == "diffusion":
            yield "cnn-diffusion", (diffusion_scores(Xq, Xdb, s, threads), dense + 8 * s.diffusion_k)
        elif name == "diffusion-truncated":  # stores each item's offline row online
            stored = min(s.diffusion_truncation, len(Xdb))
            scores = truncated_diffusion_scores(Xq, Xdb, s, threads, progress=_solves_logged)
            yield "cnn-diffusion-truncated", (scores, dense + 8 * stored)
        elif name == "k-reciprocal":
            yield "cnn-k-reciprocal", (k_reciprocal_scores(Xq, Xdb, s, threads), dense + 8 * s.kr_k1)
        elif name == "collab-diffusion":
            if pairs is None:
                raise PseudosupError("retrieval.refine.methods: collab-diffusion needs the mined pairs "
                                     "(evaluate-retrieval --pairs); remove it or give them")
            extra = 8 * 2 * len(pairs) / len(Xdb)
            yield "cnn-collab-diffusion", (diffusion_scores(Xq, Xdb, s, threads, pairs), dense + 8 * s.diffusion_k + extra)
        elif E is not None:  # cie-diffusion: the CIE-embedded index, queries' original vectors
            E = normalise_dense(E)
            yield "cie-diffusion", (diffusion_scores(Xq, E, s, threads), dense + 8 * s.diffusion_k)
