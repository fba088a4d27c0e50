"""Refresh the generated sections of README.md and docs/*.md (numbers are never typed
by hand).

`<!-- results:<experiment> -->` ... `<!-- /results:<experiment> -->` holds
results/tables/<experiment>.md; `<!-- bench:<name> -->` ... `<!-- /bench:<name> -->`
holds benchmarks/results/<name>.md; `<!-- splits:all -->` ... `<!-- /splits:all -->` is
the table of committed splits (data/splits: definition, sizes, sha256). --check fails
when any section is stale."""

from __future__ import annotations

import re
import sys
from pathlib import Path

HELP = "refresh the result tables of README.md and docs/*.md (--check: fail when stale)"

MARK = re.compile(r"(<!-- (?P<kind>results|bench|splits):(?P<name>[\w\-]+) -->\n)(?P<body>.*?)(<!-- /(?P=kind):(?P=name) -->)", re.S)


def add_arguments(p) -> None:
    p.add_argument("--readme", type=Path, nargs="+", default=None,
                   help="Markdown files to refresh (default: README.md and docs/*.md)")
    p.add_argument("--tables", type=Path, default=Path("results/tables"))
    p.add_argument("--bench", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--splits", type=Path, default=Path("data/splits"))
    p.add_argument("--check", action="store_true")


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


def refreshed(text: str, tables: Path, bench: Path = Path("benchmarks/results"),
              splits: Path = Path("data/splits")) -> str:
    def sub(m):
        if m.group("kind") == "splits":
            return m.group(1) + splits_table(splits) + m.group(5)
        src = (tables if m.group("kind") == "results" else bench) / f"{m.group('name')}.md"
        body = src.read_text() if src.exists() else f"_(not generated yet: {src.parent.name}/{src.name})_\n"
        return m.group(1) + body + m.group(5)
    return MARK.sub(sub, text)


def run(args) -> int:
    from ..io import atomic_path

    stale = 0
    for path in args.readme or [Path("README.md"), *sorted(Path("docs").glob("*.md"))]:
        text = path.read_text()
        new = refreshed(text, args.tables, args.bench, args.splits)
        if args.check:
            if new != text:
                print(f"{path}: result tables are stale; run `pseudosup readme`", file=sys.stderr)
                stale += 1
            continue
        if new != text:
            with atomic_path(path) as tmp:
                tmp.write_text(new)
            print(f"updated {path}")
    if args.check and not stale:
        print("README.md and docs: result tables are current")
    return 1 if stale else 0
