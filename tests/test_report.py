"""`snakemake --report`: every figure and table of the tiny config, with captions, and the
figures really load when the HTML report is opened in headless Chromium. Also: every job
records its time and memory (Snakemake `benchmark:`)."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from .conftest import FMNIST_DEBIAN, snakemake

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FMNIST_DEBIAN.is_dir(), reason="needs Debian's dataset-fashion-mnist")]

TINY = ["--cores", "2", "--configfile", "tests/config/tiny.yaml"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the report. The report is a React app that shows one result at a
# time: show each image result as its eye button does (app.setView), wait until the <img>
# has loaded, and write what was found into <pre id="probe-result"> for --dump-dom.
PROBE_JS = """
window.addEventListener("load", async () => {
  const out = { images: {}, error: null, done: false };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const pre = document.createElement("pre");
  pre.id = "probe-result";
  document.body.appendChild(pre);
  const write = () => { pre.textContent = JSON.stringify(out); };
  try {
    // React renders the report after "load": wait until its App exists
    for (let i = 0; i < 400 && typeof app === "undefined"; i++) await sleep(25);
    for (const [path, entry] of Object.entries(results)) {
      if (!entry.mime_type.startsWith("image/")) continue;
      app.setView({ content: "img", contentPath: entry.data_uri, resultPath: path });
      let img;
      for (let i = 0; i < 200 && !img; i++) {
        await sleep(25);
        img = [...document.querySelectorAll("#app img")].find((x) => x.getAttribute("src") === entry.data_uri);
      }
      if (!img) { out.images[path] = { shown: false }; write(); continue; }
      for (let i = 0; i < 200 && !(img.complete && img.naturalWidth > 0); i++) await sleep(25);
      out.images[path] = { shown: true, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight };
      write();
    }
  } catch (e) {
    out.error = String(e);
  }
  out.done = true;
  write();
});
"""

# Shows one figure (the first of the experiment's category) for the screenshot.
SHOW_JS = """
window.addEventListener("load", async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  for (let i = 0; i < 400 && typeof app === "undefined"; i++) await sleep(25);
  const path = %s;
  app.showCategory(%s);
  await sleep(100);
  app.setView({ content: "img", contentPath: results[path].data_uri, resultPath: path });
});
"""


@pytest.fixture(scope="module")
def tiny_report(tiny_built):
    """The session's build of the tiny config (conftest.tiny_built), then its HTML report."""
    project = tiny_built.project
    snakemake(project, *TINY, "--report", "report.html")
    return project, project / "report.html"


def embedded(html: str, name: str) -> dict:
    """A JSON object the report embeds as `var <name> = {...};`."""
    m = re.search(rf"var {name} = (\{{.*?\}});\n", html, re.S)
    assert m, f"report.html has no `var {name}` (Snakemake's report template changed?)"
    return json.loads(m.group(1))


def outputs(project: Path) -> list[str]:
    """The figures and tables the tiny run wrote (what the report must show)."""
    files = [*project.glob("results/figures/**/*.png"), *project.glob("results/tables/*.md"),
             *project.glob("results/tables/*.csv")]
    return sorted(str(f.relative_to(project)) for f in files)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def chromium(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def with_script(html: str, js: str) -> str:
    i = html.rindex("</body>")
    return html[:i] + f"<script>{js}</script>" + html[i:]


def test_report_shows_every_figure_and_table_with_a_caption(tiny_report):
    project, report = tiny_report
    html = report.read_text()
    results = embedded(html, "results")
    expected = outputs(project)
    assert len(expected) >= 5, expected  # map_vs_bits, pr_curves, gallery, tiny.md, tiny.csv
    assert sorted(results) == expected
    for path in expected:
        caption = results[path]["caption"]
        # rendered from workflow/report/*.rst with this experiment's protocol filled in
        assert "tiny" in caption and len(caption) > 300, (path, caption)
        assert "fashion-mnist" in caption and "fmnist-tiny" in caption, (path, caption)
        if "gallery" not in path:  # the gallery shows database order, no score
            assert "tie rule" in caption and "expected" in caption, (path, caption)
    categories = embedded(html, "categories")
    assert sorted(categories) == ["tiny"]
    assert sorted(categories["tiny"]) == ["Figures", "Tables"]
    assert "pseudo-supervised" in html  # the front page (workflow/report/workflow.rst)
    # an RST or template mistake in a caption shows up as a docutils system message
    assert "system-message" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed: apt-get install chromium "
                                              "(make system-packages does, as root)")
def test_figures_load_in_headless_chromium(tiny_report, tmp_path):
    project, report = tiny_report
    html = report.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(with_script(html, PROBE_JS))
    dom = chromium("--virtual-time-budget=60000", "--dump-dom", probe.as_uri()).stdout
    m = re.search(r'<pre id="probe-result">(.*?)</pre>', dom, re.S)
    assert m, f"the probe script wrote no result; DOM starts:\n{dom[:2000]}"
    found = json.loads(html_lib.unescape(m.group(1)))
    assert found["error"] is None and found["done"], found
    figures = [p for p in outputs(project) if p.endswith(".png")]
    assert sorted(found["images"]) == figures
    for path, img in found["images"].items():
        # the browser decoded the embedded PNG at its real size
        assert img["shown"] and img["complete"], (path, img)
        assert (img["width"], img["height"]) == png_size(project / path), (path, img)

    # a screenshot of the report showing the first figure, kept in the test's tmp dir
    first = figures[0]
    show = tmp_path / "show.html"
    show.write_text(with_script(html, SHOW_JS % (json.dumps(first), json.dumps("tiny"))))
    shot = tmp_path / "report.png"
    chromium("--virtual-time-budget=10000", "--window-size=1400,1000", f"--screenshot={shot}", show.as_uri())
    assert png_size(shot) == (1400, 1000)
    from PIL import Image

    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 100, f"{shot} looks blank ({len(colours)} colours)"


def test_every_job_records_time_and_memory(tiny_report):
    """`benchmark:` on every rule that runs a command: one TSV per job of the tiny run."""
    project, _ = tiny_report
    plan = snakemake(project, *TINY, "--forceall", "--dry-run", "--quiet", "rules").stdout
    jobs = {}
    for line in plan.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job", "all"):
            jobs[parts[0]] = int(parts[1])
    assert jobs, plan
    for rule, n in jobs.items():
        tsvs = sorted((project / "logs/benchmarks" / rule).rglob("*.tsv"))
        assert len(tsvs) == n, f"{rule}: {n} jobs, {len(tsvs)} benchmark files"
        header, row = tsvs[0].read_text().splitlines()[:2]
        cols = dict(zip(header.split("\t"), row.split("\t")))
        assert float(cols["s"]) > 0 and "max_rss" in cols, (tsvs[0], cols)
