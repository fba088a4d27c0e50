"""Collect an experiment's run files into its metrics file and tables.

Writes results/metrics/<experiment>.json (nested feature -> run -> metric, the file
DVC shows with `dvc metrics show/diff` and the metrics gate checks), a long-format
CSV and a Markdown table of mAP per feature x method x bits with the Euclidean
ceiling. For DVC it can also write (--summary, --plots) a compact summary, one small
JSON per run (`dvc metrics show/diff` print one row each), and plot data, one CSV per
feature x method (mAP vs bits, precision@N and the precision-recall curve at the
longest code), which dvc.yaml's top-level `plots:` overlay across revisions.

The dataset, split and tie rule come from the run files, not from params: the runs
must agree with each other (pseudosup.provenance.check_runs_agree) and with the
experiment's params (dataset, split, its own tie rule when set, features), and the
mining statistics with the runs; otherwise the report stops (stale runs are never
relabelled).
"""

from __future__ import annotations

from pathlib import Path

from .common import add_params_args, params_of

HELP = "aggregate an experiment's runs into metrics and tables"

SCALARS = ("map", "precision_at_k", "precision_radius", "recall_radius", "map_at_k", "ndcg", "acg", "wap",
           "precision_top")


def add_arguments(p) -> None:
    add_params_args(p, "experiments.<experiment>")
    p.add_argument("--experiment", required=True)
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="run files from `pseudosup evaluate`")
    p.add_argument("--mining", type=Path, nargs="*", default=[], help="statistics files from `pseudosup mine`")
    p.add_argument("--metrics", type=Path, required=True, help="output metrics (.json)")
    p.add_argument("--table", type=Path, required=True, help="output table (.md; a .csv is written beside it)")
    p.add_argument("--summary", type=Path, default=None,
                   help="output folder: one <feature>/<run>.json of headline metrics per run (dvc metrics)")
    p.add_argument("--plots", type=Path, default=None,
                   help="output folder: plot data <kind>/<feature>-<method>.csv (dvc plots)")


def run(args) -> None:
    from ..io import atomic_path, read_json, write_json

    exp = params_of(args).get_key(f"experiments.{args.experiment}")
    raw_runs = [read_json(p) for p in args.runs]
    mining = {p: read_json(p) for p in args.mining}
    common = check_against_params(args.experiment, exp, raw_runs, args.runs, mining, args.metrics)
    runs = with_sparse_rankings(raw_runs)
    metrics = {"experiment": args.experiment, "dataset": common["dataset"], "split": common["split"],
               "split_sha256": common["split_sha256"], "tie_rule": common["tie_rule"],
               "precision_at": runs[0]["k"] if runs else None, "results": {}, "mining": {}}
    for r in runs:
        key = run_name(r)
        metrics["results"].setdefault(r["feature"], {})[key] = {m: r[m] for m in SCALARS if r.get(m) is not None}
    for s in mining.values():
        metrics["mining"][s["feature"]] = {k: s[k] for k in ("num_pairs", "coverage", "pair_precision") if k in s}
    if exp.get("published"):
        metrics["published"] = published_rows(exp["published"], runs, exp["features"])
    write_json(args.metrics, metrics)
    rows = long_rows(runs)
    with atomic_path(args.table.with_suffix(".csv")) as tmp:
        tmp.write_text(_csv(rows))
    with atomic_path(args.table) as tmp:
        tmp.write_text(markdown_table(args.experiment, exp, runs, metrics))
    if args.summary:
        _write_files(args.summary, summary_files(runs))
    if args.plots:
        _write_files(args.plots, plot_files(runs))


# --- for DVC: a summary that fits a terminal and data-backed plots ----------------------------

# the columns of `dvc metrics show`: few, so that a row fits a terminal
HEADLINE = ("map", "precision_at_k", "ndcg", "wap")


def summary_files(runs: list[dict]) -> dict[str, str]:
    """<feature>/<run name>.json -> its headline metrics (rounded as in the CSV table)."""
    return {f"{r['feature']}/{run_name(r)}.json": _json({m: round(r[m], 6) for m in HEADLINE
                                                        if r.get(m) is not None})
            for r in runs}


