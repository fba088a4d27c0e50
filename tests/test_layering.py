"""The package's layers, read from the source (every import statement, also those inside
functions, and importlib.import_module with a literal name):

    Snakemake rules -> stages/ -> data/ features/ mining/ methods/ evaluation/ plots/ -> io log codes ...
                       commands/ (helper commands no rule runs: beside the stages)

- the Snakefile and workflow/*.smk import only the plan (workflow, params) and
  PseudosupError from io;
- a stage never imports another stage (stages/common.py holds their shared helpers)
  nor a helper command; a helper command imports no stage but stages/common.py;
- the plan modules (workflow, params, dvcgen, gate), which the rules reach, import no
  stage and no command;
- data/ imports no other library package; plots/ imports no other library package;
- data/ and evaluation/ never import methods/;
- no library package imports stages/, commands/ or the orchestration modules (cli, workflow, ...);
- features/ and mining/ never import methods/;
- the bottom modules (io, log, codes, provenance, machine, device) import only
  each other;
- params (the configuration: it checks experiments against the committed split
  protocols) sits between the library and the stages: it may import data/ but never
  methods/ or orchestration.

Also the layout the docs state: a CLI command is a stage (pseudosup.stages) exactly when a
rule runs it, else a helper command (pseudosup.commands), and every module of the package
is named in docs/DEVELOPING.md's package map.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import ROOT

SRC = ROOT / "src" / "pseudosup"
BOTTOM = {"io", "log", "codes", "provenance", "machine", "device"}
CONFIG = {"params"}
LIBRARY = {"data", "features", "mining", "methods", "evaluation", "plots"}
ORCHESTRATION = {"stages", "commands", "cli", "workflow", "dvcgen", "gate"}
PLAN = {"workflow", "params", "dvcgen", "gate"}  # what the rules reach (rule 1 of DEVELOPING.md)
STAGE_HELPERS = {"pseudosup.stages.common"}
# rule 1: what the Snakefile and workflow/*.smk may import from the package (None: anything)
RULE_IMPORTS = {"pseudosup.workflow": None, "pseudosup.params": None, "pseudosup.io": {"PseudosupError"}}


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, src: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every module `path` imports from the package;
    `from pkg import name` counts as pkg.name (a submodule, or a name in pkg)."""
    mod = module_name(path, src)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    root = src.name
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in out if name == root or name.startswith(root + ".")]


def part(name: str, src: Path) -> str:
    """The top-level part of the package a module belongs to: 'stages', 'io', ...; ''
    for the package itself (`from pseudosup import code_version`)."""
    bits = name.split(".")
    top = bits[1] if len(bits) > 1 else ""
    return top if (src / top).is_dir() or (src / f"{top}.py").is_file() else ""


def _is_helper(name: str) -> bool:
    return any(name == h or name.startswith(h + ".") for h in STAGE_HELPERS)


def violations(src: Path = SRC) -> list[str]:
    found = []
    for path in sorted(src.rglob("*.py")):
        mod = module_name(path, src)
        here = part(mod, src)
        for line, name in imports(path, src):
            there = part(name, src)
            rule = None
            if here == "stages" and there == "stages" and name != "pseudosup.stages" and not _is_helper(name):
                rule = "a stage imports another stage"
            elif here == "stages" and there == "commands":
                rule = "a stage imports a helper command"
            elif here == "commands" and there == "stages" and name != "pseudosup.stages" and not _is_helper(name):
                rule = "a helper command imports a stage"
            elif here in ("data", "plots") and there in LIBRARY - {here}:
                rule = f"{here}/ imports another library package ({there}/)"
            elif here in ("data", "evaluation") and there == "methods":
                rule = f"{here}/ imports methods/"
            elif here in LIBRARY and there in ORCHESTRATION:
                rule = f"library code ({here}/) imports {there}"
            elif here in ("features", "mining") and there == "methods":
                rule = f"{here}/ imports methods/"
            elif here in PLAN and there in ("stages", "commands"):
                rule = f"plan module {here} imports {there}"
            elif here in CONFIG and there in ORCHESTRATION | {"methods"}:
                rule = f"configuration module {here} imports {there}"
            elif here in BOTTOM and there not in BOTTOM and there != "":
                rule = f"bottom module {here} imports {there}"
            if rule:
                found.append(f"{path.relative_to(src.parent)}:{line}: {rule} ({name})")
    return found


