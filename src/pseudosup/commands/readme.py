"""Refresh the generated sections of the Markdown documentation (numbers are never typed
by hand): README.md, docs/*.md, benchmarks/README.md and results/README.md.

Blocks, each between `<!-- <kind>:<name> -->` and `<!-- /<kind>:<name> -->`:
- `results:<table>` holds results/tables/<table>.md;
- `bench:<name>` holds benchmarks/results/<name>.md;
- `splits:all` is the table of committed splits (data/splits: definition, sizes, sha256);
- `summary:experiments` is the one-row-per-experiment summary (best result, what it is
  compared with), computed from results/metrics/*.json.

results/README.md carries every table of results/tables: a table without a block there
gets a new section appended. --check fails when any block is stale or missing."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HELP = "refresh the generated tables of README.md, docs/, benchmarks/ and results/ (--check: fail when stale)"

MARK = re.compile(r"(<!-- (?P<kind>results|bench|splits|summary):(?P<name>[\w\-]+) -->\n)(?P<body>.*?)"
                  r"(<!-- /(?P=kind):(?P=name) -->)", re.S)
RESULTS_README = Path("results/README.md")
BENCH_README = Path("benchmarks/README.md")


def add_arguments(p) -> None:
    p.add_argument("--readme", type=Path, nargs="+", default=None,
                   help="Markdown files to refresh (default: README.md, docs/*.md, benchmarks/README.md, "
                        "results/README.md)")
    p.add_argument("--tables", type=Path, default=Path("results/tables"))
    p.add_argument("--metrics", type=Path, default=Path("results/metrics"))
    p.add_argument("--bench", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--splits", type=Path, default=Path("data/splits"))
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="orders the summary's experiments")
    p.add_argument("--check", action="store_true")


def default_files() -> list[Path]:
    return [Path("README.md"), *sorted(Path("docs").glob("*.md")), BENCH_README, RESULTS_README]


# --- the blocks -----------------------------------------------------------------------

def splits_table(directory: Path) -> str:
    """Markdown table of the committed splits, from the files and SHA256SUMS."""
    from ..data.splits import load_split, read_sums

    lines = ["| split | dataset | relevance | queries / database / train | definition | sha256 |",
             "|---|---|---|---|---|---|"]
    for name, digest in sorted(read_sums(directory).items()):
        s = load_split(directory / name)
        sizes = " / ".join(f"{len(s.parts[p]):,}" if p in s.parts else "-" for p in ("queries", "database", "train"))
        lines.append(f"| `{s.name}` | {s.dataset} | {s.relevance} | {sizes} | {s.description} | `{digest[:12]}` |")
    return "\n".join(lines) + "\n"


def experiment_order(params: Path | None) -> list[str]:
    """Experiment names in params.yaml order (empty when there is no params file)."""
    import yaml

    if params is None or not params.is_file():
        return []
    return list((yaml.safe_load(params.read_text()) or {}).get("experiments") or {})


def _graded_k(runs_dir: Path, metric: str) -> int | None:
    """The cut-off of a graded metric (NDCG@k), as the evaluate stage recorded it."""
    for path in sorted(runs_dir.rglob("*.json")):
        k = (json.loads(path.read_text()).get("graded_at") or {}).get(metric)
        if k:
            return k
    return None


def _hashing_row(m: dict, runs_dir: Path) -> list[str]:
    """Best hasher at the longest code; ITQ and the Euclidean ranking of the same feature."""
    graded = any("ndcg" in r for f in m["results"].values() for r in f.values())
    key = "ndcg" if graded else "map"
    label = "mAP"
    if graded:
        k = _graded_k(runs_dir, "ndcg")
        label = f"NDCG@{k}" if k else "NDCG"
    hashed = [(f, name, r) for f, runs in m["results"].items() for name, r in runs.items()
              if re.search(r"-\d+$", name) and r.get(key) is not None]
    if not hashed:  # feature-only experiment: the real-valued rankings
        ranked = [(f, name, r) for f, runs in m["results"].items() for name, r in runs.items() if r.get(key) is not None]
        f, name, best = max(ranked, key=lambda x: x[2][key])
        worst = min(ranked, key=lambda x: x[2][key])
        return [label, f"{f} ({name}): {best[key]:.4f}", f"lowest: {worst[0]} ({worst[1]}) {worst[2][key]:.4f}"]
    longest = max(int(name.rsplit("-", 1)[1]) for _, name, _ in hashed)
    at = [(f, name, r) for f, name, r in hashed if name.endswith(f"-{longest}")]
    f, name, best = max(at, key=lambda x: x[2][key])
    method = name.rsplit("-", 1)[0]
    other = []
    itq = m["results"][f].get(f"itq-{longest}")
    if method != "itq" and itq and itq.get(key) is not None:
        other.append(f"itq {itq[key]:.4f}")
    ceiling = m["results"][f].get("euclidean")
    if ceiling and ceiling.get(key) is not None:
        other.append(f"Euclidean {ceiling[key]:.4f}")
    return [label, f"{method} on {f}, {longest} bits: {best[key]:.4f}", "; ".join(other) or "-"]


def _cross_row(m: dict) -> list[str]:
    """Best of the cross-feature methods of the main task; the single features beside it."""
    runs = {k: v for k, v in m["results"]["retrieval"].items() if v.get("map") is not None}
    name, best = max(runs.items(), key=lambda x: x[1]["map"])
    other = [f"{k} {runs[k]['map']:.4f}" for k in ("cie", "cnn", "sift") if k in runs and k != name]
    return ["mAP", f"{name}: {best['map']:.4f}", "; ".join(other) or "-"]


def summary_table(metrics_dir: Path, params: Path | None = None) -> str:
    """One row per experiment with a metrics file: its data, the headline metric, the best
    result and what it is compared with (all read from results/metrics)."""
    files = {p.stem: p for p in metrics_dir.glob("*.json")}
    if not files:
        return f"_(not generated yet: no {metrics_dir}/*.json)_\n"
    order = [e for e in experiment_order(params) if e in files] + sorted(set(files) - set(experiment_order(params)))
    lines = ["| experiment | data | metric | best (hashers: at the longest code) | compared with |",
             "|---|---|---|---|---|"]
    for name in order:
        m = json.loads(files[name].read_text())
        where = m.get("split") or m.get("task") or "-"
        data = f"{m['dataset']}, " + (f"protocol {where.split('/', 1)[1]}" if where.startswith(m["dataset"] + "/") else where)
        cells = _cross_row(m) if "retrieval" in m["results"] else _hashing_row(m, metrics_dir.parent / "runs" / name)
        lines.append(f"| [{name}](results/README.md#{name}) | {data} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def refreshed(text: str, tables: Path, bench: Path = Path("benchmarks/results"),
              splits: Path = Path("data/splits"), metrics: Path | None = None, params: Path | None = None) -> str:
    """`text` with every generated block filled from the current files. `metrics`
    defaults to results/metrics beside `tables`; `params` orders the summary."""
    metrics = metrics if metrics is not None else tables.parent / "metrics"

    def sub(m):
        kind = m.group("kind")
        if kind == "splits":
            return m.group(1) + splits_table(splits) + m.group(5)
        if kind == "summary":
            return m.group(1) + summary_table(metrics, params) + m.group(5)
        src = (tables if kind == "results" else bench) / f"{m.group('name')}.md"
        body = src.read_text() if src.exists() else f"_(not generated yet: {src.parent.name}/{src.name})_\n"
        return m.group(1) + body + m.group(5)
    return MARK.sub(sub, text)


def with_every_table(text: str, tables: Path) -> str:
    """`text` (results/README.md) with an empty section appended for every table of
    `tables` that has no `results:` block yet (filled by `refreshed`)."""
    have = {m.group("name") for m in MARK.finditer(text) if m.group("kind") == "results"}
    missing = sorted(p.stem for p in tables.glob("*.md") if p.stem not in have)
    for name in missing:
        text = text.rstrip("\n") + f"\n\n## {name}\n\n<!-- results:{name} -->\n<!-- /results:{name} -->\n"
    return text


# --- the stage ------------------------------------------------------------------------

def run(args) -> int:
    from ..io import PseudosupError, atomic_path

    stale = 0
    for path in args.readme or default_files():
        if not path.is_file():
            raise PseudosupError(f"{path}: missing; it holds generated tables (restore it from git)")
        text = path.read_text()
        new = text
        if path.resolve() == RESULTS_README.resolve():
            new = with_every_table(new, args.tables)
        new = refreshed(new, args.tables, args.bench, args.splits, args.metrics, args.params)
        if args.check:
            if new != text:
                print(f"{path}: generated tables are stale or missing; run `pseudosup readme`", file=sys.stderr)
                stale += 1
            continue
        if new != text:
            with atomic_path(path) as tmp:
                tmp.write_text(new)
            print(f"updated {path}")
    if args.check and not stale:
        print("README.md, docs/, benchmarks/README.md, results/README.md: generated tables are current")
    return 1 if stale else 0