def plot_files(runs: list[dict]) -> dict[str, str]:
    """<kind>/<feature>-<method>.csv -> CSV text: map_vs_bits (bits,map; the Euclidean
    ceiling as a flat line), precision_at_n (n,precision) and pr_curve (recall,precision),
    both at the feature's longest code."""
    out = {}
    hashed = [r for r in runs if r.get("bits") is not None]
    for feat in dict.fromkeys(r["feature"] for r in runs):
        mine = [r for r in hashed if r["feature"] == feat]
        bits = sorted({r["bits"] for r in mine})
        for meth in dict.fromkeys(r["method"] for r in mine):
            series = sorted((r for r in mine if r["method"] == meth), key=lambda r: r["bits"])
            out[f"map_vs_bits/{feat}-{meth}.csv"] = _table(("bits", "map"), [(r["bits"], r["map"]) for r in series])
            top = series[-1]
            if top.get("precision_curve"):
                c = top["precision_curve"]
                out[f"precision_at_n/{feat}-{meth}.csv"] = _table(("n", "precision"), zip(c["n"], c["precision"]))
            if top.get("pr_curve"):
                c = top["pr_curve"]
                out[f"pr_curve/{feat}-{meth}.csv"] = _table(("recall", "precision"), zip(c["recall"], c["precision"]))
        ceiling = next((r for r in runs if r["feature"] == feat and r["method"] == "euclidean"), None)
        if ceiling and bits:
            out[f"map_vs_bits/{feat}-euclidean.csv"] = _table(("bits", "map"), [(b, ceiling["map"]) for b in bits])
    return out