def test_the_package_keeps_its_layers():
    found = violations()
    assert not found, "layering violations (see docs/DEVELOPING.md):\n" + "\n".join(found)


def test_the_check_catches_each_kind_of_violation(tmp_path):
    """The checker itself: a small package breaking each rule once (relative and absolute
    imports, imports inside functions, importlib with a literal name)."""
    src = tmp_path / "pseudosup"
    files = {
        "__init__.py": "",
        "io.py": "def f():\n    from .data import splits\n",
        "codes.py": "from . import io\n",
        "workflow.py": "from .params import load\ndef hook():\n    from .commands import slurm_check\n",
        "params.py": "from .data import splits\n",
        "stages/__init__.py": "",
        "stages/common.py": "",
        "stages/a.py": "from .common import x\nfrom ..methods import models\n",
        "stages/b.py": "def run():\n    from .a import run\n",
        "stages/c.py": "from ..commands.readme import MARK\n",
        "commands/__init__.py": "",
        "commands/ok.py": "from ..stages.common import params_of\nfrom ..workflow import Plan\nfrom ..data import registry\n",
        "commands/bad.py": "def run():\n    from pseudosup.stages import train\n",
        "data/__init__.py": "",
        "data/splits.py": "from pseudosup.methods.hashing import dsrh_data\n",
        "data/registry.py": "from . import splits\nfrom .. import io\n",
        "data/cifar.py": "def f():\n    from ..features import images\n",
        "features/images.py": "",
        "evaluation/ranking.py": "import importlib\nm = importlib.import_module('pseudosup.methods.codes')\n",
        "mining/knn.py": "from ..stages import common\n",
        "mining/pairs.py": "from ..commands import dvc_status\nfrom ..features import sparse\n",
        "methods/__init__.py": "",
        "methods/models.py": "from ..data import splits\nfrom .. import codes\n",
        "plots/figures.py": "from .layout import save\nfrom ..io import atomic_path\nfrom ..evaluation import ranking\n",
    }
    for name, text in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    found = "\n".join(violations(src))
    assert "pseudosup/io.py:2: bottom module io imports data" in found
    assert "pseudosup/stages/b.py:2: a stage imports another stage (pseudosup.stages.a.run)" in found
    assert "pseudosup/stages/c.py:1: a stage imports a helper command (pseudosup.commands.readme.MARK)" in found
    assert "pseudosup/commands/bad.py:2: a helper command imports a stage (pseudosup.stages.train)" in found
    assert "pseudosup/workflow.py:3: plan module workflow imports commands" in found
    assert "pseudosup/data/splits.py:1: data/ imports another library package (methods/)" in found
    assert "pseudosup/data/cifar.py:2: data/ imports another library package (features/)" in found
    assert "pseudosup/plots/figures.py:3: plots/ imports another library package (evaluation/)" in found
    assert "pseudosup/evaluation/ranking.py:2: evaluation/ imports methods/" in found
    assert "pseudosup/mining/knn.py:1: library code (mining/) imports stages" in found
    assert "pseudosup/mining/pairs.py:1: library code (mining/) imports commands" in found
    # fine: stages -> common, stages -> methods, commands -> stages.common / plan / library,
    # methods -> data, data -> its own modules and the bottom, plots -> plots and the bottom,
    # mining -> features, params -> data
    assert len(found.splitlines()) == 11, found


# --- rule 1: the Snakemake rules import only the plan ----------------------------------------

IMPORT_STATEMENT = re.compile(r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)",
                                re.M)


def workflow_files(root: Path = ROOT) -> list[Path]:
    return [root / "Snakefile", *sorted((root / "workflow").rglob("*.smk"))]


