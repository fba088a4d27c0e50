"""The documentation: a short README, links that resolve, LICENSE and CITATION.cff, and
the generated summary / results pages."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from pseudosup.commands.readme import MARK, summary_table, with_every_table

from .conftest import ROOT

README_LIMIT = 15_000  # bytes: the README is a landing page; details live in docs/, results/, benchmarks/

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            ROOT / "benchmarks/README.md", ROOT / "results/README.md", ROOT / "CHANGELOG.md"]


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces -> hyphens."""
    text = FENCE.sub("", path.read_text())
    out = set()
    for title in HEADING.findall(text):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def relative_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_readme_is_short():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, f"README.md is {size:,} bytes (limit {README_LIMIT:,}): move details to docs/"


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    assert doc.is_file(), doc
    broken = []
    for target in relative_links(doc):
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            broken.append(f"{target}: no such file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links:\n  " + "\n  ".join(broken)


def test_link_checker_catches_a_broken_link(tmp_path):
    doc = tmp_path / "a.md"
    (tmp_path / "b.md").write_text("# Title here\n")
    doc.write_text("[ok](b.md#title-here) [code](`x`) `[no](nothing.md)` [web](https://x.org) [bad](c.md)\n")
    assert relative_links(doc) == ["b.md#title-here", "c.md"]
    assert anchors(tmp_path / "b.md") == {"title-here"}


def test_license_is_mit_as_pyproject_says():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the pseudosup authors" in text
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"]["text"] == "MIT"


def test_citation_cff_is_valid_and_lists_the_seed_papers():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff.get(key), f"CITATION.cff: missing required key '{key}'"
    assert cff["license"] == "MIT"
    refs = cff["references"]
    assert refs, "CITATION.cff: no references"
    for ref in refs:
        assert ref.get("type") and ref.get("title") and ref.get("authors"), ref
        assert all(a.get("family-names") or a.get("name") for a in ref["authors"]), ref["title"]
    titles = " | ".join(r["title"] for r in refs)
    for words in ("Collaborative Index Embedding", "Complementary Supervision", "Linear Distance Preserving",
                  "Deep Semantic Ranking"):
        assert words in titles, f"CITATION.cff: no reference titled '{words}…'"


def test_readme_has_the_summary_and_no_copies():
    readme = (ROOT / "README.md").read_text()
    assert "<!-- summary:experiments -->" in readme
    kinds = {m.group("kind") for m in MARK.finditer(readme)}
    assert kinds == {"summary"}, f"README.md holds generated blocks {kinds}: result tables belong in " \
                                 "results/README.md, benchmark logs in benchmarks/README.md"
    assert "<!-- slurm:run -->" not in readme, "the cluster text lives in docs/cluster.md only"
    for heading in ("Quickstart", "Troubleshooting", "Add your data", "Add your method"):
        assert f"## {heading}" in readme, heading


def test_results_page_has_every_table():
    text = (ROOT / "results/README.md").read_text()
    have = {m.group("name") for m in MARK.finditer(text) if m.group("kind") == "results"}
    tables = {p.stem for p in (ROOT / "results/tables").glob("*.md")}
    assert tables <= have, f"results/README.md lacks {sorted(tables - have)}: run `pseudosup readme`"


def test_a_new_table_gets_a_section(tmp_path):
    (tmp_path / "old.md").write_text("x\n")
    (tmp_path / "new.md").write_text("y\n")
    text = "# Results\n\n<!-- results:old -->\nx\n<!-- /results:old -->\n"
    out = with_every_table(text, tmp_path)
    assert out.startswith(text.rstrip("\n"))
    assert "## new\n\n<!-- results:new -->\n<!-- /results:new -->\n" in out
    assert with_every_table(out, tmp_path) == out


def _metrics(results: dict, **extra) -> dict:
    return {"experiment": "e", "dataset": "d", "split": "s", "results": results, **extra}


def test_summary_picks_the_best_hasher_at_the_longest_code(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "b.json").write_text(json.dumps(_metrics({
        "f1": {"itq-16": {"map": 0.9}, "itq-64": {"map": 0.5}, "lsh-64": {"map": 0.4}, "euclidean": {"map": 0.45}},
        "f2": {"ldph-64": {"map": 0.6}, "itq-64": {"map": 0.55}}})))
    (metrics / "a.json").write_text(json.dumps({"experiment": "a", "dataset": "d", "task": "d/variants", "results": {
        "retrieval": {"sift": {"map": 0.3}, "cnn": {"map": 0.7}, "cie": {"map": 0.8}}}}))
    params = tmp_path / "params.yaml"
    params.write_text("experiments:\n  b: {}\n  a: {}\n")
    rows = summary_table(metrics, params).splitlines()[2:]
    assert rows[0].startswith("| [b]") and rows[1].startswith("| [a]"), "params order"
    # 0.9 at 16 bits is not the longest code; at 64 bits ldph on f2 wins over itq on f1
    assert "ldph on f2, 64 bits: 0.6000" in rows[0] and "itq 0.5500" in rows[0]
    assert "cie: 0.8000" in rows[1] and "cnn 0.7000; sift 0.3000" in rows[1] and "protocol variants" in rows[1]


def test_summary_uses_ndcg_for_graded_relevance(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "runs" / "m").mkdir(parents=True)
    (tmp_path / "runs" / "m" / "r.json").write_text(json.dumps({"graded_at": {"ndcg": 100}}))
    (tmp_path / "metrics" / "m.json").write_text(json.dumps(_metrics({
        "v": {"dsrh-32": {"map": 0.9, "ndcg": 0.5}, "itq-32": {"map": 0.1, "ndcg": 0.6}}})))
    row = summary_table(tmp_path / "metrics").splitlines()[2]
    assert "| NDCG@100 |" in row and "itq on v, 32 bits: 0.6000" in row
