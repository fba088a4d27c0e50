"""Score SIFT-only, CNN-only, late fusion, CIE and fine-tuned CNN side by side.

On one retrieval protocol (--split: class relevance of its queries / database; or the
dataset's instance ground truth, --protocol), with cosine similarity everywhere:

- sift:      the TF-IDF bag of words (inverted index), --bow
- cnn:       the pretrained CNN descriptors, --cnn
- fusion:    late fusion by score sum, sift + retrieval.fusion_weight x cnn
- cie:       queries' original CNN vectors against the CIE-embedded index (--cie;
             the online setting); and `cie-embedded-queries` when the queries are
             database images (transductive: their own embedded vectors)
- finetuned: the fine-tuned CNN descriptors (--finetuned), both sides
- label-free refinements named in params retrieval.refine.methods (methods/refine.py):
             alpha-QE, DBA + alpha-QE, diffusion and k-reciprocal re-ranking of the CNN
             index, diffusion on the CIE-embedded index, and collaborative diffusion
             (the CNN graph joined with the mined pairs of --pairs)

Each with mAP (trapezoid AP for instance protocols, ties by database index as their
reference code; non-interpolated for class level, equal scores ordered by params
`evaluation.tie_rule` - the SIFT bag of words gives many pairs a similarity of exactly 0;
UKBench adds the N-S score) and the index size in bytes per image (float32
dense vectors: 4 d; inverted index: 8 bytes per posting). Writes the run (.json, with
the dataset, the protocol or split, the inputs' sha256 and the machine) and a Markdown
table (--table). Every input is checked first: verified against its sidecar, all of
one dataset (--dataset), the CIE index of the same items as the task's database.
"""

from __future__ import annotations

from pathlib import Path

from ..methods.cie_task import LABELS, add_task_args
from .common import add_params_args, add_threads_arg, evaluation_settings, params_of, set_threads

HELP = ("compare SIFT, CNN, late fusion, CIE, fine-tuned CNN and label-free refinements (alpha-QE, DBA, "
        "diffusion, k-reciprocal) on a protocol")


def add_arguments(p) -> None:
    add_params_args(p, "retrieval, evaluation")
    add_threads_arg(p)
    p.add_argument("--bow", type=Path, required=True, help="SIFT bag of words (.bow.npz), all items")
    p.add_argument("--cnn", type=Path, required=True, help="pretrained CNN features (.npy), all items")
    p.add_argument("--cie", type=Path, default=None, help="CIE-embedded CNN index (.npy), database rows")
    p.add_argument("--finetuned", type=Path, default=None, help="fine-tuned CNN features (.npy), all items")
    p.add_argument("--pairs", type=Path, default=None,
                   help="mined pairs (.npz with `item_ids`, from `mine-cross`), database items only: the extra "
                        "edges of collaborative diffusion (retrieval.refine.methods collab-diffusion)")
    p.add_argument("--name", default="", help="experiment name (for the table)")
    p.add_argument("--out", type=Path, required=True, help="results (.json)")
    p.add_argument("--table", type=Path, default=None, help="Markdown table (.md)")
    p.add_argument("--metrics", type=Path, default=None,
                   help="metrics in the gate's layout (.json: results/retrieval/<method>/map), for "
                        "`pseudosup check-metrics` / `update-baselines`")
    p.add_argument("--also-protocol", action="append", default=[], metavar="PROTOCOL",
                   help="a further instance protocol of the dataset scored on the same inputs (repeatable): "
                        "one more column pair in the table, `retrieval-<protocol>` in the metrics")
    add_task_args(p)