def rule_import_violations(files: list[Path]) -> list[str]:
    """Imports from the package in Snakemake files (not Python: import statements are
    found line by line, then parsed) that DEVELOPING.md's rule 1 does not allow."""
    found = []
    for f in files:
        text = f.read_text()
        for m in IMPORT_STATEMENT.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            try:
                node = ast.parse(textwrap.dedent(m.group(0)).strip()).body[0]
            except SyntaxError:
                continue  # prose that happens to start with "import"
            if isinstance(node, ast.Import):
                names = [(a.name, None) for a in node.names]
            else:
                mod = node.module or ""
                # `from pseudosup import workflow`: the module pseudosup.workflow
                names = [(f"{mod}.{a.name}", None) if mod == "pseudosup" else (mod, a.name) for a in node.names]
            for module, name in names:
                if module != "pseudosup" and not module.startswith("pseudosup."):
                    continue
                allowed = module in RULE_IMPORTS and (RULE_IMPORTS[module] is None or name in RULE_IMPORTS[module])
                if not allowed:
                    what = f"{module}.{name}" if name else module
                    found.append(f"{f.name}:{line}: the workflow imports {what}")
        for m in re.finditer(r"""import_module\(\s*["'](pseudosup[\w.]*)["']""", text):
            line = text.count("\n", 0, m.start()) + 1
            if m.group(1) not in RULE_IMPORTS or RULE_IMPORTS[m.group(1)] is not None:
                found.append(f"{f.name}:{line}: the workflow imports {m.group(1)}")
    return found


def test_the_workflow_imports_only_the_plan():
    files = workflow_files()
    assert len(files) >= 5, files
    found = rule_import_violations(files)
    assert not found, ("the Snakefile and workflow/*.smk may import only pseudosup.workflow, pseudosup.params "
                       "and pseudosup.io.PseudosupError (docs/DEVELOPING.md, rule 1):\n" + "\n".join(found))


def test_the_workflow_import_check_catches_violations(tmp_path):
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(
        "# from pseudosup.stages import train  (a comment: not an import)\n"
        "from pseudosup.workflow import PATTERNS, Plan\n"
        "from pseudosup import params as P\n"
        "from pseudosup.io import PseudosupError\n"
        "import os\n"
        "onstart:\n"
        "    from pseudosup.commands.slurm_check import check\n"
        "\n"
        "    check()\n")
    smk = tmp_path / "common.smk"
    smk.write_text("from pseudosup.io import (\n    PseudosupError,\n    atomic_path,\n)\n"
                   "import pseudosup.stages.train as T\n"
                   "from pseudosup import stages\n"
                   "m = importlib.import_module('pseudosup.data.registry')\n")
    found = rule_import_violations([snakefile, smk])
    assert found == ["Snakefile:7: the workflow imports pseudosup.commands.slurm_check.check",
                     "common.smk:1: the workflow imports pseudosup.io.atomic_path",
                     "common.smk:5: the workflow imports pseudosup.stages.train",
                     "common.smk:6: the workflow imports pseudosup.stages",
                     "common.smk:7: the workflow imports pseudosup.data.registry"], found


# --- stages are what the rules run; everything else is a helper command ----------------------

def commands_rules_run(files: list[Path]) -> set[str]:
    """The `pseudosup <name>` commands in the `shell:` directives of Snakemake files."""
    names = set()
    for f in files:
        lines = f.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "shell:":
                continue
            indent = len(line) - len(line.lstrip())
            body = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt)
            names |= set(re.findall(r"\bpseudosup ([a-z][a-z-]*)", "\n".join(body)))
    return names


def test_a_command_is_a_stage_exactly_when_a_rule_runs_it():
    from pseudosup.cli import COMMANDS

    run_by_rules = commands_rules_run(workflow_files())
    assert len(run_by_rules) >= 15, run_by_rules
    assert run_by_rules <= set(COMMANDS), f"rules run commands the CLI lacks: {run_by_rules - set(COMMANDS)}"
    stages = {n for n, m in COMMANDS.items() if m.startswith("pseudosup.stages.")}
    helpers = {n for n, m in COMMANDS.items() if m.startswith("pseudosup.commands.")}
    assert stages | helpers == set(COMMANDS), "every command lives in pseudosup.stages or pseudosup.commands"
    assert stages == run_by_rules, (f"stages no rule runs (move them to commands/): {sorted(stages - run_by_rules)}; "
                                    f"commands a rule runs (move them to stages/): {sorted(run_by_rules & helpers)}")
    # every module of the two packages is in the table, and every entry is a module
    for package, skip in (("stages", {"__init__", "common"}), ("commands", {"__init__"})):
        files = {p.stem for p in (SRC / package).glob("*.py")} - skip
        listed = {m.rsplit(".", 1)[1] for m in COMMANDS.values() if m.startswith(f"pseudosup.{package}.")}
        assert files == listed, (package, sorted(files ^ listed))
    assert all(n.replace("-", "_") == m.rsplit(".", 1)[1] for n, m in COMMANDS.items())