def _table(columns, rows) -> str:
    lines = [",".join(columns)]
    lines += [",".join(str(round(v, 6)) if isinstance(v, float) else str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def _json(obj) -> str:
    import json

    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def _write_files(folder: Path, files: dict[str, str]) -> None:
    """Replace `folder` by exactly these files (no stale series from an older run)."""
    from ..io import atomic_path

    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def check_against_params(name: str, exp: dict, runs: list[dict], paths, mining: dict, target="the metrics") -> dict:
    """The runs' common dataset / split / tie rule, checked against the experiment's
    params and the mining statistics; stale or foreign files stop the report."""
    from ..io import PseudosupError
    from ..provenance import check_runs_agree

    common = check_runs_agree(runs, paths)
    if not runs:
        return {**common, "dataset": exp["dataset"], "split": exp["split"]}
    where = f"{paths[0]} (and the other runs)"
    stale = (f"the runs are stale: rerun the experiment's jobs (`snakemake {target} --forcerun train_hasher "
             "evaluate_hasher evaluate_euclidean mine_pairs`)")
    tie_rule = (exp.get("evaluation") or {}).get("tie_rule")
    for key, want in (("dataset", exp["dataset"]), ("split", exp["split"]), ("tie_rule", tie_rule)):
        if want is not None and common[key] != want:
            raise PseudosupError(f"{where}: evaluated with {key} '{common[key]}' but params "
                                 f"experiments.{name}.{key if key != 'tie_rule' else 'evaluation.tie_rule'} is "
                                 f"'{want}'; {stale}")
    for r, p in zip(runs, paths):
        if r["feature"] not in exp["features"]:
            raise PseudosupError(f"{p}: a run of feature '{r['feature']}', which is not one of "
                                 f"experiments.{name}.features {exp['features']}")
    for p, s in mining.items():
        got = {k: s.get(k) for k in ("dataset", "split", "split_sha256")}
        if got != {k: common[k] for k in got} or s.get("feature") not in exp["features"]:
            raise PseudosupError(f"{p}: pairs mined on {got['dataset']}/{got['split']} (feature "
                                 f"'{s.get('feature')}'), but the runs are of {common['dataset']}/{common['split']} "
                                 f"(sha256 of the split files must agree too); rerun it: `snakemake -R {p}`")
    return common


def with_sparse_rankings(runs: list[dict]) -> list[dict]:
    """The runs, plus one `cosine-bow` run per Euclidean run that also scored its sparse
    bag of words (the sift-bow features' inverted-index ranking)."""
    out = []
    for r in runs:
        out.append(r)
        if r.get("cosine_bow"):
            out.append({**r["cosine_bow"], "feature": r["feature"], "method": "cosine-bow", "bits": None,
                        "tie_rule": r["tie_rule"]})
    return out


def run_name(r: dict) -> str:
    """Result names derive from parameters: <method>-<bits>, or the ranking name."""
    return r["method"] if r.get("bits") is None else f"{r['method']}-{r['bits']}"


def long_rows(runs: list[dict]) -> list[dict]:
    rows = [{"feature": r["feature"], "method": r["method"], "bits": r.get("bits") or "",
             **{m: round(r[m], 6) for m in SCALARS if r.get(m) is not None}} for r in runs]
    return sorted(rows, key=lambda x: (x["feature"], x["method"], str(x["bits"]).zfill(4)))


def _csv(rows: list[dict]) -> str:
    cols = ["feature", "method", "bits", *SCALARS]
    lines = [",".join(cols)]
    lines += [",".join(str(r.get(c, "")) for c in cols) for r in rows]
    return "\n".join(lines) + "\n"


def _columns(runs: list[dict], metrics: dict) -> tuple[str, str, str, str]:
    """(main metric, its label, side metric, its label): NDCG / wAP for multi-label
    relevance, mAP / precision@K otherwise."""
    graded = next((r["graded_at"] for r in runs if r.get("graded_at")), None)
    if graded:
        return "ndcg", f"NDCG@{graded['ndcg']}", "wap", f"wAP@{graded['wap']}"
    return "map", "mAP", "precision_at_k", f"P@{metrics['precision_at']}"


def _fmt(run: dict | None, key: str) -> str:
    return f"{run[key]:.4f}" if run and run.get(key) is not None else "-"


def markdown_table(name: str, exp: dict, runs: list[dict], metrics: dict) -> str:
    key, label, side, side_label = _columns(runs, metrics)
    bits = sorted({r["bits"] for r in runs if r.get("bits") is not None})
    by = {(r["feature"], r["method"], r.get("bits")): r for r in runs}
    if not bits:  # feature-only experiment: the real-valued rankings
        lines = [f"**{name}**: {label} of the real-valued ranking of each feature: Euclidean, and TF-IDF cosine where stated ({metrics['split']})", "",
                 f"| feature | {label} | {side_label} |", "|---|---|---|"]
        for f in exp["features"]:
            for meth, shown in (("euclidean", f), ("cosine-bow", f"{f} (TF-IDF cosine, inverted index)")):
                if meth == "euclidean" or (f, meth, None) in by:
                    lines.append(f"| {shown} | {_fmt(by.get((f, meth, None)), key)} | "
                                 f"{_fmt(by.get((f, meth, None)), side)} |")
        return "\n".join(lines) + "\n"
    head = f"{label} ({metrics['split']}, tie rule {metrics['tie_rule']}); last column: {side_label} at {bits[-1]} bits"
    lines = [f"**{name}**: {head}", "",
             "| feature | method | " + " | ".join(f"{b} bits" for b in bits) + f" | {side_label} |",
             "|---|---|" + "---|" * len(bits) + "---|"]
    for feat in exp["features"]:
        for meth in exp.get("methods", []):
            cells = [_fmt(by.get((feat, meth, b)), key) for b in bits]
            lines.append(f"| {feat} | {meth} | " + " | ".join(cells) + f" | {_fmt(by.get((feat, meth, bits[-1])), side)} |")
        for meth, shown in (("euclidean", "Euclidean (ceiling)"), ("cosine-bow", "TF-IDF cosine (inverted index)")):
            ceil = by.get((feat, meth, None))
            if ceil:
                lines.append(f"| {feat} | {shown} | " + " | ".join(_fmt(ceil, key) for _ in bits)
                             + f" | {_fmt(ceil, side)} |")
    if metrics.get("published"):
        lines += ["", *published_table(metrics["published"])]
    if metrics["mining"]:
        lines += ["", "Reversible-NN pairs of the database (k from params `mining.k`; label agreement is a diagnostic only):", "",
                  "| feature | pairs | items covered | pairs sharing a label |", "|---|---|---|---|"]
        for feat, s in metrics["mining"].items():
            lines.append(f"| {feat} | {s['num_pairs']} | {100 * s['coverage']:.1f}% | {s.get('pair_precision', float('nan')):.3f} |")
    return "\n".join(lines) + "\n"


# --- published numbers beside ours ---------------------------------------------------------

def published_rows(published: list[dict], runs: list[dict], features: list[str]) -> list[dict]:
    """One row per published value (params `experiments.<name>.published`): its source,
    method, bits, metric and value, with ours for the same method and bits per feature
    (None where the run has no such metric)."""
    by = {(r["feature"], r["method"], r.get("bits")): r for r in runs}
    rows = []
    for pub in published:
        for bits, value in sorted(pub["values"].items(), key=lambda kv: int(kv[0])):
            ours = {f: by.get((f, pub["method"], int(bits)), {}).get(pub["metric"]) for f in features}
            rows.append({"source": pub["source"], "note": pub.get("note", ""), "method": pub["method"],
                         "bits": int(bits), "metric": pub["metric"], "published": value, "ours": ours})
    return rows


def published_table(rows: list[dict]) -> list[str]:
    """Markdown lines: published values beside ours, each source named once below."""
    sources = list(dict.fromkeys((r["source"], r["note"]) for r in rows))
    features = list(rows[0]["ours"])
    lines = ["Published numbers beside ours (different features or networks where the note says so):", "",
             "| method | bits | metric | published | " + " | ".join(f"ours ({f})" for f in features) + " | source |",
             "|---|---|---|---|" + "---|" * len(features) + "---|"]
    for r in rows:
        ours = " | ".join("-" if v is None else f"{v:.4f}" for v in r["ours"].values())
        lines.append(f"| {r['method']} | {r['bits']} | {r['metric']} | {r['published']:.4f} | {ours} | "
                     f"[{sources.index((r['source'], r['note'])) + 1}] |")
    lines.append("")
    lines += [f"[{i + 1}] {src}" + (f" — {note}" if note else "") for i, (src, note) in enumerate(sources)]
    return lines