def run(args) -> None:
    import numpy as np

    from .. import provenance as P
    from ..io import PseudosupError, atomic_path, write_json
    from ..methods.cie_task import TaskSource, build_task, needs_pairs, task_record
    from ..mining.features_io import load_dense, load_sparse

    set_threads(args.threads)
    params = params_of(args)
    cfg, tie_rule = params.get_key("retrieval"), evaluation_settings(params)["tie_rule"]
    P.check_bow(args.bow)
    G, gmeta = load_sparse(args.bow)
    X, xmeta = load_dense(args.cnn)
    dataset = P.check_same_dataset({args.bow: gmeta, args.cnn: xmeta}, args.dataset)
    P.check_features(args.cnn, xmeta, dataset)
    if G.shape[0] != X.shape[0]:
        raise PseudosupError(f"{args.bow} has {G.shape[0]} rows and {args.cnn} {X.shape[0]}: not the same items")
    source = TaskSource.from_args(args)
    db, task = build_task(source, X.shape[0], dataset)
    if task is None:
        raise PseudosupError("a protocol is needed: give --dataset and --raw (and --split or --protocol)")
    tasks = [task] + [_other_task(source, p, X.shape[0], db) for p in args.also_protocol]
    for t in tasks:  # class level: equal scores (the BoW's many zero similarities) by the tie rule
        t.tie_rule = tie_rule if t.kind == "class" else "index"
    E = _load_rows(args.cie, len(db), "database rows (the CIE stage's --split must match)", dataset,
                   _indices_sha(db)) if args.cie else None
    F = _load_rows(args.finetuned, X.shape[0], "rows, one per item", dataset) if args.finetuned else None
    P.check_finite(X, np.union1d(task.queries, db), args.cnn, "a query or database item")
    if F is not None:
        P.check_finite(F, np.union1d(task.queries, db), args.finetuned, "a query or database item")
    if E is not None:
        P.check_finite(E, np.arange(len(E)), args.cie, "an indexed item")
    if needs_pairs(cfg.get("refine")) and not args.pairs:
        # after the input checks, before any scoring: the other methods take minutes on a large database
        raise PseudosupError(f"{args.params}: retrieval.refine.methods collab-diffusion needs the mined pairs: give "
                             "--pairs data/pairs/<experiment>/cross.npz (from `pseudosup mine-cross`) or remove it")
    pairs = _load_pairs(args.pairs, db, dataset) if args.pairs else None
    runs = [_score(t, G, X, E, F, cfg, args.threads, pairs) for t in tasks]
    files = {"bow": str(args.bow), "cnn": str(args.cnn), "cie": str(args.cie) if args.cie else None,
             "finetuned": str(args.finetuned) if args.finetuned else None,
             "pairs": str(args.pairs) if args.pairs else None, "pairs_used": None if pairs is None else int(len(pairs)),
             "sift_feature": gmeta.get("feature"), "cnn_feature": xmeta.get("feature")}
    for r, t in zip(runs, tasks):
        # with several protocols each column pair is named by its protocol
        r.update(name=f"{args.name} {t.name.split('/')[-1]}" if len(runs) > 1 else args.name,
                 fusion_weight=cfg["fusion_weight"], tie_rule=t.tie_rule, files=files)
    write_json(args.out, {"dataset": dataset, **task_record(source), **runs[0], "also": runs[1:],
                          **P.stamp(args.bow, args.cnn, args.cie, args.finetuned, args.pairs, args.split, args.raw)})
    if args.metrics:
        results = {"retrieval": {m: {"map": r["map"]} for m, r in runs[0]["results"].items()}}
        for p, r in zip(args.also_protocol, runs[1:]):
            results[f"retrieval-{p}"] = {m: {"map": v["map"]} for m, v in r["results"].items()}
        write_json(args.metrics, {"experiment": args.name, "dataset": args.dataset, "task": task.name,
                                  "results": results})
    if args.table:
        with atomic_path(args.table) as tmp:
            tmp.write_text(markdown_table(runs))