def test_the_rule_scan_reads_shell_directives_only(tmp_path):
    smk = tmp_path / "x.smk"
    smk.write_text('# runs `pseudosup dvc-yaml` (a comment)\nrule a:\n    output:\n        "pseudosup readme"\n'
                   '    shell:\n        "pseudosup train --x {output} "\n        "&& pseudosup report"\n\n\n'
                   'rule b:\n    shell:\n        "echo pseudosup"\n    log:\n        "pseudosup plot"\n')
    assert commands_rules_run([smk]) == {"train", "report"}


def test_the_command_table_is_lazy():
    """Importing the CLI imports no stage or command; running one imports only its own."""
    code = ("import sys; from pseudosup import cli; before = [m for m in sys.modules if m.startswith(('pseudosup.stages.', "
            "'pseudosup.commands.'))]; cli.build_parser('dvc-status'); "
            "after = sorted(m for m in sys.modules if m.startswith(('pseudosup.stages.', 'pseudosup.commands.'))); "
            "print(before, after)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "['pseudosup.commands.dvc_status']"], out


# --- DEVELOPING.md's package map names every module ------------------------------------------

def package_map(doc: Path = ROOT / "docs" / "DEVELOPING.md") -> list[tuple[list[str], list[str]]]:
    """The rows of the package map: (backticked names in `where`, backticked names in the row)."""
    text = doc.read_text()
    section = text.split("## Package map", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = line.strip().strip("|").split("|")
        if line.startswith("|") and len(cells) >= 2 and not set(cells[0].strip()) <= {"-"}:
            rows.append((re.findall(r"`([^`]+)`", cells[0]), re.findall(r"`([^`]+)`", line)))
    return rows


def unmapped_modules(src: Path, rows) -> list[str]:
    """Modules of the package that no row names: `cli.py` in a `where` cell, or
    `hashing/itq.py` (or `itq.py`) in the row of `methods/` (or `methods/hashing/`).
    Sub-packages' __init__.py (docstrings) count as named by their modules."""
    missing = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if path.name == "__init__.py" and path.parent != src:
            continue
        named = any(rel in where or any(d.endswith("/") and rel.startswith(d) and rel[len(d):] in names for d in where)
                    for where, names in rows)
        if not named:
            missing.append(rel)
    return missing


def test_the_package_map_names_every_module():
    rows = package_map()
    assert len(rows) >= 10, rows
    missing = unmapped_modules(SRC, rows)
    assert not missing, ("modules docs/DEVELOPING.md's package map does not name (add each to the row of its "
                         "package, e.g. `hashing/itq.py` under `methods/`): " + ", ".join(missing))


def test_the_package_map_check_catches_an_unnamed_module(tmp_path):
    src = tmp_path / "pseudosup"
    for name in ("__init__.py", "cli.py", "io.py", "methods/__init__.py", "methods/cie.py",
                 "methods/hashing/__init__.py", "methods/hashing/itq.py", "methods/hashing/lsh.py", "plots/ties.py"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("")
    doc = tmp_path / "DEVELOPING.md"
    doc.write_text("# x\n\n## Package map\n\n| where | what |\n|---|---|\n| `cli.py` | the CLI |\n"
                   "| `methods/` | `cie.py`, `hashing/itq.py`; the `ties.py` of plots is not here |\n"
                   "| `io.py`, `__init__.py` | bottom |\n\n## Next\n\n| `plots/` | `ties.py` |\n")
    assert unmapped_modules(src, package_map(doc)) == ["methods/hashing/lsh.py", "plots/ties.py"]