def _other_task(source, protocol: str, n_items: int, db):
    """The task of a further protocol; it must index the same database items."""
    import numpy as np

    from ..io import PseudosupError
    from ..methods.cie_task import build_task

    if source.split is not None:
        raise PseudosupError(f"--also-protocol {protocol}: further protocols need an instance protocol "
                             "(--protocol), not a split")
    db2, task = build_task(source.with_protocol(protocol), n_items)
    if not np.array_equal(db, db2):
        raise PseudosupError(f"--also-protocol {protocol}: it indexes other items than --protocol {source.protocol}")
    return task


def _score(task, G, X, E, F, cfg: dict, threads: int, pairs=None) -> dict:
    """One protocol: every method's metrics, bytes per image and per-query AP."""
    from ..log import log
    from ..methods.cie_task import iter_scores, online_pairs

    results = {}
    # one method's (queries, database) scores at a time
    for method, (scores, nbytes) in iter_scores(task, G, X, E, F, cfg["fusion_weight"], cfg.get("refine"), threads,
                                                 pairs):
        metrics, aps = task.evaluate(scores)
        results[method] = {**metrics, "bytes_per_image": nbytes, "ap": [None if a != a else float(a) for a in aps]}
        log.info("%s %-22s mAP %.4f  %8.0f bytes/image", task.name, method, metrics["map"], nbytes)
    online = {} if pairs is None else {"collab_pairs": int(len(online_pairs(task, pairs)))}
    return {"task": task.name, "kind": task.kind, "queries": int(len(task.queries)),
            "database": int(len(task.database)), **online, "results": results}


def _load_pairs(path, db, dataset: str):
    """methods.cie_task.database_pairs of `path`, after checking it is of `dataset`."""
    from .. import provenance as P
    from ..io import load_npz
    from ..methods.cie_task import database_pairs

    P.check_same_dataset({path: load_npz(path)[0]}, dataset)
    return database_pairs(path, db)


def _load_rows(path, n: int, what: str, dataset: str, indices_sha256: str | None = None):
    """A dense input of `n` rows of `dataset` (verified against its sidecar); with
    `indices_sha256`, rows of exactly those items (the CIE index of the database)."""
    from .. import provenance as P
    from ..io import PseudosupError
    from ..mining.features_io import load_dense

    M, meta = load_dense(path)
    P.check_same_dataset({path: meta}, dataset)
    if M.shape[0] != n:
        raise PseudosupError(f"{path}: {M.shape[0]} rows, expected {n} {what}")
    P.check_features(path, meta, dataset)
    got = meta["items"].get("indices_sha256")
    if indices_sha256 is not None and got != indices_sha256:
        raise PseudosupError(f"{path}: rows of other items than the task's database ({what}); rerun "
                             f"`snakemake -R {path}`")
    return M


def _indices_sha(db) -> str:
    from ..provenance import ids_sha256

    return ids_sha256(db.tolist())


def markdown_table(runs: list[dict]) -> str:
    """One column group per run: mAP, the N-S score where the protocol has one (UKBench),
    bytes/image; one row per method."""
    methods = [m for m in LABELS if any(m in r["results"] for r in runs)]
    ns = [any("ns_score" in v for v in r["results"].values()) for r in runs]
    head = "| method | " + " | ".join(f"{r['name'] or r['task']} mAP | " + ("N-S score | " if s else "") + "bytes/image"
                                    for r, s in zip(runs, ns)) + " |"
    lines = [head, "|---|" + "".join("---|---|---|" if s else "---|---|" for s in ns)]
    for m in methods:
        cells = [cell for r, s in zip(runs, ns) for cell in _run_cells(r["results"].get(m), s)]
        lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _run_cells(res: dict | None, with_ns: bool) -> list[str]:
    """A method's cells in one run's column group: mAP, the N-S score if the group has
    that column, bytes/image; "-" in each where the run has no result for the method."""
    if not res:
        return ["-"] * (3 if with_ns else 2)
    ns = [f"{res['ns_score']:.3f}"] if with_ns else []
    return [f"{res['map']:.4f}", *ns, f"{res['bytes_per_image']:,.0f}"]
